"""How much `anticipating_myopic` should expect of the stations booked before it, and what it gains.

Stations deciding at once (`decision: simultaneous`) cannot see each other's tasks, so `myopic`
stations pile onto the same fast servers. `anticipating_myopic` books, before its own task, a task of
`load` x the mean expected one for each station ahead of it in the slot, where myopic would put it.
The load is chosen on training episodes (seeds 0..N-1), then judged on held-out episodes (seeds
from 1000000, as study and training evaluations use) against `myopic` and `sequential_myopic` (a
dispatcher that sees every task: what coordination could reach). Mean delay per task (s), lower is
better, with each policy's ratio to `myopic` measured in the same run.

Usage: python benchmarks/mec_anticipation.py [--loads 0,1,1.5,2,2.5,3] [--train-episodes 20]
           [--held-out-episodes 10] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse

import yaml
from rich.console import Console
from rich.table import Table

from aigcsched.algorithms.mec_heuristics import evaluate, make_anticipating_myopic
from aigcsched.envs.mec import MECConfig

HELD_OUT_SEED = 1_000_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", default="0,1,1.5,2,2.5,3", help="comma-separated loads to try")
    parser.add_argument("--train-episodes", type=int, default=20, help="episodes (seeds 0..N-1) to choose the load")
    parser.add_argument("--held-out-episodes", type=int, default=10, help="episodes from seed 1000000")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="MECConfig fields")
    args = parser.parse_args()
    loads = [float(x) for x in args.loads.split(",")]
    if min(args.train_episodes, args.held_out_episodes) < 1 or min(loads) < 0:
        parser.error("episodes must be >= 1 and loads >= 0")
    cfg = MECConfig(**{k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in args.set)})
    console = Console(width=120)

    train = Table(title=f"mec: anticipated load, {args.train_episodes} training episodes (seeds 0..)")
    for col in ("load", "delay per task (s)", "x myopic"):
        train.add_column(col, justify="right")
    reference = evaluate("myopic", cfg, args.train_episodes, 0)["mean_delay"]
    delays = {load: evaluate(make_anticipating_myopic(load), cfg, args.train_episodes, 0) for load in loads}
    delays = {load: result["mean_delay"] for load, result in delays.items()}
    for load, delay in delays.items():
        train.add_row(f"{load:g}", f"{delay:.3f}", f"{delay / reference:.3f}")
    console.print(train)
    best = min(delays, key=delays.get)

    held = Table(title=f"held-out episodes (seeds {HELD_OUT_SEED}..), {args.held_out_episodes} episodes")
    for col in ("policy", "delay per task (s)", "x myopic"):
        held.add_column(col, justify="left" if col == "policy" else "right")
    policies = {"myopic": "myopic", f"anticipating_myopic (load {best:g})": make_anticipating_myopic(best)}
    policies["sequential_myopic (sees every task)"] = "sequential_myopic"
    scores = {name: evaluate(p, cfg, args.held_out_episodes, HELD_OUT_SEED) for name, p in policies.items()}
    scores = {name: result["mean_delay"] for name, result in scores.items()}
    for name, delay in scores.items():
        held.add_row(name, f"{delay:.3f}", f"{delay / scores['myopic']:.3f}")
    console.print(held)


if __name__ == "__main__":
    main()

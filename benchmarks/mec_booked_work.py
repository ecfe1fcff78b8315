"""How much `spreading_myopic` should weigh the processing seconds an action books, and what it gains.

Stations deciding in turn (`decision: in_turn`) each see the queues as booked by the stations
before them; `sequential_myopic` (myopic on those queues) takes the action that finishes its own
task first, and so books the fastest servers, which the tasks after it then queue for.
`spreading_myopic` adds `weight` x the processing seconds an action books to its look-ahead, so
that it accepts finishing a little later on slower servers. The weight is chosen on training
episodes (seeds 0..N-1), then judged on held-out episodes (three blocks of seeds, from 1000000 as
study and training evaluations use) against `sequential_myopic`, whose delay each ratio divides,
measured in the same run. Mean delay per task (s), lower is better.

Usage: python benchmarks/mec_booked_work.py [--weights 0,0.1,0.15,0.2,0.25,0.3] [--train-episodes 20]
           [--held-out-episodes 10] [--set KEY=VALUE ...]
"""

from __future__ import annotations

import argparse

import yaml
from rich.console import Console
from rich.table import Table

from aigcsched.algorithms.mec_heuristics import evaluate, make_spreading_myopic
from aigcsched.envs.mec import MECConfig

HELD_OUT_SEEDS = (1_000_000, 5_000_000, 7_000_000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="0,0.1,0.15,0.2,0.25,0.3", help="comma-separated weights to try")
    parser.add_argument("--train-episodes", type=int, default=20, help="episodes (seeds 0..N-1) to choose the weight")
    parser.add_argument("--held-out-episodes", type=int, default=10, help="episodes per held-out block of seeds")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="MECConfig fields")
    args = parser.parse_args()
    weights = [float(x) for x in args.weights.split(",")]
    if min(args.train_episodes, args.held_out_episodes) < 1 or min(weights) < 0:
        parser.error("episodes must be >= 1 and weights >= 0")
    values = {"decision": "in_turn", **{k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in args.set)}}
    cfg = MECConfig(**values)
    console = Console(width=120)

    train = Table(
        title=f"mec ({cfg.decision}): booked-work weight, {args.train_episodes} training episodes (seeds 0..)"
    )
    for col in ("weight", "delay per task (s)", "x sequential_myopic"):
        train.add_column(col, justify="right")
    reference = evaluate("sequential_myopic", cfg, args.train_episodes, 0)["mean_delay"]
    delays = {w: evaluate(make_spreading_myopic(w), cfg, args.train_episodes, 0)["mean_delay"] for w in weights}
    for w, delay in delays.items():
        train.add_row(f"{w:g}", f"{delay:.4f}", f"{delay / reference:.4f}")
    console.print(train)
    best = min(delays, key=delays.get)

    held = Table(title=f"held-out episodes, {args.held_out_episodes} per block, weight {best:g}")
    for col in ("seeds from", "sequential_myopic", "spreading_myopic", "x sequential_myopic"):
        held.add_column(col, justify="right")
    for seed in HELD_OUT_SEEDS:
        base = evaluate("sequential_myopic", cfg, args.held_out_episodes, seed)["mean_delay"]
        spread = evaluate(make_spreading_myopic(best), cfg, args.held_out_episodes, seed)["mean_delay"]
        held.add_row(str(seed), f"{base:.4f}", f"{spread:.4f}", f"{spread / base:.4f}")
    console.print(held)


if __name__ == "__main__":
    main()

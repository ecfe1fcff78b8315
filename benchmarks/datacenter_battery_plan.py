"""The planned battery (`planned_handoff`) against `tuned_handoff`'s price rule and against the
same plan with the day's net load known in hindsight.

`planned_handoff` plays `tuned_handoff`'s hand-offs and service with a battery planned every hour
over the rest of the day on the day's prices and the site's mean net load over the last
`--windows` slots (`aigcsched/envs/datacenter/battery_plan.py`, NET_WINDOW_SLOTS; the default 48 is
4 hours). `known load` plans the same way on each slot's actual net load (the hand-offs and service
do not depend on the battery, so that load is known in hindsight): how far a better forecast could
take the plan. Utility in USD per day, higher is better, with each ratio to `tuned_handoff`
measured in the same run. Days: the training days (seeds 0..N-1), the optimality-gap table's
held-out days (from seed 100) and the studies' held-out days (from seed 1000000).

Usage: python benchmarks/datacenter_battery_plan.py [--windows 12,48,96,288] [--train-days 20]
           [--held-out-days 5] [--study-days 10]
"""

from __future__ import annotations

import argparse

import numpy as np
from rich.console import Console
from rich.table import Table

import aigcsched.envs.datacenter.battery_plan as battery_plan
from aigcsched.algorithms.datacenter_heuristics import planned_handoff_policy, tuned_handoff_policy
from aigcsched.algorithms.datacenter_optimum import known_load_battery
from aigcsched.envs import DataCenterConfig
from aigcsched.platform.problems.datacenter import DATACENTER, evaluate_datacenter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", default="12,48,96,288", help="comma-separated net-load windows, slots")
    parser.add_argument("--train-days", type=int, default=20, help="training days (seeds 0..N-1)")
    parser.add_argument("--held-out-days", type=int, default=5, help="held-out days from seed 100 (the gap table's)")
    parser.add_argument("--study-days", type=int, default=10, help="held-out days from seed 1000000 (the studies')")
    args = parser.parse_args()
    windows = [int(w) for w in args.windows.split(",")]
    if min(windows) < 1 or min(args.train_days, args.held_out_days, args.study_days) < 1:
        parser.error("windows and days must be >= 1")
    train, held = DataCenterConfig(), DATACENTER.evaluation_scenario(DataCenterConfig())
    day_sets = {
        f"{args.train_days} training days": (train, args.train_days, 0),
        f"{args.held_out_days} held-out days from 100": (held, args.held_out_days, 100),
        f"{args.study_days} held-out days from 1000000": (held, args.study_days, 1_000_000),
    }
    rows: dict[str, list[float]] = {"tuned_handoff": []}
    default = battery_plan.NET_WINDOW_SLOTS
    for cfg, days, seed in day_sets.values():
        rows["tuned_handoff"].append(evaluate_datacenter(tuned_handoff_policy(cfg), cfg, days, seed)["utility"])
        for w in windows:
            battery_plan.NET_WINDOW_SLOTS = w
            name = f"planned_handoff, window {w}" + (" (default)" if w == default else "")
            rows.setdefault(name, []).append(
                evaluate_datacenter(planned_handoff_policy(cfg), cfg, days, seed)["utility"]
            )
        battery_plan.NET_WINDOW_SLOTS = default
        known = float(np.mean([known_load_battery(cfg, seed + i) for i in range(days)]))
        rows.setdefault("known load (hindsight)", []).append(known)
    table = Table(title="utility $/day (x tuned_handoff)")
    table.add_column("policy")
    for name in day_sets:
        table.add_column(name, justify="right")
    for name, values in rows.items():
        table.add_row(name, *(f"{v:.2f} ({v / t:.4f})" for v, t in zip(values, rows["tuned_handoff"], strict=True)))
    Console(width=140).print(table)


if __name__ == "__main__":
    main()

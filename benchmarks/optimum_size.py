"""The largest `edge` instance the exact optimum proves optimal within a time limit.

For each mean inter-arrival time, n_requests grows by --step until one of --instances seeded
instances (paper's other settings) is not proven optimal within --time-limit seconds; the
table shows the largest size at which all were, and the slowest solve there.

Usage: python benchmarks/optimum_size.py [--time-limit 60] [--instances 3] [--step 5]
           [--interarrival 15 --interarrival 1]
"""

from __future__ import annotations

import argparse

import numpy as np
from rich.console import Console
from rich.table import Table

from aigcsched.algorithms.optimum import solve
from aigcsched.envs import EdgeConfig
from aigcsched.envs.edge import draw_instance


def largest_solved(ia: float, args: argparse.Namespace, console: Console) -> tuple[int, float]:
    best, best_time, n = 0, 0.0, args.step
    while n <= args.max_requests:
        cfg = EdgeConfig(n_requests=n, mean_interarrival_s=ia)
        results = [
            solve(draw_instance(np.random.default_rng(seed), cfg), cfg, time_limit_s=args.time_limit)
            for seed in range(args.instances)
        ]
        slowest = max(r.wall_s for r in results)
        proven = sum(r.optimal for r in results)
        console.print(f"inter-arrival {ia:g} s, {n} requests: {proven}/{len(results)} proven, slowest {slowest:.1f} s")
        if proven < len(results):
            break
        best, best_time, n = n, slowest, n + args.step
    return best, best_time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time-limit", type=float, default=60.0, help="CP-SAT seconds per instance")
    parser.add_argument("--instances", type=int, default=3, help="instances (seeds 0..) per size")
    parser.add_argument("--step", type=int, default=5, help="n_requests increment")
    parser.add_argument("--max-requests", type=int, default=100)
    parser.add_argument("--interarrival", type=float, action="append", help="mean inter-arrival (s)")
    args = parser.parse_args()
    console = Console(width=160)
    rows = [(ia, *largest_solved(ia, args, console)) for ia in args.interarrival or [15.0, 1.0]]
    table = Table(title=f"edge: largest n_requests proven optimal within {args.time_limit:g} s per instance")
    for col in ("inter-arrival (s)", "largest n_requests", "slowest solve there (s)"):
        table.add_column(col, justify="right")
    for ia, n, t in rows:
        table.add_row(f"{ia:g}", str(n), f"{t:.1f}")
    console.print(table)


if __name__ == "__main__":
    main()

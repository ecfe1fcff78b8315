"""How far `tuned_handoff` should hand jobs beyond the receiver's room, and when its battery should
charge and discharge, chosen on training days and judged on held-out days.

`value_handoff` hands new jobs to the provider that earns more per job, as far as that provider's
room goes (its capacity at the service rule's choice less its queue and expected arrivals), and
its battery does `arbitrage` (charge below the day's median price, discharge above it). Three
knobs: the room factor (hand off up to factor x that capacity, less queue and arrivals), and the
battery's price extremes (charge only at or below the day's `charge` price quantile, discharge
only in its dearest `discharge` share of hours; the battery wears with every cycle). Grid over all
three on training days (the default scenario, days seeded 0..N-1), then the best triple against
`value_handoff` on held-out days (the evaluation split, seeded from 100 as `aigcsched evaluate` and
the optimality-gap table use). Utility in USD per day, higher is better, with each ratio to
`value_handoff` measured in the same run. With `--per-day`, also the best triple of the grid for
each held-out day, chosen in hindsight on that day: how much a policy that set the knobs day by
day could earn at most over the fixed triple.

Usage: python benchmarks/datacenter_handoff_tuning.py [--factors 1,1.25,1.5,1.75,2] [--charge 0,0.1,0.2]
           [--discharge 0.2,0.3,0.4] [--train-days 20] [--held-out-days 5] [--per-day]
"""

from __future__ import annotations

import argparse
import itertools

from rich.console import Console
from rich.table import Table

from aigcsched.algorithms.datacenter_heuristics import tuned_handoff_policy, value_handoff_policy
from aigcsched.envs import DataCenterConfig
from aigcsched.platform.problems.datacenter import DATACENTER, evaluate_datacenter

HELD_OUT_SEED = 100


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--factors", default="1,1.25,1.5,1.75,2", help="comma-separated room factors")
    parser.add_argument("--charge", default="0,0.1,0.2", help="comma-separated charge price quantiles, 0..1")
    parser.add_argument("--discharge", default="0.2,0.3,0.4", help="comma-separated discharge shares of hours, 0..1")
    parser.add_argument("--train-days", type=int, default=20, help="training days (seeds 0..N-1) for the choice")
    parser.add_argument("--held-out-days", type=int, default=5, help="held-out days from seed 100")
    parser.add_argument("--per-day", action="store_true", help="also each held-out day's best triple, in hindsight")
    args = parser.parse_args()
    factors, charge, discharge = floats(args.factors), floats(args.charge), floats(args.discharge)
    if min(args.train_days, args.held_out_days) < 1 or min(factors) <= 0:
        parser.error("days must be >= 1 and factors > 0")
    if not all(0 <= q <= 1 for q in charge + discharge):
        parser.error("charge quantiles and discharge shares lie in 0..1")
    train, held = DataCenterConfig(), DATACENTER.evaluation_scenario(DataCenterConfig())
    console = Console(width=120)
    batteries = list(itertools.product(charge, discharge))

    utility = {
        (f, c, d): evaluate_datacenter(tuned_handoff_policy(train, f, c, d), train, args.train_days, 0)["utility"]
        for f in factors
        for c, d in batteries
    }
    reference = evaluate_datacenter(value_handoff_policy(train), train, args.train_days, 0)["utility"]
    grid = Table(title=f"utility $/day on {args.train_days} training days (seeds 0..); value_handoff {reference:.2f}")
    grid.add_column("charge / discharge", justify="right")
    for f in factors:
        grid.add_column(f"room {f:g}", justify="right")
    for c, d in batteries:
        grid.add_row(f"{c:g} / {d:g}", *(f"{utility[f, c, d]:.2f}" for f in factors))
    console.print(grid)
    best = max(utility, key=utility.get)

    table = Table(
        title=f"{args.held_out_days} held-out days (seeds from {HELD_OUT_SEED}), room factor {best[0]:g}, "
        f"charge {best[1]:g}, discharge {best[2]:g}"
    )
    for col in ("policy", "utility $/day", "x value_handoff", "energy $", "handed", "violations"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    results = {
        "value_handoff": evaluate_datacenter(value_handoff_policy(held), held, args.held_out_days, HELD_OUT_SEED),
        "tuned_handoff": evaluate_datacenter(
            tuned_handoff_policy(held, *best), held, args.held_out_days, HELD_OUT_SEED
        ),
    }
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['utility']:.2f}",
            f"{r['utility'] / results['value_handoff']['utility']:.4f}",
            f"{r['energy_cost']:.1f}",
            f"{r['handed_over']:.3f}",
            f"{r['violation_rate']:.4f}",
        )
    console.print(table)
    if args.per_day:
        print_per_day(console, held, list(utility), best, args.held_out_days)


def print_per_day(console: Console, cfg: DataCenterConfig, knobs: list[tuple], chosen: tuple, days: int) -> None:
    """Each held-out day's best knob triple of the grid (hindsight) against the one chosen on training days."""
    table = Table(title="each held-out day's best triple of the grid, chosen in hindsight on that day")
    for col in ("seed", "chosen triple $", "day's best $", "its triple"):
        table.add_column(col, justify="right")
    fixed, hindsight = [], []
    for seed in range(HELD_OUT_SEED, HELD_OUT_SEED + days):
        utility = {k: evaluate_datacenter(tuned_handoff_policy(cfg, *k), cfg, 1, seed)["utility"] for k in knobs}
        best = max(utility, key=utility.get)
        fixed.append(utility[chosen])
        hindsight.append(utility[best])
        table.add_row(str(seed), f"{utility[chosen]:.2f}", f"{utility[best]:.2f}", ", ".join(f"{v:g}" for v in best))
    console.print(table)
    mean_fixed, mean_best = sum(fixed) / days, sum(hindsight) / days
    ratio = mean_best / mean_fixed
    console.print(f"mean: chosen triple {mean_fixed:.2f}, each day's best {mean_best:.2f} ({ratio:.4f}x)")


if __name__ == "__main__":
    main()

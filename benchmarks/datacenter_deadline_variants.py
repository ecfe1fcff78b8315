"""Which simple variant of the `datacenter` deadline rule earns the most, on held-out days.

The service rule (`best_value_service`: the step level and power cap that earn the most per job
while still serving every job due this slot) with the battery idle or doing `arbitrage`, and with
every job kept or `handoff`'s price-aware hand-offs (of what exceeds the middle step level's
capacity); `arbitrage`, the best heuristic without the rule, for reference. Every policy plays the
same days (episode k seeded with seed + k, as `aigcsched evaluate` does). `deadline` is the best of
these four. The last row is `value_handoff`: `deadline` with hand-offs to the provider that earns
more per job at its best step level and power cap (`lookahead.value_handoff_plan`).

Usage: python benchmarks/datacenter_deadline_variants.py [--episodes 10] [--seed 100]
"""

from __future__ import annotations

import argparse

import numpy as np
from rich.console import Console
from rich.table import Table

from aigcsched.algorithms.datacenter_heuristics import DataCenterPolicy, arbitrage_policy, value_handoff_policy
from aigcsched.envs import DataCenterConfig
from aigcsched.envs.datacenter.lookahead import (
    IDLE,
    arbitrage,
    best_value_service,
    handoff_plan,
    keep_all,
)
from aigcsched.platform.problems.datacenter import DATACENTER, evaluate_datacenter


def variant(cfg: DataCenterConfig, battery: bool, handoff: bool) -> DataCenterPolicy:
    """The deadline rule's service, with or without battery arbitrage and hand-offs."""
    agents = [f"asp_{i}" for i in range(cfg.n_asps)]
    middle = len(cfg.step_levels) // 2

    def act(obs: dict, state) -> dict:
        level, cap = best_value_service(cfg, state)
        keep, target = handoff_plan(cfg, state, middle) if handoff else (keep_all(cfg), 0)
        bat = arbitrage(state) if battery else IDLE
        act = np.stack(np.broadcast_arrays(keep, target, level, bat, cap), axis=1)  # (K, 5)
        return dict(zip(agents, act, strict=True))

    return act


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=10, help="held-out days")
    parser.add_argument("--seed", type=int, default=100, help="day k uses seed + k")
    args = parser.parse_args()
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    cfg = DATACENTER.evaluation_scenario(DataCenterConfig())
    policies = {
        "arbitrage": arbitrage_policy(cfg),
        "service, battery idle": variant(cfg, battery=False, handoff=False),
        "service + arbitrage (deadline)": variant(cfg, battery=True, handoff=False),
        "service + hand-offs": variant(cfg, battery=False, handoff=True),
        "service + hand-offs + arbitrage": variant(cfg, battery=True, handoff=True),
        "deadline + value hand-offs (value_handoff)": value_handoff_policy(cfg),
    }
    table = Table(title=f"datacenter: deadline-rule variants, {args.episodes} held-out days (seeds from {args.seed})")
    for col in ("policy", "utility $/day", "x arbitrage", "energy $", "violations", "handed"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    results = {n: evaluate_datacenter(p, cfg, args.episodes, args.seed) for n, p in policies.items()}
    ref = results["arbitrage"]["utility"]
    for name, r in results.items():
        table.add_row(
            name,
            f"{r['utility']:.1f}",
            f"{r['utility'] / ref:.3f}",
            f"{r['energy_cost']:.1f}",
            f"{r['violation_rate']:.4f}",
            f"{r['handed_over']:.3f}",
        )
    Console(width=140).print(table)


if __name__ == "__main__":
    main()

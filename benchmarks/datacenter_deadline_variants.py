"""Which simple variant of the `datacenter` deadline rule earns the most, on held-out days.

The service rule (`best_value_service`: the step level and power cap that earn the most per job
while still serving every job due this slot) with the battery idle or doing `arbitrage`, and with
every job kept or `handoff`'s price-aware hand-offs (of what exceeds the middle step level's
capacity); `arbitrage`, the best heuristic without the rule, for reference. Every policy plays the
same days (episode k seeded with seed + k, as `aigcsched evaluate` does). `deadline` is the best of
these four. The last row is a candidate not (yet) a heuristic: value hand-offs, which send new jobs
to the provider that earns more per job at its best step level and power cap (fees are transfers
within the system: left out), as many as its room (its capacity at the rule's choice less its
queue and expected arrivals) takes.

Usage: python benchmarks/datacenter_deadline_variants.py [--episodes 10] [--seed 100]
"""

from __future__ import annotations

import argparse

import numpy as np
from rich.console import Console
from rich.table import Table

from aigcsched.algorithms.datacenter_heuristics import DataCenterPolicy, arbitrage_policy
from aigcsched.envs import DataCenterConfig
from aigcsched.envs.datacenter.lookahead import (
    IDLE,
    arbitrage,
    best_value_service,
    handoff_plan,
    keep_all,
    service_values,
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


def value_handoffs(cfg: DataCenterConfig) -> DataCenterPolicy:
    """The deadline rule with battery arbitrage and value hand-offs (see the module docstring)."""
    agents = [f"asp_{i}" for i in range(cfg.n_asps)]
    capacity, revenue, kwh = service_values(cfg)
    handed_share = 1.0 - np.asarray(cfg.keep_levels)
    k = cfg.n_asps
    others = np.array([[j for j in range(k) if j != i] for i in range(k)])

    def act(obs: dict, state) -> dict:
        level, cap = best_value_service(cfg, state)
        value = revenue - kwh * (state.pue * state.price / 1000.0)[:, None, None]
        best = value.reshape(k, -1).max(axis=1)  # each provider's best value per job
        room = capacity[np.arange(k), level, cap] - (state.queue + state.expected_arrivals)
        keep, target = np.full(k, keep_all(cfg)), np.zeros(k, dtype=np.int64)
        for i in range(k):
            gain = np.where(room[others[i]] > 0, best[others[i]] - best[i], -np.inf)
            j = int(np.argmax(gain))
            if gain[j] > 0 and state.expected_arrivals[i] > 0:
                want = min(1.0, room[others[i, j]] / state.expected_arrivals[i])
                keep[i] = int(np.argmax(np.where(handed_share <= want + 1e-9, handed_share, -1.0)))
                target[i] = j
                room[others[i, j]] -= handed_share[keep[i]] * state.expected_arrivals[i]
        act = np.stack(np.broadcast_arrays(keep, target, level, arbitrage(state), cap), axis=1)
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
        "deadline + value hand-offs (candidate)": value_handoffs(cfg),
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

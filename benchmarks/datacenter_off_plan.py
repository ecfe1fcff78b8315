"""Where an anchored `datacenter` policy leaves its heuristic's plan as it trains.

Trains the config (anchored, with `env.config.observe_lookahead`) in this process and, every few
iterations, plays its greedy policy on the validation days (`evaluation.validation_*`) against the
plan that ends each observation: how many actions differ per provider and action branch, which
(branch, plan -> chosen) pairs are most frequent, and the utility as a ratio to iteration 0's (the
untrained anchored policy acts as its heuristic).

Usage: python benchmarks/datacenter_off_plan.py [--config configs/datacenter_ppo.yaml]
       [--set KEY=VALUE ...] [--iterations 24] [--every 4]
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
from rich.console import Console
from rich.table import Table

from aigcsched.envs.datacenter.config import ACTION_BRANCHES as BRANCHES
from aigcsched.platform import tracking
from aigcsched.platform.config import load_experiment, parse_overrides
from aigcsched.platform.problems.datacenter import episode_metrics, run_episode


def off_plan(exp, policy) -> tuple[float, np.ndarray, Counter]:
    """Mean utility on the validation days; off-plan actions (provider, branch); (branch, plan, chosen) counts."""
    from aigcsched.envs.datacenter.env import DataCenterEnv

    cfg, ev = exp.scenario(), exp.evaluation
    nvec = np.asarray(cfg.action_nvec)
    starts = np.cumsum((0, *nvec[:-1]))
    counts, pairs = np.zeros((cfg.n_asps, len(nvec)), dtype=np.int64), Counter()

    def watched(obs, state):
        actions = policy(obs, state)
        for i, agent in enumerate(obs):
            tail = np.asarray(obs[agent])[-nvec.sum() :]
            plan = [int(np.argmax(tail[s : s + n])) for s, n in zip(starts, nvec, strict=True)]
            for b, (chosen, planned) in enumerate(zip(np.asarray(actions[agent]).tolist(), plan, strict=True)):
                if chosen != planned:
                    counts[i, b] += 1
                    pairs[BRANCHES[b], planned, chosen] += 1
        return actions

    env = DataCenterEnv(cfg)
    days = [run_episode(env, watched, ev.validation_seed + k) for k in range(ev.validation_episodes)]
    return float(np.mean([episode_metrics(*day)["utility"] for day in days])), counts, pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/datacenter_ppo.yaml")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    parser.add_argument("--iterations", type=int, default=24)
    parser.add_argument("--every", type=int, default=4, help="iterations between checks")
    args = parser.parse_args()
    exp = load_experiment(args.config, parse_overrides(args.set))
    if exp.env.id != "datacenter" or not exp.scenario().observe_lookahead:
        parser.error("needs a datacenter config with env.config.observe_lookahead: true (the plan it compares with)")

    import ray

    from aigcsched.platform.rllib_setup import algorithm_config

    ray.init(address="local", num_cpus=exp.resources.num_cpus, include_dashboard=False, log_to_driver=False)
    algo = algorithm_config(exp).build_algo()
    console = Console(width=160)
    table = Table(title=f"off the plan of {exp.scenario().lookahead_plan}, {exp.evaluation.validation_episodes} days")
    for col in ("iteration", "utility (USD/day)", "x iteration 0", "off-plan actions (provider: branch)", "most often"):
        table.add_column(col)
    start = None
    for it in range(args.iterations + 1):
        if it:
            algo.train()
        if it % args.every and it != args.iterations:
            continue
        utility, counts, pairs = off_plan(exp, tracking.trained_policy(algo, exp))
        start = utility if start is None else start
        where = "; ".join(
            f"{i}: " + ", ".join(f"{BRANCHES[b]} {n}" for b, n in enumerate(row) if n)
            for i, row in enumerate(counts)
            if row.any()
        )
        common = ", ".join(f"{b} {p}->{c} x{n}" for (b, p, c), n in pairs.most_common(3))
        table.add_row(str(it), f"{utility:.2f}", f"{utility / start:.4f}", where or "none", common or "-")
        console.print(f"iteration {it}: {utility:.2f} USD/day, {int(counts.sum())} actions off the plan")
    algo.stop()
    console.print(table)


if __name__ == "__main__":
    main()

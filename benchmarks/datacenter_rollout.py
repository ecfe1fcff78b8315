"""How much a planner that simulates its choices, without knowing the future, earns above
`pooled_handoff`: the room above the heuristic open to a policy without hindsight.

One step of rollout policy improvement: each slot, the candidates are the heuristic's plan and
the plan with one provider's choice in one action branch changed (`--branches`). Each is played
in copies of the episode (`DataCenterVectorEnv.fork`) on `--futures` redrawn futures of the
arrivals, the same for every candidate, and `pooled_handoff` then plays `--horizon` slots. The
candidate whose utility over them (all providers) beats the plan's by more than twice its standard
error and by `--margin` is played; otherwise the plan. The simulation never sees the day's own
arrivals or weather (it holds the weather as it is now; prices are day-ahead), so the rollout is a
policy that could run live (at about a second per slot on one core).

Prints each day's utility (USD, all providers) under `pooled_handoff` and under the rollout, the
ratio, the slots where the rollout left the plan, and which changes it made most often.

Usage: python benchmarks/datacenter_rollout.py [--days 5] [--seed 100] [--branches keep target]
       [--futures 8] [--horizon 24] [--margin 0.005] [--workers 1] [--set KEY=VALUE ...]
       (--set: scenario fields, e.g. --set "base_rate=[3510, 1885, 1820]" for 1.3x the arrivals)
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from aigcsched.envs import DataCenterConfig, DataCenterVectorEnv
from aigcsched.envs.datacenter.battery_plan import BatteryPlanner
from aigcsched.envs.datacenter.config import ACTION_BRANCHES
from aigcsched.envs.datacenter.lookahead import pooled_handoff_plan
from aigcsched.platform.config import ConfigError, parse_overrides, validation_message


def candidates(plan: np.ndarray, nvec: tuple[int, ...], branches: list[int]) -> np.ndarray:
    """(C, K, 5): the plan (K, 5) first, then each single change of one provider's choice in a branch."""
    out = [plan]
    for k in range(len(plan)):
        for b in branches:
            for v in range(nvec[b]):
                if v != plan[k, b]:
                    changed = plan.copy()
                    changed[k, b] = v
                    out.append(changed)
    return np.stack(out)


def play_day(cfg: DataCenterConfig, seed: int, args: argparse.Namespace) -> dict:
    """The day of `seed` under `pooled_handoff` and under its rollout."""
    branches = [ACTION_BRANCHES.index(b) for b in args.branches]
    rng = np.random.default_rng([seed, 1])
    utility, changes, start = {}, Counter(), time.time()
    for mode in ("pooled_handoff", "rollout"):
        env = DataCenterVectorEnv(1, cfg)
        env.reset(seed=seed)
        planner = BatteryPlanner(cfg)
        total = 0.0
        for t in range(cfg.episode_slots):
            state = env.state()
            action = pooled_handoff_plan(cfg, state, planner(state))[0]
            if mode == "rollout":
                action = improve(env, t, action, branches, rng, args, changes)
                if t % 48 == 47:
                    print(f"  seed {seed}: slot {t + 1}/{cfg.episode_slots}, {time.time() - start:.0f} s", flush=True)
            total += float(env.step(action[None])[1][0].sum())  # reward_mode dense: each provider's own
        utility[mode] = total
    return {"seed": seed, "day": int(env.days[0]), **utility, "changes": changes, "seconds": time.time() - start}


def candidate_gains(
    env: DataCenterVectorEnv, t: int, plan: np.ndarray, branches: list[int], rng: np.random.Generator, args
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At slot t: the candidates (C, K, 5), plan first, and each one's mean utility gain over the plan
    on the redrawn futures (C,) with its standard error (C,)."""
    cfg, s = env.cfg, args.futures
    cand = candidates(plan, cfg.action_nvec, branches)
    sim = env.fork(0, len(cand) * s, rng, futures=s)  # copy i: candidate i // s on future i % s
    planner = BatteryPlanner(cfg)
    action, earned = np.repeat(cand, s, axis=0), np.zeros(len(cand) * s)
    for h in range(min(args.horizon, cfg.episode_slots - t)):
        if h:
            state = sim.state()
            action = pooled_handoff_plan(cfg, state, planner(state))
        earned += sim.step(action)[1].sum(axis=1)
    gain = earned.reshape(len(cand), s) - earned.reshape(len(cand), s)[:1]
    return cand, gain.mean(axis=1), gain.std(axis=1, ddof=1) / np.sqrt(s)


def clear_best(mean: np.ndarray, se: np.ndarray, margin: float) -> int:
    """The candidate to play: the one of highest mean gain if that beats the plan (candidate 0) by
    more than twice its standard error and `margin` USD, else the plan."""
    best = int(np.argmax(mean))
    return best if mean[best] > max(margin, 2.0 * se[best]) else 0


def improve(
    env: DataCenterVectorEnv,
    t: int,
    plan: np.ndarray,
    branches: list[int],
    rng: np.random.Generator,
    args: argparse.Namespace,
    changes: Counter,
) -> np.ndarray:
    """At slot t: the candidate that earns the most in the rollouts where it beats the plan clearly, else the plan."""
    cand, mean, se = candidate_gains(env, t, plan, branches, rng, args)
    best = clear_best(mean, se, args.margin)
    if best == 0:
        return plan
    k, b = np.argwhere(cand[best] != plan)[0]
    changes[int(k), ACTION_BRANCHES[b], int(plan[k, b]), int(cand[best][k, b])] += 1
    return cand[best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=5, help="held-out days, seeds SEED.. (5 from 100: the gap table's)")
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--branches", nargs="+", default=["keep", "target"], choices=ACTION_BRANCHES)
    parser.add_argument("--futures", type=int, default=8, help="redrawn futures per candidate")
    parser.add_argument("--horizon", type=int, default=24, help="slots simulated per candidate")
    parser.add_argument("--margin", type=float, default=0.005, help="USD a change must gain over the plan")
    parser.add_argument("--workers", type=int, default=1, help="days played at once, one process each")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="scenario fields (DataCenterConfig)")
    args = parser.parse_args()
    if args.futures < 2 or args.horizon < 1:
        parser.error("needs --futures >= 2 (for a standard error) and --horizon >= 1")
    try:
        cfg = DataCenterConfig(**{"day_split": "heldout", "data_dir": "embedded", **parse_overrides(args.set)})
    except ConfigError as e:
        parser.error(str(e))
    except ValidationError as e:
        parser.error(validation_message(e))
    seeds = range(args.seed, args.seed + args.days)
    with ProcessPoolExecutor(args.workers) as pool:
        days = list(pool.map(play_day, [cfg] * len(seeds), seeds, [args] * len(seeds)))

    console = Console(width=140)
    title = (
        f"rollout over pooled_handoff: branches {', '.join(args.branches)}, {args.futures} futures, "
        f"horizon {args.horizon} slots (USD per day, all providers)"
    )
    table = Table(title=title)
    for col in ("seed", "day", "pooled_handoff", "rollout", "x pooled", "slots changed", "seconds"):
        table.add_column(col, justify="right")
    for d in days:
        ratio = d["rollout"] / d["pooled_handoff"]
        n = sum(d["changes"].values())
        row = (
            d["seed"],
            d["day"],
            f"{d['pooled_handoff']:.2f}",
            f"{d['rollout']:.2f}",
            f"{ratio:.4f}",
            n,
            f"{d['seconds']:.0f}",
        )
        table.add_row(*map(str, row))
    base, rolled = (np.mean([d[m] for d in days]) for m in ("pooled_handoff", "rollout"))
    table.add_row("mean", "", f"{base:.2f}", f"{rolled:.2f}", f"{rolled / base:.4f}", "", "")
    console.print(table)
    common = sum((d["changes"] for d in days), Counter()).most_common(10)
    console.print(
        "most frequent changes (provider, branch, plan -> played): "
        + "; ".join(f"{k} {b} {p}->{c} x{n}" for (k, b, p, c), n in common)
    )


if __name__ == "__main__":
    main()

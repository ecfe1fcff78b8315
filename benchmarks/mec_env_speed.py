"""Env steps per second on `mec`: the single ParallelEnv (random actions) against the batched env.

An env step is one slot of one episode, all stations. Resets at episode ends are timed in both.
Prints each figure as a ratio against the single env measured in the same run.
Target: batched at B=256 >= 50x the single env.
Usage: python benchmarks/mec_env_speed.py [--seconds S] [--action-mode subset|weights] [--finish-together-only]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from aigcsched.envs import MECConfig, MECEnv, MECVectorEnv


def draw_actions(cfg: MECConfig, space, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(0)
    if cfg.action_mode == "subset":
        return rng.integers(0, space.n, size=(*shape, cfg.n_servers))
    return rng.integers(0, cfg.weight_levels, size=(*shape, cfg.n_servers, cfg.n_servers))


def time_single(cfg: MECConfig, seconds: float) -> float:
    env = MECEnv(cfg)
    env.reset(seed=0)
    pool = draw_actions(cfg, env.action_space("bs_0"), (1000,))
    pool = [dict(zip(env.possible_agents, a, strict=True)) for a in pool]  # sampling is not timed
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for actions in pool:
            env.step(actions)
            if not env.agents:
                env.reset()
        steps += len(pool)
    return steps / (time.perf_counter() - start)


def time_batched(cfg: MECConfig, num_envs: int, seconds: float) -> float:
    env = MECVectorEnv(num_envs, cfg)
    env.reset(seed=0)
    pool = draw_actions(cfg, env.single_action_space, (32, num_envs))
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for actions in pool:
            if env.step(actions)[3][0]:
                env.reset()
        steps += len(pool) * num_envs
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    parser.add_argument("--action-mode", choices=("subset", "weights"), default="subset")
    parser.add_argument(
        "--finish-together-only", action="store_true", help="subset actions all use the finish-together split"
    )
    args = parser.parse_args()
    rules = ("finish_together",) if args.finish_together_only else MECConfig().split_rules
    cfg = MECConfig(action_mode=args.action_mode, split_rules=rules)
    single = time_single(cfg, args.seconds)
    rows = [("single env", single)]
    rows += [(f"batched env, B={b}", time_batched(cfg, b, args.seconds)) for b in (1, 64, 256, 1024)]
    title = f"mec env speed (random {cfg.action_mode} actions, split rules {', '.join(cfg.split_rules)})"
    table = Table(title=title)
    for col in ("env", "env steps/s", "ratio vs single env"):
        table.add_column(col, justify="left" if col == "env" else "right")
    for name, rate in rows:
        table.add_row(name, f"{rate:,.0f}", f"{rate / single:.1f}x")
    Console().print(table)


if __name__ == "__main__":
    main()

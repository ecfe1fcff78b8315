"""Env steps per second on `edge`: the single env (random actions) against the batched env.

Prints each figure as a ratio against the single env measured in the same run.
Targets on a 2-core machine: single env >= 50,000 steps/s; batched at B=1024 >= 1,000,000 steps/s.
Usage: python benchmarks/env_speed.py [--seconds S]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from aigcsched.envs import EdgeEnv, EdgeVectorEnv


def time_single(seconds: float) -> float:
    env = EdgeEnv()
    env.reset(seed=0)
    nvec = env.action_space.nvec
    actions = np.random.default_rng(0).integers(0, nvec, size=(100_000, 2)).tolist()  # sampling is not timed
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for a in actions[:10_000]:
            if env.step(a)[2]:
                env.reset()
        steps += 10_000
        actions = actions[10_000:] + actions[:10_000]
    return steps / (time.perf_counter() - start)


def time_batched(num_envs: int, seconds: float) -> float:
    env = EdgeVectorEnv(num_envs=num_envs)
    env.reset(seed=0)
    nvec = env.single_action_space.nvec
    pool = np.random.default_rng(0).integers(0, nvec, size=(64, num_envs, 2))
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for a in pool:
            env.step(a)  # next-step autoreset is part of what is timed
        steps += len(pool) * num_envs
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    args = parser.parse_args()
    single = time_single(args.seconds)
    rows = [("single env", single)] + [(f"batched env, B={b}", time_batched(b, args.seconds)) for b in (64, 1024)]
    table = Table(title="edge env speed (random actions, paper defaults)")
    for col in ("env", "steps/s", "ratio vs single env"):
        table.add_column(col, justify="left" if col == "env" else "right")
    for name, rate in rows:
        table.add_row(name, f"{rate:,.0f}", f"{rate / single:.1f}x")
    Console().print(table)


if __name__ == "__main__":
    main()

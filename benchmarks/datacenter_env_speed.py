"""Env steps per second on `datacenter`: the single env (DataCenterEnv) against the batched env
(DataCenterVectorEnv) at B = 1, 64 and 256 episodes, with random actions drawn before timing.

An env step is one slot of one episode (all K agents). Each round plays whole episodes, reset
included; a rate is the median over rounds, by wall clock and by CPU time (the machine may be
shared), and each is printed as a ratio against the single env measured in the same run.
Target: batched at B=256 >= 20x the single env.
Usage: python benchmarks/datacenter_env_speed.py [--seconds S] [--data-dir DIR] [--episode-slots T]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from aigcsched.envs import DataCenterConfig, DataCenterEnv, DataCenterVectorEnv


def rounds(play, steps: int, seconds: float) -> tuple[float, float]:
    """(wall, CPU) env steps/s of `play()`, which runs `steps` env steps: medians over rounds."""
    walls, cpus = [], []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(walls) < 3:
        wall, cpu = time.perf_counter(), time.process_time()
        play()
        walls.append(steps / (time.perf_counter() - wall))
        cpus.append(steps / max(time.process_time() - cpu, 1e-9))
    return float(np.median(walls)), float(np.median(cpus))


def time_single(cfg: DataCenterConfig, seconds: float) -> tuple[float, float]:
    env = DataCenterEnv(cfg)
    env.reset(seed=0)
    agents, nvec = env.possible_agents, env.action_space(env.possible_agents[0]).nvec
    draws = np.random.default_rng(0).integers(0, nvec, size=(cfg.episode_slots, len(agents), 5))
    actions = [dict(zip(agents, a, strict=True)) for a in draws]  # not timed

    def play():
        env.reset()
        for a in actions:
            env.step(a)

    return rounds(play, cfg.episode_slots, seconds)


def time_batched(cfg: DataCenterConfig, num_envs: int, seconds: float) -> tuple[float, float]:
    env = DataCenterVectorEnv(num_envs, cfg)
    env.reset(seed=0)
    nvec = env.single_action_space.nvec
    actions = np.random.default_rng(0).integers(0, nvec, size=(cfg.episode_slots, num_envs, env.n_agents, 5))

    def play():
        env.reset()
        for a in actions:
            env.step(a)

    return rounds(play, cfg.episode_slots * num_envs, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    parser.add_argument("--data-dir", default=None, help="trace directory; default: the config's default")
    parser.add_argument("--episode-slots", type=int, default=288, help="slots per episode (288: one day)")
    args = parser.parse_args()
    cfg = DataCenterConfig(data_dir=args.data_dir, episode_slots=args.episode_slots)
    single = time_single(cfg, args.seconds)
    rows = [("single env", single)] + [
        (f"batched env, B={b}", time_batched(cfg, b, args.seconds)) for b in (1, 64, 256)
    ]
    table = Table(title=f"datacenter env speed (random actions, {cfg.n_asps} providers, {cfg.episode_slots} slots)")
    for col in ("env", "steps/s wall", "ratio wall", "steps/s CPU", "ratio CPU"):
        table.add_column(col, justify="left" if col == "env" else "right")
    for name, (wall, cpu) in rows:
        table.add_row(name, f"{wall:,.0f}", f"{wall / single[0]:.1f}x", f"{cpu:,.0f}", f"{cpu / single[1]:.1f}x")
    Console().print(table)


if __name__ == "__main__":
    main()

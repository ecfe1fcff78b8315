"""`datacenter` env speed, and one day under the best heuristic as a picture.

Speed: agent-steps/s of DataCenterEnv (3 agents, random actions drawn before timing), against a
reference measured in the same run: a do-nothing ParallelEnv with the same agents and spaces
whose step only builds PettingZoo's five return dicts from arrays it already has (the cost of
the API itself). Both as wall-clock and as CPU-time rates (the machine may be shared).
Target on a 2-core machine: >= 20,000 agent-steps/s.

Picture: the heuristics are compared on seeded days; the best one by utility is replayed for one
day and its prices, battery state of charge, jobs handed over and queues are saved as a PNG.

Usage: python benchmarks/datacenter.py [--seconds S] [--data-dir DIR] [--out outputs/datacenter_day.png]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from pettingzoo import ParallelEnv
from rich.console import Console
from rich.table import Table

from aigcsched.algorithms.datacenter_heuristics import DATACENTER_HEURISTICS, make_datacenter_heuristic
from aigcsched.envs import DataCenterConfig, DataCenterEnv
from aigcsched.platform.datacenter_evaluation import evaluate_datacenter


class NoOpParallelEnv(ParallelEnv):
    """The reference: same agents and spaces, no simulation."""

    def __init__(self, like: DataCenterEnv):
        self.possible_agents = list(like.possible_agents)
        self.agents = list(self.possible_agents)
        self.observation_spaces, self.action_spaces = like.observation_spaces, like.action_spaces
        self._obs = np.zeros((len(self.agents), like.cfg.obs_size), dtype=np.float32)
        self._t, self._n = 0, like.cfg.episode_slots

    def observation_space(self, agent):
        return self.observation_spaces[agent]

    def action_space(self, agent):
        return self.action_spaces[agent]

    def reset(self, seed=None, options=None):
        self.agents, self._t = list(self.possible_agents), 0
        return {a: self._obs[i] for i, a in enumerate(self.agents)}, {a: {} for a in self.agents}

    def step(self, actions):
        act = np.array([actions[a] for a in self.agents])
        self._t += 1
        done = self._t >= self._n
        agents = self.agents
        out = (
            {a: self._obs[i] for i, a in enumerate(agents)},
            dict(zip(agents, act[:, 0].astype(float).tolist(), strict=True)),
            dict.fromkeys(agents, done),
            dict.fromkeys(agents, False),
            {a: {} for a in agents},
        )
        if done:
            self.agents = []
        return out


def agent_steps_per_s(env, seconds: float) -> dict[str, float]:
    """Agent-steps per second over rounds of 1000 env steps: best and median of the rounds, by
    wall clock and by CPU time."""
    space = env.action_space(env.possible_agents[0])
    space.seed(0)
    actions = [{a: space.sample() for a in env.possible_agents} for _ in range(1000)]  # not timed
    k = len(env.possible_agents)
    walls, cpus = [], []
    deadline = time.perf_counter() + seconds
    env.reset(seed=0)
    while time.perf_counter() < deadline:
        wall, cpu = time.perf_counter(), time.process_time()
        for a in actions:
            if not env.agents:
                env.reset()
            env.step(a)
        walls.append(len(actions) * k / (time.perf_counter() - wall))
        cpus.append(len(actions) * k / max(time.process_time() - cpu, 1e-9))
    return {
        "wall best": max(walls),
        "wall median": float(np.median(walls)),
        "cpu best": max(cpus),
        "cpu median": float(np.median(cpus)),
    }


def plot_day(cfg: DataCenterConfig, name: str, seed: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    env = DataCenterEnv(cfg)
    policy = make_datacenter_heuristic(name, cfg, seed=seed)
    obs, _ = env.reset(seed=seed)
    while env.agents:
        obs, *_ = env.step(policy(obs, env.state()))
    led = env.ledger
    hours = np.arange(cfg.episode_slots) * cfg.slot_minutes / 60
    labels = [f"{r} ({m})" for r, m in zip(cfg.regions, cfg.models, strict=True)]
    fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    panels = (
        ("price", "price (USD/MWh)"),
        ("soc", "battery state of charge"),
        ("handed_out", "jobs handed over per slot"),
        ("queue", "jobs waiting (end of slot)"),
    )
    for ax, (key, ylabel) in zip(axes, panels, strict=True):
        for i, label in enumerate(labels):
            ax.plot(hours, led[key][:, i], label=label, lw=1.2)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel(f"hours since 00:00 UTC, day {env.day} of the year")
    source = "embedded typical days" if cfg.data_dir is None else "2023 traces"
    fig.suptitle(f"datacenter: one day under '{name}' ({source}, seed {seed})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="time per speed measurement")
    parser.add_argument("--data-dir", default=None, help="trace directory (default: embedded profiles)")
    parser.add_argument("--episodes", type=int, default=3, help="seeded days to rank the heuristics on")
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("outputs/datacenter_day.png"))
    args = parser.parse_args()
    cfg = DataCenterConfig(data_dir=args.data_dir)

    env = DataCenterEnv(cfg)
    rates = {"DataCenterEnv": agent_steps_per_s(env, args.seconds)}
    rates["no-op ParallelEnv (reference)"] = agent_steps_per_s(NoOpParallelEnv(env), args.seconds)
    ref = rates["no-op ParallelEnv (reference)"]
    table = Table(title="datacenter env speed: agent-steps/s (3 agents, random actions), rounds of 1000 steps")
    cols = ("wall best", "wall median", "cpu best", "cpu median")
    table.add_column("env")
    for col in cols:
        table.add_column(col, justify="right")
    table.add_column("ratio vs reference (wall median)", justify="right")
    for name, r in rates.items():
        table.add_row(name, *(f"{r[c]:,.0f}" for c in cols), f"{r['wall median'] / ref['wall median']:.3f}x")
    console = Console()
    console.width = max(console.width, 110)
    console.print(table)

    scores = {
        name: evaluate_datacenter(make_datacenter_heuristic(name, cfg, seed=args.seed), cfg, args.episodes, args.seed)
        for name in DATACENTER_HEURISTICS
    }
    best = max(scores, key=lambda n: scores[n]["utility"])
    ranking = Table(title=f"heuristics: utility (USD/day, all providers), mean of {args.episodes} days", min_width=70)
    ranking.add_column("policy")
    ranking.add_column("utility", justify="right")
    for name, m in sorted(scores.items(), key=lambda kv: -kv[1]["utility"]):
        ranking.add_row(name, f"{m['utility']:.1f}")
    console.print(ranking)
    plot_day(cfg, best, args.seed, args.out)
    console.print(f"one day under '{best}' saved to {args.out}")


if __name__ == "__main__":
    main()

"""`datacenter` env speed, and one day under the best heuristic as a picture.

Speed: agent-steps/s of DataCenterEnv (3 agents, random actions drawn before timing), against a
reference measured in the same run: a do-nothing ParallelEnv with the same agents and spaces
whose step only builds PettingZoo's five return dicts from arrays it already has (the cost of
the API itself). Both as wall-clock and as CPU-time rates (the machine may be shared).
Target on a 2-core machine: >= 20,000 agent-steps/s.

Picture: the heuristics are compared on seeded days; the best one by utility is replayed for one
day and its prices, battery state of charge, jobs handed over and queues are saved as a PNG.

Trained PPO (with --checkpoint or --train-minutes): the trained policy and every heuristic on the
same seeded held-out days (every fifth week of the year, never drawn in training), system utility
as a ratio to the best heuristic of this run, and one held-out day of the trained policy beside
the best heuristic. --train-minutes trains configs/datacenter_ppo.yaml through the platform
(`train()`, in a throwaway MLflow store) for that long first.
Target: trained >= 1.10 x the best heuristic's utility.

Usage: python benchmarks/datacenter.py [--seconds S] [--data-dir DIR] [--out outputs/datacenter_day.png]
       [--checkpoint PATH | --train-minutes M] [--heldout-episodes N]
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
from aigcsched.platform.problems.datacenter import evaluate_datacenter

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "datacenter_ppo.yaml"


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


def plot_days(cfg: DataCenterConfig, policies: dict, seed: int, path: Path) -> None:
    """One seeded day per policy, side by side (same day, same arrivals): prices, battery state of
    charge, jobs handed over and queues."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r} ({m})" for r, m in zip(cfg.regions, cfg.models, strict=True)]
    hours = np.arange(cfg.episode_slots) * cfg.slot_minutes / 60
    n = len(policies)
    fig, axes = plt.subplots(4, n, figsize=(10 * n if n == 1 else 7 * n, 11), sharex=True, sharey="row", squeeze=False)
    panels = (
        ("price", "price (USD/MWh)"),
        ("soc", "battery state of charge"),
        ("handed_out", "jobs handed over per slot"),
        ("queue", "jobs waiting (end of slot)"),
    )
    env = DataCenterEnv(cfg)
    for col, (name, policy) in enumerate(policies.items()):
        obs, _ = env.reset(seed=seed)
        while env.agents:
            obs, *_ = env.step(policy(obs, env.state()))
        led = env.ledger
        for row, (key, ylabel) in enumerate(panels):
            ax = axes[row, col]
            for i, label in enumerate(labels):
                ax.plot(hours, led[key][:, i], label=label, lw=1.2)
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel(ylabel)
        axes[0, col].set_title(f"'{name}': utility {led['utility'].sum():,.1f} USD")
        axes[-1, col].set_xlabel(f"hours since 00:00 UTC, day {env.day} of the year")
    axes[0, 0].legend(loc="upper right", fontsize=8)
    source = "embedded typical days" if cfg.data_dir is None else f"2023 traces, {cfg.day_split} days"
    fig.suptitle(f"datacenter: one day ({source}, seed {seed})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def train_policy(minutes: float, data_dir: str | None, console: Console) -> str:
    """Train configs/datacenter_ppo.yaml for `minutes` in a throwaway MLflow store; return the
    downloaded policy of the run (the one it kept, see `evaluation.select`)."""
    import tempfile

    import mlflow

    from aigcsched.platform.config import load_experiment
    from aigcsched.platform.tracking import run_policy_dir
    from aigcsched.platform.training import train

    root = tempfile.mkdtemp(prefix="datacenter-bench-")
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    overrides = {"env.config.data_dir": data_dir, "stop": {"minutes": minutes}, "tracking.register_model": False}
    exp = load_experiment(CONFIG, overrides)
    outcome = train(exp, console=console)
    console.print(f"trained {outcome.iterations} iterations, {outcome.env_steps:,} env steps")
    return run_policy_dir(outcome.run_id)


def compare_trained(checkpoint: str, episodes: int, seed: int, out: Path, console: Console) -> None:
    """Trained policy vs every heuristic on the same held-out days; ratio to the best heuristic."""
    from aigcsched.platform.trained_policy import load_policy_dir

    policy = load_policy_dir(checkpoint)
    cfg = policy.cfg.model_copy(update={"day_split": "heldout", "day": None})
    scores = {"trained PPO": evaluate_datacenter(policy, cfg, episodes, seed)}
    for name in DATACENTER_HEURISTICS:
        scores[name] = evaluate_datacenter(make_datacenter_heuristic(name, cfg, seed=seed), cfg, episodes, seed)
    best = max((n for n in scores if n != "trained PPO"), key=lambda n: scores[n]["utility"])
    ref = scores[best]["utility"]
    table = Table(title=f"held-out days: {episodes} seeded days (seeds {seed}..{seed + episodes - 1})", min_width=70)
    for col in ("policy", "utility (USD/day)", "vs best heuristic", "energy $", "violations"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for name, m in sorted(scores.items(), key=lambda kv: -kv[1]["utility"]):
        table.add_row(
            name,
            f"{m['utility']:.1f}",
            f"{m['utility'] / ref:.3f}x" if ref > 0 else f"{m['utility'] - ref:+.1f}",
            f"{m['energy_cost']:.1f}",
            f"{m['violation_rate']:.4f}",
        )
    console.print(table)
    ratio = scores["trained PPO"]["utility"] / ref
    console.print(f"trained PPO / best heuristic ('{best}') utility on held-out days: {ratio:.3f}x (target >= 1.10x)")
    plot_days(cfg, {best: make_datacenter_heuristic(best, cfg, seed=seed), "trained PPO": policy}, seed, out)
    console.print(f"one held-out day, '{best}' beside trained PPO, saved to {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="time per speed measurement")
    parser.add_argument("--data-dir", default=None, help="trace directory (default: embedded profiles)")
    parser.add_argument("--episodes", type=int, default=3, help="seeded days to rank the heuristics on")
    parser.add_argument("--seed", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path("outputs/datacenter_day.png"))
    trained = parser.add_mutually_exclusive_group()
    trained.add_argument("--checkpoint", help="training checkpoint (or policy folder) of a datacenter run")
    trained.add_argument("--train-minutes", type=float, help="train configs/datacenter_ppo.yaml this long first")
    parser.add_argument("--heldout-episodes", type=int, default=10, help="held-out days to compare on")
    parser.add_argument("--trained-out", type=Path, default=Path("outputs/datacenter_trained_day.png"))
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
    plot_days(cfg, {best: make_datacenter_heuristic(best, cfg, seed=args.seed)}, args.seed, args.out)
    console.print(f"one day under '{best}' saved to {args.out}")

    checkpoint = args.checkpoint
    if args.train_minutes:
        checkpoint = train_policy(args.train_minutes, args.data_dir, Console(stderr=True))
    if checkpoint:
        compare_trained(checkpoint, args.heldout_episodes, args.seed, args.trained_out, console)


if __name__ == "__main__":
    main()

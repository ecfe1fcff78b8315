"""Training on `edge`: the project's configuration against stock RLlib PPO, same wall time.

Stock: PPOConfig defaults, RLlib's default MLP module, gymnasium's sync vector env, 1 env runner.
Project: configs/edge_ppo.yaml (per-server scored module, batched numpy env).
Both train on the same scenario (paper defaults, capabilities observed) for --minutes each on the
same local Ray instance, then their greedy-decoded policies are evaluated on the same held-out
episodes beside greedy and myopic. Prints env steps/s as a ratio against stock, and rewards.
Usage: python benchmarks/train_edge.py [--minutes 5] [--episodes 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import ray
from ray.rllib.algorithms.ppo import PPOConfig
from rich.console import Console
from rich.table import Table

import aigcsched.envs  # noqa: F401  (registers the gymnasium id)
from aigcsched.envs import EDGE_ENV_ID
from aigcsched.platform.config import load_experiment
from aigcsched.platform.policies import resolve_policy
from aigcsched.platform.problems.edge import EDGE, evaluate_policy
from aigcsched.platform.rllib_setup import algorithm_config
from aigcsched.platform.tracking import trained_policy

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "edge_ppo.yaml"


def run_for(algo, seconds: float, console: Console, label: str) -> tuple[int, float]:
    """Train until the wall-time budget is spent; returns (env steps, seconds)."""
    start, steps = time.time(), 0
    while time.time() - start < seconds:
        result = algo.train()
        runners = result.get("env_runners", {})
        steps = int(runners.get("num_env_steps_sampled_lifetime", steps))
        console.log(f"{label}: iter {algo.iteration}, {steps:,} env steps, {steps / (time.time() - start):,.0f}/s")
    return steps, time.time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0, help="training wall time of each configuration")
    parser.add_argument("--episodes", type=int, default=5, help="held-out evaluation episodes")
    args = parser.parse_args()
    console = Console(stderr=True)
    exp = load_experiment(CONFIG)
    cfg = exp.scenario()
    ray.init(address="local", num_cpus=2, include_dashboard=False)

    stock = (
        PPOConfig()
        .environment(f"aigcsched.envs:{EDGE_ENV_ID}", env_config=cfg.model_dump())  # imports the module in workers
        .env_runners(num_env_runners=1, gym_env_vectorize_mode="sync")
        .build_algo()
    )
    project = algorithm_config(exp).build_algo()
    rows = {}
    for label, algo in (("stock RLlib PPO", stock), ("aigcsched PPO", project)):
        steps, seconds = run_for(algo, 60 * args.minutes, console, label)
        policy = EDGE.bind(trained_policy(algo, exp))
        reward = evaluate_policy(policy, cfg, args.episodes, exp.evaluation.seed).means()
        rows[label] = (steps / seconds, steps, reward)
        algo.stop()
    refs = {
        n: evaluate_policy(resolve_policy(n, cfg), cfg, args.episodes, exp.evaluation.seed).means()
        for n in ("greedy", "myopic")
    }

    base = rows["stock RLlib PPO"][0]
    table = Table(title=f"edge training, {args.minutes:g} min each, 2 CPUs; held-out seeds, {args.episodes} episodes")
    for col in ("configuration", "env steps/s", "ratio vs stock", "env steps", "reward", "quality", "tardiness (s)"):
        table.add_column(col, justify="left" if col == "configuration" else "right")
    for label, (rate, steps, m) in rows.items():
        table.add_row(
            label,
            f"{rate:,.0f}",
            f"{rate / base:.1f}x",
            f"{steps:,}",
            f"{m['reward']:.2f}",
            f"{m['quality']:.2f}",
            f"{m['tardiness']:.3f}",
        )
    for name, m in refs.items():
        table.add_row(
            f"{name} (reference)", "", "", "", f"{m['reward']:.2f}", f"{m['quality']:.2f}", f"{m['tardiness']:.3f}"
        )
    Console(width=140).print(table)
    ray.shutdown()


if __name__ == "__main__":
    main()

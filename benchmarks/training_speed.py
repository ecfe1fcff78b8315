"""Training speed per problem: env steps/s (and agent steps/s) of sampling alone and of whole
training iterations, for each sampling path, measured in one run.

Rows per problem, each with the project's config of that problem:
- `stock RLlib`: RLlib's default PPO module on the path RLlib would take (the reference);
- `multi_agent` (mec, datacenter): a shared policy on RLlib's MultiAgentEnvRunner over copies of
  the ParallelEnv (the platform's path before the agent-slots sampler);
- `agent_slots` (mec, datacenter): the same policy on the batched env, one slot per (episode, agent),
  with the config's episodes per runner and with 64;
- `project` (edge): configs/edge_ppo.yaml as shipped.
Figures are ratios against the first row of the problem (and against stock RLlib), since machines
are shared and noisy. With a CUDA device the learner also runs on the GPU (`--gpu`); without one,
the GPU rows say that they were not measured.

Usage: python benchmarks/training_speed.py [--problems edge mec datacenter] [--iterations 3]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import ray
from rich.console import Console
from rich.table import Table

from aigcsched.platform.config import load_experiment
from aigcsched.platform.rllib_setup import algorithm_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# The batched env pays off with many episodes at once; the same train batch, sampled from 64 of them.
WIDE = {"resources.num_envs_per_env_runner": 64}
# The project's config of each problem, with a shared policy where it is multi-agent.
VARIANTS = {
    "edge": [
        ("stock RLlib", "edge_ppo.yaml", {"algorithm.module": "default", "algorithm.anchor_scale": 0.0}),
        ("project", "edge_ppo.yaml", {}),
    ],
    "mec": [
        (
            "stock RLlib",
            "mec_ppo.yaml",
            {"algorithm.module": "default", "algorithm.anchor_scale": 0.0, "resources.sampler": "multi_agent"},
        ),
        ("multi_agent", "mec_ppo.yaml", {"resources.sampler": "multi_agent"}),
        ("agent_slots", "mec_ppo.yaml", {"resources.sampler": "agent_slots"}),
        ("agent_slots, 64 episodes", "mec_ppo.yaml", {"resources.sampler": "agent_slots", **WIDE}),
        # stations deciding in turn: a step per station, so the sampler's steps are turns (one slot per episode)
        (
            "agent_slots, in turn",
            "mec_ppo.yaml",
            {"resources.sampler": "agent_slots", "env.config.decision": "in_turn"},
        ),
    ],
    "datacenter": [
        (
            "stock RLlib",
            "datacenter_ppo.yaml",
            {
                "algorithm.module": "default",
                "algorithm.anchor_scale": 0.0,
                "algorithm.shared_policy": True,
                "resources.sampler": "multi_agent",
                "env.config.data_dir": "embedded",
            },
        ),
        (
            "multi_agent",
            "datacenter_ppo.yaml",
            {"algorithm.shared_policy": True, "resources.sampler": "multi_agent", "env.config.data_dir": "embedded"},
        ),
        (
            "agent_slots",
            "datacenter_ppo.yaml",
            {"algorithm.shared_policy": True, "resources.sampler": "agent_slots", "env.config.data_dir": "embedded"},
        ),
        (
            "agent_slots, 64 episodes",
            "datacenter_ppo.yaml",
            {
                "algorithm.shared_policy": True,
                "resources.sampler": "agent_slots",
                "env.config.data_dir": "embedded",
                **WIDE,
            },
        ),
    ],
}


def measure(config: str, overrides: dict, iterations: int, gpu: bool) -> dict[str, float]:
    """Env steps/s of sampling alone and of whole iterations (after one warm-up iteration)."""
    values = {**overrides, "stop.iterations": 1, "tracking.register_model": False}
    if gpu:
        values["resources.num_gpus_per_learner"] = 1
    exp = load_experiment(CONFIGS / config, values)
    k = exp.slots_per_env_step
    agents = len(exp.problem.agents(exp.scenario()))
    algo = algorithm_config(exp).build_algo()
    try:
        algo.train()  # warm-up: module build, first episodes, compilation of lazy paths
        runner = algo.env_runner_group.local_env_runner
        rllib_steps = exp.algorithm.train_batch_size * k
        start = time.perf_counter()
        runner.sample(num_timesteps=rllib_steps, random_actions=False)
        sample_s = time.perf_counter() - start
        before = algo.train()["env_runners"]["num_env_steps_sampled_lifetime"]
        start = time.perf_counter()
        for _ in range(iterations):
            after = algo.train()["env_runners"]["num_env_steps_sampled_lifetime"]
        train_s = time.perf_counter() - start
    finally:
        algo.stop()
    sample_rate = rllib_steps / k / sample_s
    train_rate = (after - before) / k / train_s
    return {"agents": agents, "sample": sample_rate, "train": train_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--iterations", type=int, default=3, help="timed training iterations per row")
    parser.add_argument("--gpu", action="store_true", help="learner on the GPU (needs CUDA)")
    args = parser.parse_args()
    console = Console()
    if args.gpu:
        import torch

        if not torch.cuda.is_available():
            console.print("--gpu: no CUDA device here; GPU learner figures not measured")
            args.gpu = False
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    learner = "GPU" if args.gpu else "CPU"
    table = Table(title=f"training speed, {args.iterations} iterations per row ({learner} learner)")
    for col in ("problem", "path", "sample env steps/s", "agent steps/s", "train env steps/s", "vs first", "vs stock"):
        table.add_column(col, justify="left" if col in ("problem", "path") else "right")
    for problem in args.problems:
        rows = {}
        for label, config, overrides in VARIANTS[problem]:
            console.log(f"{problem}: {label}")
            rows[label] = measure(config, overrides, args.iterations, args.gpu)
        first, stock = next(iter(rows.values())), rows["stock RLlib"]
        for label, r in rows.items():
            table.add_row(
                problem,
                label,
                f"{r['sample']:,.0f}",
                f"{r['sample'] * r['agents']:,.0f}",
                f"{r['train']:,.0f}",
                f"{r['train'] / first['train']:.2f}x",
                f"{r['train'] / stock['train']:.2f}x",
            )
    ray.shutdown()
    console.print(table)


if __name__ == "__main__":
    main()

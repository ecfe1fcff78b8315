"""`mec`: mean offloading delay of the baselines and of policies trained with RLlib: PPO with the
diffusion actor, PPO with an MLP actor of the same widths, DSAC, DQN and SAC (all on the
Discrete subset action, one policy shared by all base stations).

Every learned policy is trained for the same env-step budget per seed, then run greedily (argmax)
on the evaluation episodes the baselines of that seed play (seeds 1000 + 100 seed + k). The
table gives the mean delay per task over seeds with its 95% CI and the change against the
SMCoEdge-like baseline (the paper claims >= 13.54% lower delay than SMCoEdge). Each trained
(algorithm, seed) is an MLflow run (experiment `mec-delay`) with its training curve: mean delay
per task sampled in each iteration.
Usage: python benchmarks/mec_delay.py [--seeds 5] [--env-steps 20000] [--algorithms ...] [--set KEY=VALUE]
"""

from __future__ import annotations

import argparse
import os
import sys

import mlflow
import numpy as np
import ray
import torch
import yaml
from ray.rllib.algorithms.dqn import DQNConfig
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.algorithms.sac import SACConfig
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from rich.console import Console
from rich.table import Table

sys.path.insert(0, os.path.dirname(__file__))
from stats import mean_ci  # noqa: E402

from aigcsched.algorithms.diffusion.dsac import DSACConfig  # noqa: E402
from aigcsched.algorithms.diffusion.module import diffusion_module_spec  # noqa: E402
from aigcsched.algorithms.mec_heuristics import MEC_POLICIES, make_policy, run_episode  # noqa: E402
from aigcsched.envs.mec import MECConfig, MECEnv  # noqa: E402
from aigcsched.envs.rllib_adapter import MECRLlibEnv  # noqa: E402

LEARNED = ("PPO-diffusion", "PPO-MLP", "DSAC", "DQN", "SAC")
HIDDEN = (64, 64)
EVAL_SEED = 1000


def algo_config(name: str, env_config: dict, seed: int):
    if name.startswith("PPO"):
        spec = diffusion_module_spec(mlp=name == "PPO-MLP", hidden=HIDDEN, vf_hidden=HIDDEN)
        cfg = (
            PPOConfig()
            .training(lr=3e-4, train_batch_size_per_learner=2000, minibatch_size=250, num_epochs=4, gamma=0.9)
            .rl_module(rl_module_spec=MultiRLModuleSpec(rl_module_specs={"shared": spec}))
        )
    elif name == "DQN":
        cfg = DQNConfig().training(lr=5e-4, gamma=0.9).rl_module(model_config={"fcnet_hiddens": list(HIDDEN)})
    else:
        cls = DSACConfig if name == "DSAC" else SACConfig
        n_actions = MECEnv(env_config).action_space("bs_0").n
        cfg = cls().training(gamma=0.9, target_entropy=0.5 * float(np.log(n_actions)))
        model = {"fcnet_hiddens": list(HIDDEN)} | ({"hidden": HIDDEN} if name == "DSAC" else {})
        cfg = cfg.rl_module(model_config=model)
    return (
        cfg.environment(MECRLlibEnv, env_config=env_config)
        .multi_agent(policies={"shared"}, policy_mapping_fn=lambda agent_id, *args, **kwargs: "shared")
        .env_runners(num_env_runners=0)
        .reporting(min_sample_timesteps_per_iteration=1000)
        .debugging(seed=seed)
    )


def greedy_policy(module):
    def policy(env, agent, obs):
        with torch.no_grad():
            out = module.forward_inference({Columns.OBS: torch.as_tensor(obs[None])})
        return env.shares(agent, int(out[Columns.ACTION_DIST_INPUTS].argmax(-1)[0]))

    return policy


def evaluate(policy, cfg: MECConfig, episodes: int, seed: int) -> float:
    """Mean delay per task over the evaluation episodes of `seed` (episode seeds 1000 + 100 seed + k)."""
    env = MECEnv(cfg)
    return float(np.mean([run_episode(env, policy, EVAL_SEED + 100 * seed + k)["mean_delay"] for k in range(episodes)]))


def train(name: str, cfg: MECConfig, seed: int, env_steps: int, episodes: int) -> float:
    algo = algo_config(name, cfg.model_dump(), seed).build_algo()
    with mlflow.start_run(run_name=f"{name}-seed{seed}"):
        mlflow.log_params({"algorithm": name, "seed": seed, "env_steps": env_steps, **cfg.model_dump()})
        steps = 0
        while steps < env_steps:
            result = algo.train()
            steps = result["env_runners"]["num_env_steps_sampled_lifetime"]
            ret = result["env_runners"].get("episode_return_mean")
            if ret is not None:  # own-delay rewards: minus the summed delays of an episode's tasks
                tasks = cfg.n_servers * cfg.episode_slots * cfg.arrival_prob
                mlflow.log_metric("train_mean_delay", -ret / tasks, step=int(steps))
        delay = evaluate(greedy_policy(algo.get_module("shared")), cfg, episodes, seed)
        mlflow.log_metric("eval_mean_delay", delay)
    algo.stop()
    return delay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--env-steps", type=int, default=20000, help="env steps (slots) per training run")
    parser.add_argument("--episodes", type=int, default=5, help="evaluation episodes")
    parser.add_argument("--algorithms", nargs="+", default=list(MEC_POLICIES) + list(LEARNED))
    parser.add_argument("--set", action="append", default=[], help="MECConfig field, KEY=VALUE (YAML value)")
    args = parser.parse_args()
    cfg = MECConfig(**{k: yaml.safe_load(v) for k, v in (s.split("=", 1) for s in args.set)})
    delays: dict[str, list[float]] = {}
    if any(a in LEARNED for a in args.algorithms):
        mlflow.set_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"))
        mlflow.set_experiment("mec-delay")
        ray.init(address="local", num_cpus=2, include_dashboard=False)
    for name in args.algorithms:
        if name in MEC_POLICIES:  # seed s: the same evaluation episodes as the learned policies of seed s
            delays[name] = [evaluate(make_policy(name, seed), cfg, args.episodes, seed) for seed in range(args.seeds)]
        elif name in LEARNED:
            delays[name] = [train(name, cfg, seed, args.env_steps, args.episodes) for seed in range(args.seeds)]
        else:
            parser.error(f"unknown algorithm {name!r}; choose from {', '.join(MEC_POLICIES + LEARNED)}")
        print(name, delays[name], flush=True)
    ref = mean_ci(delays["smcoedge"])[0] if "smcoedge" in delays else None
    table = Table(title=f"mec, {cfg.n_servers} servers: mean delay per task (s), {args.seeds} seeds")
    for col in ("policy", "mean", "95% CI +-", "vs smcoedge"):
        table.add_column(col, justify="right")
    for name, values in delays.items():
        m, ci = mean_ci(values)
        table.add_row(name, f"{m:.3f}", f"{ci:.3f}", f"{(m / ref - 1) * 100:+.1f}%" if ref else "-")
    Console(width=100).print(table)


if __name__ == "__main__":
    main()

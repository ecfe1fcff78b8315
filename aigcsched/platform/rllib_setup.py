"""Experiment config -> RLlib algorithm config (new API stack), and the per-request metrics
that the env runners report every iteration."""

from __future__ import annotations

import numpy as np
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.tune.registry import register_env

from aigcsched.algorithms.edge_module import EdgeSchedulerModule, edge_model_config
from aigcsched.envs import make_edge_env
from aigcsched.platform.config import ExperimentConfig

RLLIB_EDGE_ENV = "aigcsched-edge"
REQUEST_METRICS = ("request_reward", "request_quality", "request_tardiness", "request_late_fraction")


class RequestMetrics(RLlibCallback):
    """Per-request means of what was sampled this iteration (episodes are 2000 steps long, so
    episode returns alone would report once in many iterations)."""

    def on_sample_end(self, *, env_runner=None, metrics_logger=None, samples=None, **kwargs):
        rewards, quality, tardiness = [], [], []
        for episode in samples or []:
            rewards.append(np.asarray(episode.get_rewards(), dtype=np.float64))
            infos = [i for i in episode.get_infos() if "quality" in i]
            quality += [i["quality"] for i in infos]
            tardiness += [i["tardiness"] for i in infos]
        if not quality:
            return
        tardiness = np.asarray(tardiness)
        values = (np.concatenate(rewards).mean(), np.mean(quality), tardiness.mean(), (tardiness > 0).mean())
        for key, value in zip(REQUEST_METRICS, values, strict=True):
            metrics_logger.log_value(key, float(value), reduce="mean", window=1)


def module_spec(exp: ExperimentConfig) -> RLModuleSpec | None:
    """The project's module, or None for RLlib's default MLP."""
    alg = exp.algorithm
    if alg.module == "default":
        return None
    model_config = edge_model_config(exp.scenario(), alg.hidden, alg.logit_scale, alg.value_scale)
    return RLModuleSpec(module_class=EdgeSchedulerModule, model_config=model_config)


def algorithm_config(exp: ExperimentConfig) -> PPOConfig:
    register_env(RLLIB_EDGE_ENV, make_edge_env)
    alg, res = exp.algorithm, exp.resources
    samplers = max(1, res.num_env_runners)
    fragment = max(1, alg.train_batch_size // (samplers * res.num_envs_per_env_runner))
    config = (
        PPOConfig()
        .environment(RLLIB_EDGE_ENV, env_config=exp.scenario().model_dump())
        .env_runners(
            num_env_runners=res.num_env_runners,
            num_envs_per_env_runner=res.num_envs_per_env_runner,
            gym_env_vectorize_mode="vector_entry_point",
            rollout_fragment_length=fragment,
        )
        .learners(num_gpus_per_learner=res.num_gpus_per_learner)
        .training(
            lr=alg.lr,
            gamma=alg.gamma,
            lambda_=alg.lambda_,
            train_batch_size_per_learner=alg.train_batch_size,
            minibatch_size=alg.minibatch_size,
            num_epochs=alg.num_epochs,
            entropy_coeff=alg.entropy_coeff,
            clip_param=alg.clip_param,
            vf_clip_param=alg.vf_clip_param,
        )
        .callbacks(RequestMetrics)
        .fault_tolerance(restart_failed_env_runners=True)
        .debugging(seed=exp.seed)
    )
    spec = module_spec(exp)
    if spec is not None:
        config = config.rl_module(rl_module_spec=spec)
    return config

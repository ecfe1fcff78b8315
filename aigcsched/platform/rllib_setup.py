"""Experiment config -> RLlib algorithm config (new API stack), and the metrics the env runners
report every iteration: per-request ones for `edge`, per-episode system ones for `datacenter`."""

from __future__ import annotations

import numpy as np
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.tune.registry import register_env

from aigcsched.algorithms.edge_module import EdgeSchedulerModule, edge_model_config
from aigcsched.envs import make_edge_env
from aigcsched.platform.config import ExperimentConfig
from aigcsched.platform.datacenter_evaluation import episode_metrics

RLLIB_EDGE_ENV = "aigcsched-edge"
REQUEST_METRICS = ("request_reward", "request_quality", "request_tardiness", "request_late_fraction")
# Per finished day, all providers together (see datacenter_evaluation.episode_metrics).
DATACENTER_METRICS = ("utility", "energy_cost", "violation_rate", "renewable_share", "handed_over", "quality")
SHARED_POLICY = "shared"


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


class DataCenterMetrics(RLlibCallback):
    """System metrics of each finished episode, read from the env's ledger; averaged over the
    last `num_envs_per_env_runner` episodes (about one iteration's worth when a batch is one day
    per sub-env)."""

    def on_episode_end(self, *, episode=None, env_runner=None, metrics_logger=None, env=None, env_index=0, **kw):
        ledger = env.envs[env_index].unwrapped.par_env.ledger
        if not len(ledger["utility"]):
            return
        m = episode_metrics(ledger, 0.0)
        window = env_runner.config.num_envs_per_env_runner
        for key in DATACENTER_METRICS:
            metrics_logger.log_value(f"episode_{key}", m[key], reduce="mean", window=window)


def policy_ids(exp: ExperimentConfig) -> list[str]:
    """One policy per provider (named like its agent), or one shared by all."""
    if exp.algorithm.shared_policy:
        return [SHARED_POLICY]
    return [f"asp_{i}" for i in range(exp.scenario().n_asps)]


def policy_mapping(shared: bool):
    """agent id -> policy id (a plain function of the flag, so it pickles to env runners)."""
    if shared:
        return _to_shared
    return _to_self


def _to_shared(agent_id, *args, **kwargs):
    return SHARED_POLICY


def _to_self(agent_id, *args, **kwargs):
    return agent_id


def module_spec(exp: ExperimentConfig) -> RLModuleSpec | None:
    """The project's module, or None for RLlib's default MLP."""
    alg = exp.algorithm
    if alg.module == "default":
        return None
    model_config = edge_model_config(exp.scenario(), alg.hidden, alg.logit_scale, alg.value_scale)
    return RLModuleSpec(module_class=EdgeSchedulerModule, model_config=model_config)


def algorithm_config(exp: ExperimentConfig) -> PPOConfig:
    """PPO for the experiment: single-agent on edge's batched env; on datacenter, multi-agent with
    one policy per provider (or one shared) on synchronously vectorized copies of the env."""
    alg, res = exp.algorithm, exp.resources
    samplers = max(1, res.num_env_runners)
    fragment = max(1, alg.train_batch_size // (samplers * res.num_envs_per_env_runner))
    config = PPOConfig()
    if exp.multi_agent:
        from aigcsched.envs.rllib_adapter import DataCenterRLlibEnv

        config = (
            config.environment(DataCenterRLlibEnv, env_config=exp.scenario().model_dump())
            .multi_agent(policies=set(policy_ids(exp)), policy_mapping_fn=policy_mapping(alg.shared_policy))
            .rl_module(model_config={"fcnet_hiddens": [alg.hidden, alg.hidden]})
            .callbacks(DataCenterMetrics)
        )
        vectorize = "sync"
    else:
        register_env(RLLIB_EDGE_ENV, make_edge_env)
        config = config.environment(RLLIB_EDGE_ENV, env_config=exp.scenario().model_dump()).callbacks(RequestMetrics)
        vectorize = "vector_entry_point"
    config = (
        config.env_runners(
            num_env_runners=res.num_env_runners,
            num_envs_per_env_runner=res.num_envs_per_env_runner,
            gym_env_vectorize_mode=vectorize,
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
        .fault_tolerance(restart_failed_env_runners=True)
        .debugging(seed=exp.seed)
    )
    spec = None if exp.multi_agent else module_spec(exp)
    if spec is not None:
        config = config.rl_module(rl_module_spec=spec)
    return config

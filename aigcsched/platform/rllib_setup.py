"""Experiment config -> RLlib algorithm config (new API stack), and the metrics the env runners
report every iteration: per-request ones for `edge`, per-episode system ones for `datacenter`,
per-task delays for `mec`."""

from __future__ import annotations

import numpy as np
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.algorithms.dqn import DQNConfig
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.algorithms.sac import SACConfig
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.tune.registry import register_env

from aigcsched.algorithms.diffusion.dsac import DSACConfig
from aigcsched.algorithms.diffusion.module import diffusion_module_spec
from aigcsched.algorithms.edge_module import EdgeSchedulerModule, edge_model_config
from aigcsched.envs import make_edge_env
from aigcsched.platform.config import ExperimentConfig
from aigcsched.platform.datacenter_evaluation import episode_metrics

RLLIB_EDGE_ENV = "aigcsched-edge"
REQUEST_METRICS = ("request_reward", "request_quality", "request_tardiness", "request_late_fraction")
# Per finished day, all providers together (see datacenter_evaluation.episode_metrics).
DATACENTER_METRICS = ("utility", "energy_cost", "violation_rate", "renewable_share", "handed_over", "quality")
# Per finished episode, all stations together.
MEC_METRICS = ("mean_delay", "mean_parts")
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


class MECMetrics(RLlibCallback):
    """Mean delay and parts per task of each finished episode, from the env's tally (exact in every
    reward mode, also the sparse one); averaged like DataCenterMetrics."""

    def on_episode_end(self, *, episode=None, env_runner=None, metrics_logger=None, env=None, env_index=0, **kw):
        tally = env.envs[env_index].unwrapped.par_env.tally.values()
        tasks = sum(t["tasks"] for t in tally)
        if not tasks:
            return
        window = env_runner.config.num_envs_per_env_runner
        values = (sum(t["delay_s"] for t in tally) / tasks, sum(t["parts"] for t in tally) / tasks)
        for key, value in zip(MEC_METRICS, values, strict=True):
            metrics_logger.log_value(f"episode_{key}", value, reduce="mean", window=window)


def agent_ids(exp: ExperimentConfig) -> list[str]:
    """The agents of a multi-agent experiment, in the env's order."""
    if exp.env.id == "mec":
        return [f"bs_{i}" for i in range(exp.scenario().n_servers)]
    return [f"asp_{i}" for i in range(exp.scenario().n_asps)]


def policy_ids(exp: ExperimentConfig) -> list[str]:
    """One policy per agent (named like its agent), or one shared by all."""
    if exp.algorithm.shared_policy:
        return [SHARED_POLICY]
    return agent_ids(exp)


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
    """The module of every policy, or None for the algorithm's default (RLlib's MLP, DSAC's own)."""
    alg = exp.algorithm
    if alg.name != "PPO" or alg.module == "default":
        return None
    if alg.module == "edge_scheduler":
        model_config = edge_model_config(exp.scenario(), alg.hidden, alg.logit_scale, alg.value_scale)
        return RLModuleSpec(module_class=EdgeSchedulerModule, model_config=model_config)
    widths = (alg.hidden, alg.hidden)
    return diffusion_module_spec(
        mlp=alg.module == "mlp",
        n_steps=alg.diffusion_steps,
        schedule=alg.diffusion_schedule,
        x0_clip=alg.diffusion_x0_clip,
        hidden=widths,
        vf_hidden=widths,
    )


def _base_config(exp: ExperimentConfig) -> AlgorithmConfig:
    """The algorithm's own settings (PPO's clipped objective, or SAC-type / DQN replay learning)."""
    alg = exp.algorithm
    if alg.name == "PPO":
        samplers = max(1, exp.resources.num_env_runners)
        fragment = max(1, alg.train_batch_size // (samplers * exp.resources.num_envs_per_env_runner))
        return (
            PPOConfig()
            .env_runners(rollout_fragment_length=fragment)
            .training(
                lr=alg.lr,
                lambda_=alg.lambda_,
                train_batch_size_per_learner=alg.train_batch_size,
                minibatch_size=alg.minibatch_size,
                num_epochs=alg.num_epochs,
                entropy_coeff=alg.entropy_coeff,
                clip_param=alg.clip_param,
                vf_clip_param=alg.vf_clip_param,
            )
        )
    buffer = {
        "type": "MultiAgentEpisodeReplayBuffer" if exp.multi_agent else "EpisodeReplayBuffer",
        "capacity": alg.replay_capacity,
    }
    common = {
        "train_batch_size_per_learner": alg.replay_batch_size,
        "num_steps_sampled_before_learning_starts": alg.learning_starts,
        "replay_buffer_config": buffer,
        "training_intensity": alg.training_intensity,
    }
    if alg.name == "DQN":
        config = DQNConfig().training(lr=alg.lr, **common)
    else:
        config = (DSACConfig() if alg.name == "DSAC" else SACConfig()).training(
            actor_lr=alg.lr,
            critic_lr=alg.lr,
            alpha_lr=alg.lr,
            initial_alpha=alg.initial_alpha,
            # RLlib's "auto" target is -1 for a Discrete space, which drives alpha to 0 (see dsac.py)
            target_entropy=alg.target_entropy_ratio * float(np.log(_n_actions(exp))),
            **common,
        )
        if alg.name == "DSAC":
            config = config.training(learn_alpha=alg.learn_alpha)
    if alg.training_intensity is not None:
        # one sampling call per update: RLlib's default samples 1 env step per call (n_step), and
        # its per-call cost then dominates a 2-core run
        steps_per_update = max(1, round(alg.replay_batch_size / alg.training_intensity))
        config = config.env_runners(rollout_fragment_length=steps_per_update)
    # env steps per iteration, as for PPO; the updates per step follow RLlib's natural ratio
    return config.reporting(min_sample_timesteps_per_iteration=alg.train_batch_size)


def _n_actions(exp: ExperimentConfig) -> int:
    from aigcsched.envs.mec import MECEnv

    return int(MECEnv(exp.scenario()).action_space("bs_0").n)


def algorithm_config(exp: ExperimentConfig) -> AlgorithmConfig:
    """The experiment's algorithm: single-agent on edge's batched env; on datacenter and mec,
    multi-agent with one policy per agent (or one shared) on synchronously vectorized copies."""
    alg, res = exp.algorithm, exp.resources
    config = _base_config(exp)
    if exp.multi_agent:
        from aigcsched.envs.rllib_adapter import DataCenterRLlibEnv, MECRLlibEnv

        env_class, metrics = (
            (DataCenterRLlibEnv, DataCenterMetrics) if exp.env.id == "datacenter" else (MECRLlibEnv, MECMetrics)
        )
        config = (
            config.environment(env_class, env_config=exp.scenario().model_dump())
            .multi_agent(policies=set(policy_ids(exp)), policy_mapping_fn=policy_mapping(alg.shared_policy))
            .callbacks(metrics)
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
        )
        .learners(num_gpus_per_learner=res.num_gpus_per_learner)
        .training(gamma=alg.gamma)
        .fault_tolerance(restart_failed_env_runners=True)
        .debugging(seed=exp.seed)
    )
    if alg.name == "DSAC":
        actor = {
            "n_steps": alg.diffusion_steps,
            "schedule": alg.diffusion_schedule,
            "x0_clip": alg.diffusion_x0_clip,
            "hidden": (alg.hidden,) * 2,
        }
        config = config.rl_module(model_config=actor)
    if alg.name in ("DSAC", "DQN", "SAC") or alg.module == "default":
        config = config.rl_module(model_config={**config.model_config, "fcnet_hiddens": [alg.hidden, alg.hidden]})
    spec = module_spec(exp)
    if spec is not None:
        config = config.rl_module(rl_module_spec=spec)
    return _with_reward_shaping(config, exp)


def _with_reward_shaping(config: AlgorithmConfig, exp: ExperimentConfig) -> AlgorithmConfig:
    shaping = exp.reward_shaping
    if shaping.kind == "none":
        return config
    if shaping.kind == "curiosity":
        # the peer method: RLlib's own example piece (novelty = distance to recent observations)
        from ray.rllib.examples.connectors.classes.euclidian_distance_based_curiosity import (
            EuclidianDistanceBasedCuriosity,
        )

        eta = shaping.eta
        return config.training(
            learner_connector=lambda *args, **kwargs: EuclidianDistanceBasedCuriosity(intrinsic_reward_coeff=eta)
        )
    from aigcsched.algorithms.reward_shaping import add_reward_shaping

    return add_reward_shaping(
        config,
        kind=shaping.kind,
        eta=shaping.eta,
        steps=shaping.steps,
        width=shaping.width,
        warmup_steps=shaping.warmup_steps,
    )

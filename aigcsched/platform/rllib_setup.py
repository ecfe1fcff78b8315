"""Experiment config -> RLlib algorithm config (new API stack), for any problem and algorithm.

The problem's descriptor supplies the env, its vectorization and the metrics callback; this module
adds the algorithm, the actor module, the multi-agent policies and reward shaping.
"""

from __future__ import annotations

import numpy as np
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.algorithms.dqn import DQNConfig
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.algorithms.sac import SACConfig
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from aigcsched.algorithms import few_explorers
from aigcsched.algorithms.diffusion.dsac import DSACConfig
from aigcsched.algorithms.diffusion.module import diffusion_module_spec
from aigcsched.algorithms.edge_module import EdgeSchedulerModule, edge_model_config
from aigcsched.algorithms.mec_module import mec_scheduler_spec
from aigcsched.algorithms.reward_shaping import add_reward_shaping
from aigcsched.platform.config import ExperimentConfig

SHARED_POLICY = "shared"


def policy_ids(exp: ExperimentConfig) -> list[str]:
    """One policy per agent (named like its agent), one shared by all, or RLlib's single module
    (single-agent problems, and a shared policy on the agent-slots sampler)."""
    if not exp.multi_agent or exp.agent_slots:
        return [DEFAULT_MODULE_ID]
    if exp.algorithm.shared_policy:
        return [SHARED_POLICY]
    return exp.problem.agents(exp.scenario())


def agent_modules(exp: ExperimentConfig) -> dict[str, str]:
    """Agent -> the id of the module that acts for it, in the env's agent order."""
    agents = exp.problem.agents(exp.scenario())
    if not exp.multi_agent or exp.agent_slots:
        return dict.fromkeys(agents, DEFAULT_MODULE_ID)
    mapping = policy_mapping(exp.algorithm.shared_policy)
    return {agent: mapping(agent) for agent in agents}


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
    if alg.off_policy or alg.module == "default":
        return None
    if alg.module == "edge_scheduler":
        model_config = edge_model_config(exp.scenario(), alg.hidden, alg.logit_scale, alg.value_scale, alg.anchor_scale)
        return RLModuleSpec(module_class=EdgeSchedulerModule, model_config=model_config)
    if alg.module == "mec_scheduler":
        return mec_scheduler_spec(exp.scenario().n_servers, alg.hidden, alg.anchor_scale, alg.booked_work_start)
    widths = (alg.hidden, alg.hidden)
    # a centralized critic sees [own observation | global state]; the actor only the first part
    own = exp.problem.spaces(exp.scenario())[0].shape[0] if alg.central_critic else None
    return diffusion_module_spec(
        mlp=alg.module == "mlp",
        n_steps=alg.diffusion_steps,
        schedule=alg.diffusion_schedule,
        x0_clip=alg.diffusion_x0_clip,
        hidden=widths,
        vf_hidden=widths,
        actor_obs_size=own,
        anchor_scale=getattr(alg, "anchor_scale", 0.0),
    )


def _base_config(exp: ExperimentConfig) -> AlgorithmConfig:
    """The algorithm's own settings (PPO's clipped objective, or SAC-type / DQN replay learning)."""
    alg = exp.algorithm
    k = exp.slots_per_env_step  # RLlib counts the agent-slots sampler's agent steps as its env steps
    if not alg.off_policy:
        samplers = max(1, exp.resources.num_env_runners)
        # rounded up: RLlib refuses a fragment whose batches fall short of train_batch_size
        fragment = max(1, -(-alg.train_batch_size // (samplers * exp.resources.num_envs_per_env_runner)))
        return (
            PPOConfig()
            .env_runners(rollout_fragment_length=fragment)
            .training(
                lr=alg.lr,
                lambda_=alg.lambda_,
                train_batch_size_per_learner=alg.train_batch_size * k,
                # rows (agent steps) per SGD step, as RLlib's multi-agent learner takes it per module
                minibatch_size=alg.minibatch_size,
                num_epochs=alg.num_epochs,
                entropy_coeff=alg.entropy_coeff,
                clip_param=alg.clip_param,
                vf_clip_param=alg.vf_clip_param,
            )
        )
    buffer = {
        "type": "MultiAgentEpisodeReplayBuffer" if exp.multi_agent and not exp.agent_slots else "EpisodeReplayBuffer",
        "capacity": alg.replay_capacity,
    }
    common = {
        "train_batch_size_per_learner": alg.replay_batch_size,
        "num_steps_sampled_before_learning_starts": alg.learning_starts * k,
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
    return config.reporting(min_sample_timesteps_per_iteration=alg.train_batch_size * k)


def _n_actions(exp: ExperimentConfig) -> int:
    _, action_space = exp.problem.spaces(exp.scenario())
    return int(action_space.n)


def place_runner_episodes(*, env_runner, env, **kwargs) -> None:
    """RLlib seeds env runner w with seed + w and a batched env its episode i with that + i, so
    runners w and w + 1 would draw all but one of the same episodes: the project's batched envs,
    and the copies of its multi-agent envs in RLlib's vector env, space the runners apart instead
    (`place_runner`)."""
    runner, batched = env_runner.worker_index or 0, env.unwrapped
    if hasattr(batched, "place_runner"):
        batched.place_runner(runner)
        return
    copies = getattr(batched, "envs", [])  # RLlib's vector env of multi-agent env copies
    for copy in copies:
        if hasattr(copy.unwrapped, "place_runner"):
            copy.unwrapped.place_runner(runner, len(copies))


def algorithm_config(exp: ExperimentConfig) -> AlgorithmConfig:
    """The experiment's algorithm on the problem's env: single-agent; a policy shared by all agents
    on the agent-slots sampler; or multi-agent with one policy per agent (or one shared) on RLlib's
    MultiAgentEnvRunner."""
    alg, res = exp.algorithm, exp.resources
    config = _base_config(exp)
    if exp.agent_slots:
        from ray.tune.registry import register_env

        from aigcsched.platform import agent_slots

        register_env(agent_slots.ENV_NAME, agent_slots.make_env)
        scenario = exp.scenario().model_dump()
        config = (
            config.environment(
                agent_slots.ENV_NAME, env_config=agent_slots.env_config(exp.problem.name, scenario, alg.central_critic)
            )
            .callbacks(agent_slots.SlotMetrics)
            .env_runners(gym_env_vectorize_mode="vector_entry_point")
        )
    else:
        config = exp.problem.rllib_environment(config, exp.scenario())
    if exp.multi_agent and not exp.agent_slots:
        config = config.multi_agent(policies=set(policy_ids(exp)), policy_mapping_fn=policy_mapping(alg.shared_policy))
    envs = res.num_envs_per_env_runner * exp.slots_per_env_step
    config = (
        config.env_runners(num_env_runners=res.num_env_runners, num_envs_per_env_runner=envs)
        # every problem's actions are discrete: RLlib's action normalizing and clipping (on by
        # default) would only deep-copy and unbatch each sampled action
        .environment(normalize_actions=False, clip_actions=False)
        .learners(num_gpus_per_learner=res.num_gpus_per_learner)
        .training(gamma=alg.gamma)
        .fault_tolerance(restart_failed_env_runners=True)
        .debugging(seed=exp.env_seed)
        .callbacks(on_environment_created=place_runner_episodes)
    )
    if alg.name == "DSAC":
        actor = {
            "n_steps": alg.diffusion_steps,
            "schedule": alg.diffusion_schedule,
            "x0_clip": alg.diffusion_x0_clip,
            "hidden": (alg.hidden,) * 2,
        }
        config = config.rl_module(model_config=actor)
    if alg.off_policy or alg.module == "default":
        config = config.rl_module(model_config={**config.model_config, "fcnet_hiddens": [alg.hidden, alg.hidden]})
    spec = module_spec(exp)
    explorers = getattr(alg, "explorers", None)
    if explorers is not None:  # validated: PPO with one of the project's modules
        spec.model_config = {**spec.model_config, few_explorers.MODEL_CONFIG_KEY: explorers}
        config = config.learners(learner_class=few_explorers.FewExplorersPPOLearner)
    if spec is not None:
        config = config.rl_module(rl_module_spec=spec)
    return add_reward_shaping(config, exp.reward_shaping)

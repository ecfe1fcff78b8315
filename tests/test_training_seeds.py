"""Training episodes: two run seeds, and two env runners of one run, never draw the same episodes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from aigcsched.envs import make_edge_env
from aigcsched.platform import agent_slots
from aigcsched.platform.config import ConfigError, load_experiment
from aigcsched.platform.rllib_setup import algorithm_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
EPISODES = 4  # per env runner


def first_episodes(exp, runner: int) -> set[bytes]:
    """The episodes env runner `runner` of `exp`'s training draws first, its env made, placed and
    seeded as RLlib's env runners do."""
    config = algorithm_config(exp)
    if exp.env.id == "edge":
        env = make_edge_env({**exp.scenario().model_dump(), "num_envs": EPISODES})
    else:
        slots = agent_slots.env_config(exp.env.id, exp.scenario().model_dump(), False)
        env = agent_slots.make_env({**slots, "num_envs": EPISODES * exp.slots_per_env_step})
    config.callbacks_on_environment_created(env_runner=SimpleNamespace(worker_index=runner), env=env, env_context={})
    env.reset(seed=config.seed + runner)
    if exp.env.id == "edge":
        return {env._arrival[b].tobytes() + env._cap[b].tobytes() for b in range(EPISODES)}
    return {env.env._cap[:, b].tobytes() + env.env._mbit[..., b].tobytes() for b in range(EPISODES)}


@pytest.mark.parametrize("config", ["mec_ppo.yaml", "edge_ppo.yaml"])
def test_run_seeds_and_env_runners_draw_disjoint_episodes(config):
    def exp(seed: int):
        return load_experiment(CONFIGS / config, {"seed": seed, "resources.num_envs_per_env_runner": EPISODES})

    runs = [first_episodes(exp(seed), 0) for seed in (0, 1, 2)]
    runners = [first_episodes(exp(0), w) for w in (1, 2, 3)]
    drawn = runs + runners
    assert all(len(d) == EPISODES for d in drawn)
    assert all(not (a & b) for i, a in enumerate(drawn) for b in drawn[i + 1 :])


def test_training_seeds_are_bounded_and_apart_from_the_held_out_ones():
    mec = CONFIGS / "mec_ppo.yaml"  # 4 episodes per env runner
    with pytest.raises(ConfigError, match="seed"):
        load_experiment(mec, {"seed": 2**15})
    # run seed 15 trains on the episodes from 15 x 65536 = 983,040 on
    load_experiment(mec, {"seed": 15, "evaluation.seed": 983_040 + 4})
    with pytest.raises(ConfigError, match="overlap the training seeds"):
        load_experiment(mec, {"seed": 15, "evaluation.seed": 983_040 + 3})


def test_env_runners_of_the_multi_agent_sampler_draw_disjoint_episodes():
    """Per-agent policies sample copies of the multi-agent env in RLlib's vector env."""
    from ray.rllib.env.vector.sync_vector_multi_agent_env import SyncVectorMultiAgentEnv

    from aigcsched.envs.rllib_adapter import MECRLlibEnv

    exp = load_experiment(CONFIGS / "mec_ppo.yaml", {"algorithm.shared_policy": False})
    config = algorithm_config(exp)
    drawn = []
    for runner in (1, 2, 3):
        env = SyncVectorMultiAgentEnv([lambda: MECRLlibEnv(exp.scenario().model_dump())] * EPISODES)
        placed = SimpleNamespace(worker_index=runner)
        config.callbacks_on_environment_created(env_runner=placed, env=env, env_context={})
        env.reset(seed=config.seed + runner)  # RLlib: seed + worker index, copy i + i
        drawn.append({str(copy.par_env.np_random.bit_generator.state["state"]) for copy in env.envs})
    assert all(len(d) == EPISODES for d in drawn)
    assert all(not (a & b) for i, a in enumerate(drawn) for b in drawn[i + 1 :])

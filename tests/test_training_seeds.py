"""Training episodes: two run seeds, and two env runners of one run, never draw the same episodes."""

from __future__ import annotations

from pathlib import Path

import pytest
from ray.rllib.env.env_context import EnvContext

from aigcsched.platform import agent_slots
from aigcsched.platform.config import ConfigError, load_experiment
from aigcsched.platform.rllib_setup import algorithm_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
EPISODES = 4  # per env runner


def episodes_drawn(exp, runner: int) -> set[bytes]:
    """The episodes env runner `runner` of `exp`'s training draws first (seeded as RLlib seeds them)."""
    scenario = exp.scenario().model_dump()
    slots = agent_slots.env_config(exp.env.id, scenario, False)
    env = agent_slots.make_env(EnvContext({**slots, "num_envs": EPISODES * 5}, worker_index=runner))
    env.reset(seed=algorithm_config(exp).seed + runner)  # RLlib: seed + worker index
    batched = env.env
    return {batched._cap[:, b].tobytes() + batched._mbit[..., b].tobytes() for b in range(EPISODES)}


def mec(seed: int):
    return load_experiment(CONFIGS / "mec_ppo.yaml", {"seed": seed, "resources.num_envs_per_env_runner": EPISODES})


def test_run_seeds_and_env_runners_draw_disjoint_episodes():
    runs = [episodes_drawn(mec(seed), 0) for seed in (0, 1, 2)]
    assert all(len(r) == EPISODES for r in runs)
    assert not (runs[0] & runs[1]) and not (runs[1] & runs[2]) and not (runs[0] & runs[2])
    runners = [episodes_drawn(mec(0), w) for w in (1, 2, 3)]
    assert not (runners[0] & runners[1]) and not (runners[1] & runners[2]) and not (runs[0] & runners[0])


def test_training_seeds_are_bounded_and_apart_from_the_held_out_ones():
    with pytest.raises(ConfigError, match="seed"):
        mec(2**15)
    # run seed 15 trains on the episodes from 15 x 65536 = 983,040 on, 4 per runner
    load_experiment(CONFIGS / "mec_ppo.yaml", {"seed": 15, "evaluation.seed": 983_040 + EPISODES})
    with pytest.raises(ConfigError, match="overlap the training seeds"):
        load_experiment(CONFIGS / "mec_ppo.yaml", {"seed": 15, "evaluation.seed": 983_040 + EPISODES - 1})

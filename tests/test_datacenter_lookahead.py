"""`observe_lookahead`: a heuristic's action (`lookahead_plan`) as the last block of each observation."""

import numpy as np
import pytest

from aigcsched.algorithms.datacenter_heuristics import make_datacenter_heuristic
from aigcsched.envs import DataCenterEnv, DataCenterVectorEnv
from aigcsched.envs.datacenter.lookahead import PLANS, plan_one_hot

EMBEDDED = {"data_dir": "embedded"}
# The SD3.5 site far over its capacity: hand-offs and low step levels are planned.
BUSY = {"base_rate": (2700.0, 1450.0, 4000.0), "n_gpus": (32, 32, 24)}


def branches(cfg, block: np.ndarray) -> list[np.ndarray]:
    """The block's columns split per action branch."""
    return np.split(block, np.cumsum(cfg.action_nvec)[:-1], axis=-1)


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"agent_id_in_obs": True, **BUSY},
        {"lookahead_plan": "value_handoff"},
        {"lookahead_plan": "tuned_handoff", **BUSY},
        {"lookahead_plan": "deadline", **BUSY},
        {"lookahead_plan": "planned_handoff", **BUSY},  # the env's planner and the policy's, hour by hour
        {"lookahead_plan": "pooled_handoff", **BUSY},
    ],
)
def test_block_is_the_heuristics_action(config):
    env = DataCenterEnv(observe_lookahead=True, episode_slots=48, **EMBEDDED, **config)
    plain = DataCenterEnv(env.cfg.model_copy(update={"observe_lookahead": False}))
    width, policy = sum(env.cfg.action_nvec), make_datacenter_heuristic(env.cfg.lookahead_plan, env.cfg)
    assert env.cfg.obs_size == plain.cfg.obs_size + width
    handed = 0
    for seed in (0, 1, 2):
        obs, _ = env.reset(seed=seed)
        plain_obs, _ = plain.reset(seed=seed)
        rng = np.random.default_rng(seed)
        while env.agents:
            expected = policy(obs, env.state())
            for agent in env.agents:
                assert env.observation_space(agent).contains(obs[agent])
                # the block is last, after the rest of the observation as it is without the option
                assert np.array_equal(obs[agent][:-width], plain_obs[agent])
                for branch, choice in zip(branches(env.cfg, obs[agent][-width:]), expected[agent], strict=True):
                    assert sorted(branch.tolist()) == [0.0] * (len(branch) - 1) + [1.0]
                    assert np.argmax(branch) == choice
                handed += int(env.cfg.keep_levels[expected[agent][0]] < 1.0)
            # random actions half the time, so that queues vary more than under the heuristic
            if rng.random() < 0.5:
                actions = expected
            else:
                actions = {a: env.action_space(a).sample() for a in env.agents}
            obs, *_ = env.step(actions)
            plain_obs, *_ = plain.step(actions)
    if config.get("lookahead_plan") != "deadline" and config:  # `deadline` never hands off
        assert handed > 0


@pytest.mark.parametrize("heuristic", sorted(PLANS))
def test_batched_state_and_plan_equal_the_single_envs(heuristic):
    vec = DataCenterVectorEnv(3, episode_slots=12, observe_lookahead=True, **BUSY, **EMBEDDED)
    singles = [DataCenterEnv(vec.cfg) for _ in range(3)]
    vec.reset(seed=5)
    for i, env in enumerate(singles):
        env.reset(seed=5 + i)
    rng = np.random.default_rng(0)
    for t in range(vec.cfg.episode_slots + 1):  # the last state is after the episode's end
        state = vec.state()
        plan = PLANS[heuristic](vec.cfg, state)
        assert state.slot == t and plan_one_hot(vec.cfg, state).shape == (3, vec.n_agents, sum(vec.cfg.action_nvec))
        for i, env in enumerate(singles):
            single = env.state()
            assert single.slot == t and single.handoff_fee == state.handoff_fee
            for name in set(single._fields) - {"slot", "handoff_fee", "net_kw"}:  # the arrays
                assert np.array_equal(getattr(state, name)[i], getattr(single, name)), name
            if t == 0:  # no slot seen
                assert state.net_kw is None and single.net_kw is None
            else:
                assert np.array_equal(state.net_kw[i], single.net_kw)
            assert np.array_equal(plan[i], PLANS[heuristic](vec.cfg, single))
        if t < vec.cfg.episode_slots:
            actions = rng.integers(0, vec.single_action_space.nvec, size=(3, vec.n_agents, 5))
            vec.step(actions)
            for i, env in enumerate(singles):
                env.step(dict(zip(env.possible_agents, actions[i], strict=True)))

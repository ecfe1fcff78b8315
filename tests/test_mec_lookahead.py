"""The `observe_lookahead` block of the `mec` observation: the prior logits of a residual policy.

Contract: the last A entries of each agent's observation, <= 0, and their first maximum
(np.argmax) is the action `myopic` picks, ties included (the first in action order)."""

import copy

import numpy as np
import pytest
from pydantic import ValidationError

from aigcsched.algorithms.mec_heuristics import make_anticipating_myopic, myopic
from aigcsched.envs import MECConfig, MECEnv, MECVectorEnv


def first_earliest(env: MECEnv, i: int) -> int:
    """Myopic's rule written out independently: candidates in action order, Python's min keeps the first."""
    cfg = env.cfg
    splits = [env.split(i, s, r) for s in cfg.subsets() for r in cfg.split_rules]
    return min(range(len(splits)), key=lambda a: env.finish_after(i, splits[a]))


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"n_servers": 6, "max_split": 3},
        {"split_rules": ("finish_together", "capacity")},  # the rules in the other order
        {"max_split": 1},  # both rules equal on every action: ties everywhere
    ],
)
def test_argmax_is_myopics_action(overrides):
    env = MECEnv(observe_lookahead=True, episode_slots=30, **overrides)
    A = env.action_space("bs_0").n
    assert env.observation_space("bs_0").shape == (3 + 4 * env.cfg.n_servers + A,)
    checked = tied = 0
    for seed in range(4):
        obs, _ = env.reset(seed=seed)
        while env.agents:
            shares = {}
            for i, agent in enumerate(env.agents):
                prior = obs[agent][-A:]
                assert env.observation_space(agent).contains(obs[agent])
                if not env.instance.has_task[env.slot, i]:
                    assert not prior.any()
                    shares[agent] = np.eye(env.cfg.n_servers)[i]
                    continue
                best = first_earliest(env, i)
                assert int(np.argmax(prior)) == best and prior.max() == 0.0 and np.all(prior <= 0.0)
                shares[agent] = myopic(env, agent, obs[agent])
                assert np.array_equal(shares[agent], env.shares(agent, best))
                checked += 1
                tied += int((prior == 0.0).sum() > 1)
            obs, *_ = env.step_shares(shares)
        assert all(not o[-A:].any() for o in obs.values())  # the final observation has no tasks
    assert checked > 200 and tied > 10  # tie-breaking was exercised


def test_lookahead_is_the_negated_finish_gap():
    env = MECEnv(observe_lookahead=True, episode_slots=5)
    obs, _ = env.reset(seed=2)
    A = env.action_space("bs_0").n
    for i, agent in enumerate(env.agents):
        if env.instance.has_task[0, i]:
            finish = env.action_finishes(i)
            np.testing.assert_array_equal(obs[agent][-A:], (-(finish - finish.min())).astype(np.float32))


def test_spaces_and_config():
    plain, look = MECEnv(), MECEnv(observe_lookahead=True)
    n, A = plain.cfg.n_servers, plain.action_space("bs_0").n
    assert plain.observation_space("bs_0") == MECEnv().observation_space("bs_0")
    assert plain.observation_space("bs_0").shape == (3 + 4 * n,) and (plain.observation_space("bs_0").low == 0).all()
    space = look.observation_space("bs_0")
    assert (
        (space.low[: 3 + 4 * n] == 0).all()
        and (space.low[3 + 4 * n :] == -np.inf).all()
        and len(space.low) == 3 + 4 * n + A
    )
    assert MECVectorEnv(2, observe_lookahead=True).single_observation_space == space
    with pytest.raises(ValidationError, match="observe_lookahead needs action_mode 'subset'"):
        MECConfig(action_mode="weights", observe_lookahead=True)
    # anticipation applies to the look-ahead of stations deciding at once only
    assert MECConfig(lookahead_anticipation=2.0, observe_lookahead=True).anticipation == 2.0
    assert MECConfig(lookahead_anticipation=2.0).anticipation == 0.0
    in_turn = {"decision": "in_turn", "observe_lookahead": True, "episode_slots": 3}
    with_it, without = MECEnv(lookahead_anticipation=2.0, **in_turn), MECEnv(**in_turn)
    assert with_it.cfg.anticipation == 0.0
    obs, _ = with_it.reset(seed=1)
    plain, _ = without.reset(seed=1)
    while with_it.agents:
        assert all(np.array_equal(obs[a], plain[a]) for a in obs)
        obs, *_ = with_it.step({a: 1 for a in with_it.agents})
        plain, *_ = without.step({a: 1 for a in without.agents})


def expected_queues_by_hand(env: MECEnv, load: float) -> list[np.ndarray]:
    """What station i expects, written out on a copy: each station before it gets the mean task
    times arrival_prob x load in this slot and books myopic's split of it."""
    cfg, sim, rows = env.cfg, copy.deepcopy(env), []
    steps, mbit = sim.instance.task_steps.astype(float), sim.instance.task_mbit.copy()
    steps[sim.slot] = load * cfg.arrival_prob * (cfg.task_steps[0] + cfg.task_steps[1]) / 2
    mbit[sim.slot] = load * cfg.arrival_prob * (cfg.task_mbit[0] + cfg.task_mbit[1]) / 2
    sim.instance = sim.instance._replace(task_steps=steps, task_mbit=mbit)
    for i, agent in enumerate(env.possible_agents):
        rows.append(sim.free_at.copy())
        sim.place(i, myopic(sim, agent, None))
    return rows


def test_anticipation_expects_the_earlier_stations_bookings_and_its_argmax_is_anticipating_myopic():
    load = 2.0
    env = MECEnv(observe_lookahead=True, lookahead_anticipation=load, episode_slots=30)
    policy, A = make_anticipating_myopic(load), env.action_space("bs_0").n
    differs = checked = 0
    for seed in range(2):
        obs, _ = env.reset(seed=seed)
        while env.agents:
            expected = env.expected_queues(load)
            np.testing.assert_array_equal(expected, expected_queues_by_hand(env, load))
            assert np.array_equal(expected[0], env.free_at) and (expected[-1] >= env.free_at).all()
            shares = {}
            for i, agent in enumerate(env.agents):
                if not env.instance.has_task[env.slot, i]:
                    shares[agent] = np.eye(env.cfg.n_servers)[i]
                    continue
                prior = obs[agent][-A:]
                np.testing.assert_array_equal(prior, env.lookahead(i, expected[i]).astype(np.float32))
                shares[agent] = policy(env, agent, obs[agent])
                assert np.array_equal(shares[agent], env.shares(agent, int(np.argmax(prior))))
                differs += int(not np.array_equal(shares[agent], myopic(env, agent, obs[agent])))
                checked += 1
            obs, *_ = env.step_shares(shares)
    assert checked > 100 and differs > 10  # it does not always follow myopic

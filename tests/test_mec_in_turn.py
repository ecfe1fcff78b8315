"""`mec` with the stations deciding in turn (`decision: in_turn`): each step books one station's
task on the queues as booked by the stations before it, so that a policy sees what
`sequential_myopic` plans with; and the sampler that trains a shared policy on it (`TurnSlots`)."""

from pathlib import Path

import numpy as np
import pytest

from aigcsched.algorithms.mec_heuristics import make_sequential_myopic, myopic
from aigcsched.envs import MECEnv, MECVectorEnv
from aigcsched.envs.agent_slots import TurnSlots
from aigcsched.envs.mec import MECConfig
from aigcsched.platform.config import ConfigError, load_experiment

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

SMALL = {"n_servers": 4, "max_split": 2, "episode_slots": 25, "arrival_prob": 0.9, "observe_lookahead": True}


def test_the_look_ahead_on_turn_is_what_sequential_myopic_picks():
    """Played in turn by the look-ahead's best action, an episode books exactly what sequential_myopic
    books when all stations decide at once: the same split and delay for every task."""
    turns, together = MECEnv(**SMALL, decision="in_turn"), MECEnv(**SMALL)
    obs, _ = turns.reset(seed=7)
    together.reset(seed=7)
    plan, n_actions, booked, differs = make_sequential_myopic(), turns.action_space("bs_0").n, 0, 0
    while together.agents:
        expected = {
            a: plan(together, a, None)
            for i, a in enumerate(together.agents)
            if together.instance.has_task[together.slot, i]
        }
        differs += sum(not np.array_equal(x, myopic(together, a, None)) for a, x in expected.items())
        _, _, _, _, infos = together.step_shares(expected)
        for agent in turns.possible_agents:
            assert turns.turn_agent == agent
            # only the station on turn sees a look-ahead; the others' blocks are zeros
            assert all(not obs[a][-n_actions:].any() for a in turns.agents if a != agent)
            action = int(np.argmax(obs[agent][-n_actions:]))
            if agent in expected:
                assert np.array_equal(turns.shares(agent, action), expected[agent])
                assert np.array_equal(myopic(turns, agent, obs[agent]), expected[agent])
            obs, rewards, _, _, turn_infos = turns.step(dict.fromkeys(turns.agents, action))
            booked += turn_infos[agent]["has_task"]
            assert turn_infos[agent]["has_task"] == (agent in expected)
            assert rewards[agent] == -infos[agent].get("delay", 0.0)
            assert not any(turn_infos[a]["has_task"] or rewards[a] for a in turn_infos if a != agent)
        np.testing.assert_array_equal(turns.free_at, together.free_at)
    assert not turns.agents and booked == sum(t["tasks"] for t in together.tally.values()) > 50
    assert turns.tally == together.tally
    assert differs > 10  # the slot's earlier bookings changed later stations' choices


def test_turn_slots_are_the_station_on_turn_of_every_episode():
    venv, twin = (MECVectorEnv(3, **{**SMALL, "decision": "in_turn", "episode_slots": 2}) for _ in range(2))
    slots = TurnSlots(venv, with_state=True)
    K, own = venv.n_agents, slots.obs_size
    assert slots.num_envs == 3 and slots.single_observation_space.shape == (own + venv.state_size,)
    obs, _ = slots.reset(seed=1)
    every, _ = twin.reset(seed=1)
    rng = np.random.default_rng(0)
    for step in range(2 * K):
        turn = venv.turn
        assert turn == step % K
        np.testing.assert_array_equal(obs[:, :own], every[:, turn])
        np.testing.assert_array_equal(obs[:, 3 + 3 * K : 3 + 4 * K], np.eye(K)[[turn] * 3])  # the station index
        np.testing.assert_array_equal(obs[:, own:], venv.global_state())
        actions = rng.integers(0, slots.single_action_space.n, size=3)
        obs, rewards, terminated, truncated, _ = slots.step(actions)
        # the twin gets the same actions for the station on turn and others (ignored) for the rest
        full = rng.integers(0, slots.single_action_space.n, size=(3, K))
        full[:, turn] = actions
        every, twin_rewards, _, _, infos = twin.step(full)
        np.testing.assert_array_equal(rewards, twin_rewards[:, turn])
        np.testing.assert_array_equal(rewards, -infos["delay"][:, turn])
        assert not np.delete(infos["has_task"], turn, axis=1).any()
        assert truncated.all() == (step == 2 * K - 1) and not terminated.any()
    assert (venv.tally["tasks"] > 0).any()
    # the next step resets every episode (next-step autoreset)
    obs, rewards, *_ = slots.step(np.zeros(3, dtype=int))
    assert venv.turn == 0 and not rewards.any() and (venv.tally["tasks"] == 0).all()
    with pytest.raises(ValueError, match="in turn"):
        TurnSlots(MECVectorEnv(2, **SMALL))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"algorithm.shared_policy": False}, "decision: in_turn trains a policy shared by all stations"),
        ({"resources.sampler": "multi_agent"}, "decision: in_turn trains a policy shared by all stations"),
        ({"env.config.reward_mode": "sparse"}, "decision 'in_turn' takes reward_mode 'own' or 'team'"),
        ({"env.config.reward_mode": "marginal"}, "decision 'in_turn' takes reward_mode 'own' or 'team'"),
        # 4 episodes per runner deciding at once are 4 x 5 in turn (a sampler slot each): seeds up to seed + 19
        ({"evaluation.seed": 19}, "overlap the training seeds"),
    ],
)
def test_in_turn_training_needs_the_shared_policy_on_the_batched_env(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_experiment(CONFIGS / "mec_ppo.yaml", {"env.config.decision": "in_turn", **overrides})
    load_experiment(CONFIGS / "mec_ppo.yaml", {"env.config.decision": "in_turn", "evaluation.seed": 20})


def test_tables_name_how_the_stations_decide():
    exp = load_experiment(CONFIGS / "mec_ppo.yaml", {"env.config.decision": "in_turn"})
    assert exp.agent_slots and exp.problem.scenario_note(exp.evaluation_scenario()) == "stations decide in turn"
    assert exp.problem.scenario_note(MECConfig()) == "stations decide simultaneously"

"""MECVectorEnv against B separate MECEnv's.

Every comparison is exact (np.array_equal / ==), not to a tolerance: the batched env does the same
float operations per episode in the same order. Elementwise operations are the same whatever the
batch; sums over a split's servers are written out left to right, as numpy sums up to 7 values
(and fall back to numpy's own sum per subset size beyond that); the team reward adds the delays
station by station, as Python's sum(); maxima do not depend on the order.
"""

import numpy as np
import pytest

from aigcsched.envs import MECEnv, MECVectorEnv
from aigcsched.envs.mec import finish_together_shares
from aigcsched.envs.mec_vector import finish_together_batch, row_sums

INFO_KEYS = ("delay", "transfer", "queueing", "processing", "parts")


def random_actions(venv: MECVectorEnv, rng: np.random.Generator) -> np.ndarray:
    B, K, cfg = venv.num_envs, venv.n_agents, venv.cfg
    if cfg.action_mode == "subset":
        return rng.integers(0, venv.single_action_space.n, size=(B, K))
    return rng.integers(0, cfg.weight_levels, size=(B, K, cfg.n_servers))


def stack(per_agent: dict, agents: list[str]) -> np.ndarray:
    return np.stack([per_agent[a] for a in agents])


def play_and_compare(venv: MECVectorEnv, singles: list[MECEnv], seed: int | None, rng: np.random.Generator) -> int:
    """One whole episode in both; returns how many tasks were split over more than one server."""
    agents = venv.possible_agents
    obs, _ = venv.reset(seed=seed)
    for i, env in enumerate(singles):
        o, _ = env.reset(seed=None if seed is None else seed + i)
        assert np.array_equal(obs[i], stack(o, agents))
    multi = 0
    turns = venv.n_agents if venv.in_turn else 1  # in turn: a step per station and slot
    for _ in range(venv.cfg.episode_slots * turns):
        actions = random_actions(venv, rng)
        obs, rewards, terminated, truncated, infos = venv.step(actions)
        assert obs.dtype == np.float32 and rewards.shape == infos["delay"].shape == (venv.num_envs, len(agents))
        for i, env in enumerate(singles):
            o, r, te, tr, info = env.step(dict(zip(agents, actions[i], strict=True)))
            assert np.array_equal(obs[i], stack(o, agents))
            assert np.array_equal(rewards[i], stack(r, agents))
            assert terminated[i] == any(te.values()) and truncated[i] == all(tr.values())
            for k, a in enumerate(agents):
                assert infos["has_task"][i, k] == info[a]["has_task"]
                for key in INFO_KEYS:  # MECEnv gives these only with a task; the batch has 0 there
                    assert infos[key][i, k] == info[a].get(key, 0)
        multi += int((infos["parts"] > 1).sum())
    assert truncated.all() and not terminated.any()
    for i, env in enumerate(singles):
        for key in ("tasks", "delay_s", "parts"):
            assert np.array_equal(venv.tally[key][i], [env.tally[a][key] for a in agents])
    return multi


SCENARIOS = [
    (4, {"reward_mode": "own"}),  # paper defaults: 5 servers, subsets of 1-2, both split rules
    (5, {"reward_mode": "team", "n_servers": 3, "max_split": 3}),
    (8, {"reward_mode": "sparse", "n_servers": 6, "max_split": 3}),
    (6, {"reward_mode": "own", "n_servers": 6, "max_split": 1, "episode_slots": 40}),
    (4, {"reward_mode": "team", "max_split": 3, "split_rules": ("finish_together",), "arrival_prob": 0.9}),
    (4, {"reward_mode": "own", "action_mode": "weights", "n_servers": 3, "weight_levels": 3}),
    (6, {"reward_mode": "team", "action_mode": "weights", "n_servers": 6}),
    (4, {"reward_mode": "sparse", "action_mode": "weights", "episode_slots": 40}),
    # 8-server subsets: the split's sums take the per-size path (numpy sums 8+ values pairwise)
    (4, {"reward_mode": "team", "n_servers": 9, "max_split": 8, "episode_slots": 15}),
    # the look-ahead block: every action's split for every station, computed in one batch
    (4, {"reward_mode": "own", "observe_lookahead": True, "episode_slots": 40}),
    (5, {"reward_mode": "team", "n_servers": 6, "max_split": 3, "observe_lookahead": True, "episode_slots": 25}),
    (
        4,
        {
            "max_split": 3,
            "split_rules": ("finish_together",),
            "arrival_prob": 0.9,
            "observe_lookahead": True,
            "episode_slots": 30,
        },
    ),
    (3, {"n_servers": 9, "max_split": 8, "episode_slots": 3, "observe_lookahead": True}),
    # on the queues each station expects: the earlier stations' guessed bookings, batched
    (4, {"observe_lookahead": True, "lookahead_anticipation": 2.0, "episode_slots": 30}),
    (3, {"observe_lookahead": True, "lookahead_anticipation": 0.7, "n_servers": 6, "max_split": 3, "episode_slots": 9}),
    # stations deciding in turn: one station's booking per step, the look-ahead on the booked queues
    (4, {"decision": "in_turn", "observe_lookahead": True, "arrival_prob": 0.9, "episode_slots": 20}),
    (3, {"decision": "in_turn", "reward_mode": "team", "n_servers": 6, "max_split": 3, "episode_slots": 10}),
    (3, {"decision": "in_turn", "action_mode": "weights", "n_servers": 4, "episode_slots": 15}),
    # the booked-work block: every action's processing seconds per server, with and without the look-ahead
    (4, {"decision": "in_turn", "observe_lookahead": True, "observe_booked_work": True, "episode_slots": 20}),
    (3, {"observe_booked_work": True, "n_servers": 6, "max_split": 3, "episode_slots": 12}),
    (
        3,
        {"observe_lookahead": True, "observe_booked_work": True, "lookahead_anticipation": 2.0, "episode_slots": 15},
    ),
    # the difference reward: every station's pushes on every server, station by station
    (5, {"reward_mode": "marginal", "arrival_prob": 0.9, "episode_slots": 40}),
    (3, {"reward_mode": "marginal", "n_servers": 6, "max_split": 3, "split_rules": ("finish_together",)}),
    (3, {"reward_mode": "marginal", "action_mode": "weights", "n_servers": 4, "episode_slots": 30}),
]


@pytest.mark.parametrize("num_envs, overrides", SCENARIOS)
def test_equal_to_the_parallel_env_step_for_step(num_envs, overrides):
    venv = MECVectorEnv(num_envs, **overrides)
    singles = [MECEnv(**overrides) for _ in range(num_envs)]
    assert venv.single_observation_space == singles[0].observation_space("bs_0")
    assert venv.single_action_space == singles[0].action_space("bs_0")
    rng = np.random.default_rng(len(overrides))
    multi = play_and_compare(venv, singles, seed=10, rng=rng)
    multi += play_and_compare(venv, singles, seed=None, rng=rng)  # each episode's own stream goes on
    if venv.cfg.action_mode == "weights" or venv.cfg.max_split > 1:
        assert multi > 10  # splits were exercised


def test_finish_together_columns_equal_the_single_split():
    rng = np.random.default_rng(0)
    M, R, now = 3, 4000, 7.0
    size = rng.integers(1, M + 1, size=R)
    # idle servers (free before now), ties with now and between servers, own server (no transfer)
    free = np.where(rng.random((M, R)) < 0.3, now, now + rng.choice([-1.0, 0.5, 0.5, 2.0, 3.5], size=(M, R)))
    tx = np.where(rng.random((M, R)) < 0.3, 0.0, rng.uniform(0.004, 0.0125, size=(M, R)))
    proc = rng.uniform(0.4, 6.0, size=(M, R))
    x = finish_together_batch(free, tx, proc, now, size)
    for r in range(R):
        s = size[r]
        assert np.array_equal(x[:s, r], finish_together_shares(free[:s, r], tx[:s, r], proc[:s, r], now))
        assert not x[s:, r].any()


@pytest.mark.parametrize("width", [3, 7, 12])
def test_row_sums_equal_numpy_sums_of_the_unpadded_values(width):
    rng = np.random.default_rng(width)
    size = rng.integers(1, width + 1, size=(3, 50))
    values = rng.random((width, 3, 50)) * 10.0 ** rng.integers(-3, 4, size=(width, 3, 50))
    values[np.arange(width)[:, None, None] >= size] = 0.0
    sums = row_sums(values, size)
    for idx in np.ndindex(size.shape):
        assert sums[idx] == np.sum(values[(slice(None), *idx)][: size[idx]])


def test_global_state_layout():
    venv = MECVectorEnv(3, n_servers=4, episode_slots=5)
    N = 4
    assert venv.state_size == 2 * N + N * (N - 1) // 2 + 3 * N + 1 == venv.state_space.shape[0]
    obs, _ = venv.reset(seed=1)
    rng = np.random.default_rng(1)
    for t in range(6):
        state = venv.global_state()
        assert state.shape == (3, venv.state_size) and state.dtype == np.float32
        np.testing.assert_array_equal(state[:, :N], obs[:, 0, 3 : 3 + N])  # backlog
        np.testing.assert_array_equal(state[:, N : 2 * N], obs[:, 0, 3 + N : 3 + 2 * N])  # capacity / 50
        links = state[:, 2 * N : 2 * N + 6]
        np.testing.assert_allclose(links[:, :3], obs[:, 0, 3 + 2 * N + 1 : 3 + 3 * N], rtol=1e-6)  # bs_0's links
        heads = state[:, 2 * N + 6 : 2 * N + 6 + 3 * N].reshape(3, 3, N)
        np.testing.assert_array_equal(heads.transpose(0, 2, 1), obs[:, :, :3])  # has_task, Mbit, steps
        assert np.all(state[:, -1] == np.float32(t / 5))
        if t < 5:
            obs, *_ = venv.step(random_actions(venv, rng))


def test_episode_end_and_bad_actions_are_clear_errors():
    venv = MECVectorEnv(2, n_servers=3, episode_slots=2)
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(np.zeros((2, 3), dtype=int))
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        venv.step(np.zeros((2, 4), dtype=int))
    with pytest.raises(ValueError, match="lie in"):
        venv.step(np.full((2, 3), venv.single_action_space.n))
    venv.step(np.zeros((2, 3), dtype=int))
    *_, truncated, _ = venv.step(np.zeros((2, 3), dtype=int))
    assert truncated.all()
    with pytest.raises(RuntimeError, match="reset"):
        venv.step(np.zeros((2, 3), dtype=int))
    with pytest.raises(ValueError, match="num_envs"):
        MECVectorEnv(0)

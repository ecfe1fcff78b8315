"""DataCenterVectorEnv against DataCenterEnv: B batched episodes replay B single envs step for step.

Equality is exact (np.array_equal) for observations, rewards and every ledger field: the batched
phases do the same floating-point operations in the same order as the single env's (sums that
numpy would reorder are over whole job counts, exact in any order, or are written out in the
single env's order; the per-episode matrix products are the same products), so nothing is
compared with a tolerance.
"""

import numpy as np
import pytest
from trace_files import fixture_traces

from aigcsched.envs import DataCenterEnv, DataCenterVectorEnv
from aigcsched.envs.datacenter import LEDGER_FIELDS

EMBEDDED = {"data_dir": "embedded"}
# Four providers whose GPUs cannot keep up: queues grow, jobs turn late and pay penalties.
CONGESTED = {
    "regions": ("CAISO", "PJM", "ERCOT", "PJM"),
    "models": ("a", "b", "c", "d"),
    "n_gpus": (2, 3, 2, 4),
    "sec_per_step": (0.05, 0.1, 0.2, 0.1),
    "gpu_power_w": (400.0, 700.0, 700.0, 400.0),
    "gpu_idle_w": (50.0, 60.0, 70.0, 50.0),
    "quality_max": (0.4, 0.5, 0.6, 0.7),
    "quality_mid_steps": (8.0, 9.0, 10.0, 11.0),
    "quality_scale_steps": (3.0, 3.0, 3.0, 3.0),
    "base_rate": (800.0, 900.0, 600.0, 300.0),
    "pv_kwp": (10.0, 20.0, 30.0, 0.0),
    "wind_kw": (5.0, 0.0, 10.0, 20.0),
    "battery_kwh": (50.0, 100.0, 0.0, 20.0),
    "battery_kw": (25.0, 50.0, 0.0, 10.0),
}


def play_both(num_envs: int, seed: int, episodes: int = 2, **config):
    """Play `episodes` episodes (the first reset with `seed`, the next ones without) with the same
    random actions in a DataCenterVectorEnv and in num_envs DataCenterEnv's, comparing every step;
    returns the vector env and the single envs at the end."""
    vec = DataCenterVectorEnv(num_envs, **config)
    singles = [DataCenterEnv(vec.cfg) for _ in range(num_envs)]
    agents = vec.possible_agents
    rng = np.random.default_rng(seed)
    for episode in range(episodes):
        first = episode == 0
        obs, _ = vec.reset(seed=seed) if first else vec.reset()
        single_obs = [env.reset(seed=seed + i)[0] if first else env.reset()[0] for i, env in enumerate(singles)]
        assert obs.shape == (num_envs, len(agents), vec.cfg.obs_size) and obs.dtype == np.float32
        for i in range(num_envs):
            assert np.array_equal(obs[i], np.stack([single_obs[i][a] for a in agents]))
        for t in range(vec.cfg.episode_slots):
            actions = rng.integers(0, vec.single_action_space.nvec, size=(num_envs, len(agents), 5))
            obs, rewards, terminated, truncated, _ = vec.step(actions)
            assert rewards.shape == (num_envs, len(agents)) and rewards.dtype == np.float64
            assert terminated.tolist() == [t == vec.cfg.episode_slots - 1] * num_envs and not truncated.any()
            for i, env in enumerate(singles):
                o, r, term, trunc, _ = env.step(dict(zip(agents, actions[i], strict=True)))
                assert np.array_equal(obs[i], np.stack([o[a] for a in agents]))
                assert np.array_equal(rewards[i], [r[a] for a in agents])
                assert all(v == terminated[i] for v in term.values())
        assert sorted(vec.ledger) == sorted(LEDGER_FIELDS)
        for i, env in enumerate(singles):
            assert vec.days[i] == env.day
            for name, values in env.ledger.items():
                assert vec.ledger[name].shape == (num_envs, vec.cfg.episode_slots, len(agents))
                assert np.array_equal(vec.ledger[name][i], values), name
        assert vec.queued_jobs().tolist() == [env.queued_jobs() for env in singles]
    return vec, singles


@pytest.mark.parametrize(
    "num_envs, config",
    [
        (3, {"episode_slots": 24, "reward_mode": "dense", "handoff_delay_slots": 1}),
        (4, {"episode_slots": 24, "reward_mode": "sparse", "agent_id_in_obs": True, "handoff_delay_slots": 0}),
        (5, {"episode_slots": 24, "reward_mode": "team", "handoff_delay_slots": 1, "observe_lookahead": True}),
        # a whole day, with both optional blocks
        (6, {"reward_mode": "dense", "agent_id_in_obs": True, "handoff_delay_slots": 1, "observe_lookahead": True}),
        (3, {"reward_mode": "sparse", "handoff_delay_slots": 0, "day_split": "heldout"}),
        (4, {"reward_mode": "team", "agent_id_in_obs": True, "day_split": "train"}),
        # the plans that read the jobs due this slot (with jobs landing from a hand-off)
        (3, {"episode_slots": 24, "handoff_delay_slots": 1, "observe_lookahead": True, "lookahead_plan": "deadline"}),
        (3, {"handoff_delay_slots": 1, "observe_lookahead": True, "lookahead_plan": "value_handoff"}),
        # its battery band, precomputed for every slot
        (2, {"handoff_delay_slots": 1, "observe_lookahead": True, "lookahead_plan": "tuned_handoff"}),
        # its battery planned every hour on the net load seen
        (2, {"handoff_delay_slots": 1, "observe_lookahead": True, "lookahead_plan": "planned_handoff"}),
        # its routes searched for every episode at once
        (3, {"episode_slots": 96, "observe_lookahead": True, "lookahead_plan": "pooled_handoff"}),
    ],
)
def test_batched_episodes_equal_single_envs(num_envs, config):
    play_both(num_envs, seed=7, **EMBEDDED, **config)


@pytest.mark.parametrize("delay, lookahead", [(0, False), (1, True)])
def test_late_jobs_and_four_providers(delay, lookahead):
    config = {"handoff_delay_slots": delay, "observe_lookahead": lookahead}
    vec, _ = play_both(3, seed=1, episode_slots=40, **config, **CONGESTED, **EMBEDDED)
    led = vec.ledger
    assert (led["violations"].sum(axis=(1, 2)) > 0).all() and (led["handed_out"].sum(axis=(1, 2)) > 0).all()
    assert (led["queue"][:, -1].sum(axis=1) == vec.queued_jobs()).all()  # at the end everything left waits


@pytest.mark.parametrize(
    "classes",
    [
        # a one-slot class (late unless served on arrival), deadlines out of order
        {"deadline_slots": (3, 1, 5), "class_mix": (0.3, 0.3, 0.4), "late_penalty": (3e-4, 4e-4, 1e-4)},
        # two classes and jobs two slots in transit
        {"deadline_slots": (4, 6), "class_mix": (0.6, 0.4), "late_penalty": (3e-4, 2e-4), "handoff_delay_slots": 2},
    ],
)
def test_other_deadline_classes(classes):
    config = {"handoff_delay_slots": 0, "observe_lookahead": True, **classes}
    vec, _ = play_both(3, seed=4, episode_slots=30, **{**CONGESTED, "n_gpus": (4, 6, 4, 8)}, **config, **EMBEDDED)
    assert (vec.ledger["violations"].sum(axis=(1, 2)) > 0).all()


def test_trace_files_and_a_fixed_day():
    vec, _ = play_both(3, seed=2, episodes=1, data_dir=str(fixture_traces()), day=200, episode_slots=24)
    assert (vec.days == 200).all()


def test_spaces_and_errors():
    vec = DataCenterVectorEnv(2, episode_slots=3, **EMBEDDED)
    single = DataCenterEnv(vec.cfg)
    assert vec.possible_agents == single.possible_agents and vec.n_agents == 3 and vec.num_envs == 2
    assert vec.single_observation_space == single.observation_space("asp_0")
    assert vec.single_action_space == single.action_space("asp_0")
    with pytest.raises(RuntimeError, match="call reset"):
        vec.step(np.zeros((2, 3, 5), dtype=int))
    vec.reset(seed=0)
    with pytest.raises(ValueError, match="actions must have shape"):
        vec.step(np.zeros((2, 5), dtype=int))
    for _ in range(3):
        vec.step(np.zeros((2, 3, 5), dtype=int))
    with pytest.raises(RuntimeError, match="call reset"):
        vec.step(np.zeros((2, 3, 5), dtype=int))
    with pytest.raises(ValueError, match="num_envs"):
        DataCenterVectorEnv(0)


def test_global_state_layout():
    """Per provider: its own observation up to last slot's arrivals, jobs in transit to it, renewable
    power at each forecast hour; then the share of the episode elapsed."""
    cfg = {"episode_slots": 36, "handoff_delay_slots": 1, **EMBEDDED}
    vec = DataCenterVectorEnv(3, **cfg)
    k, f, c = vec.n_agents, len(vec.cfg.forecast_hours), len(vec.cfg.deadline_slots)
    own = c + f + 8  # queue per class, late, busy, soc, price, forecast, renewable, sin, cos, arrivals
    block = own + 1 + f
    assert vec.state_size == k * block + 1
    obs, _ = vec.reset(seed=3)
    others = [[j for j in range(k) if j != i] for i in range(k)]
    # the observation's normalizer: jobs per slot at the middle step level, full power
    jobs = np.array(vec.cfg.n_gpus) * vec.cfg.slot_minutes * 60 / vec.cfg.seconds_per_job()[:, 2, 0]
    rng = np.random.default_rng(0)
    renewable, states = [], []
    for t in range(vec.cfg.episode_slots):
        state = vec.global_state()
        assert state.shape == (3, vec.state_size) and state.dtype == np.float32
        blocks = state[:, :-1].reshape(3, k, block)
        assert np.array_equal(blocks[..., :own], obs[..., :own])
        assert np.allclose(state[:, -1], t / vec.cfg.episode_slots)
        actions = rng.integers(0, vec.single_action_space.nvec, size=(3, k, 5))
        obs, *_ = vec.step(actions)
        # what was handed over this slot is in transit to its receiver during the next (none after the last)
        dest = np.array([[others[i][a[i, 1]] for i in range(k)] for a in actions])
        handed = vec.ledger["handed_out"][:, t] * (t < vec.cfg.episode_slots - 1)
        to_k = np.stack([np.bincount(dest[e], weights=handed[e], minlength=k) for e in range(3)])
        assert np.allclose(vec.global_state()[:, :-1].reshape(3, k, block)[..., own], to_k / jobs, rtol=1e-6)
        renewable.append(vec.ledger["renewable_kwh"][:, t] / (vec.cfg.slot_minutes / 60))
        states.append(blocks[..., own + 1 :])
    # renewable power f hours ahead is the renewable power of the slot f hours later
    peak_kw = np.array(vec.cfg.n_gpus) * (np.array(vec.cfg.gpu_power_w) + vec.cfg.host_power_w) / 1000
    per_hour = 60 // vec.cfg.slot_minutes
    for t, ahead in enumerate(states):
        for j, hours in enumerate(vec.cfg.forecast_hours):
            if t + hours * per_hour < vec.cfg.episode_slots:
                np.testing.assert_allclose(ahead[..., j], renewable[t + hours * per_hour] / peak_kw, rtol=1e-6)


@pytest.mark.parametrize(
    "config", [EMBEDDED, {**CONGESTED, "observe_lookahead": True, "lookahead_plan": "pooled_handoff"}]
)
def test_fork_replays_or_redraws_the_rest_of_an_episode(config):
    cfg = {**config, "episode_slots": 40}
    env = DataCenterVectorEnv(2, cfg)
    env.reset(seed=3)
    rng = np.random.default_rng(0)
    k = env.n_agents
    actions = rng.integers(0, env.single_action_space.nvec, size=(40, 2, k, 5))
    for t in range(15):
        env.step(actions[t])
    copies = env.fork(1, 3)
    redrawn = env.fork(1, 4, np.random.default_rng(1), futures=2)
    assert copies.num_envs == 3 and redrawn.num_envs == 4
    for bad in ((2, 1, 1), (0, 0, 1), (0, 1, 0)):
        with pytest.raises(ValueError, match="fork needs"):
            env.fork(bad[0], bad[1], futures=bad[2])
    assert all(np.array_equal(redrawn._episode_arrivals[:15, i], env._episode_arrivals[:15, 1]) for i in range(4))
    later = redrawn._episode_arrivals[15:]
    assert np.array_equal(later[:, 0], later[:, 2]) and np.array_equal(later[:, 1], later[:, 3])
    assert not np.array_equal(later[:, 0], later[:, 1])
    assert not np.array_equal(later[:, 0], env._episode_arrivals[15:, 1])
    col = env._observations.renewable_column
    before = redrawn.state(), redrawn._obs[..., col]
    for t in range(15, 27):  # into the next hour: the copies know no more of the weather than now
        obs, *_ = redrawn.step(np.repeat(actions[t][1:], 4, axis=0))
    after = redrawn.state()
    assert np.array_equal(after.pue, before[0].pue) and np.array_equal(obs[..., col], before[1])
    assert not np.array_equal(after.price, before[0].price)  # day-ahead prices are known
    assert redrawn.global_state().shape == (4, redrawn.state_size)
    own = env.fork(1, 1)  # the episode's own weather did change
    for t in range(15, 27):
        own_obs, *_ = own.step(actions[t][1:])
    assert not (np.array_equal(own.state().pue, before[0].pue[:1]) and np.array_equal(own_obs[..., col], before[1][:1]))
    for t in range(15, 40):  # without a redraw every copy replays episode 1
        obs, reward, done, _, _ = env.step(actions[t])
        c_obs, c_reward, c_done, _, _ = copies.step(np.repeat(actions[t][1:], 3, axis=0))
        assert np.array_equal(c_obs, np.repeat(obs[1:], 3, axis=0))
        assert np.array_equal(c_reward, np.repeat(reward[1:], 3, axis=0))
        assert c_done.tolist() == [done[1]] * 3
    for name in LEDGER_FIELDS:
        assert np.array_equal(copies.ledger[name], np.repeat(env.ledger[name][1:], 3, axis=0)), name
    with pytest.raises(RuntimeError, match="running episode"):
        env.fork(0, 1)

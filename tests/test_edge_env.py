import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from aigcsched.envs import EDGE_ENV_ID, EdgeConfig, EdgeEnv, EdgeVectorEnv
from aigcsched.envs.edge import Instance, penalty


def q(s):  # the paper's quality curve, written out independently of the env
    return 30 + 35 / (1 + math.exp(-(0.1 * s - 9)))


@pytest.mark.parametrize("observe_capabilities", [False, True])
def test_gymnasium_check_env(observe_capabilities):
    env = gym.make(EDGE_ENV_ID, observe_capabilities=observe_capabilities, n_requests=50)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.observation_space.shape == (10 * (2 if observe_capabilities else 1) + 2,)


def test_quality_curve_and_penalties():
    cfg = EdgeConfig()
    assert cfg.quality_table()[120] == pytest.approx(q(120))
    assert cfg.quality_table()[120] == pytest.approx(63.340, abs=1e-3)
    assert cfg.quality_table()[1] == pytest.approx(30.0, abs=0.01)
    assert cfg.quality_table()[200] == pytest.approx(65.0, abs=0.01)
    assert penalty(np.array([4.0] * 3), np.arange(3)).tolist() == [4.0, 16.0, 2.0]
    assert cfg.probe_penalties() == pytest.approx([5.0, 25.0, math.sqrt(5)])


def test_hand_computed_scenario():
    """2 servers (10 and 5 steps/s), 3 requests with fixed arrival and due times."""
    cfg = EdgeConfig(n_servers=2, n_strong=1, n_requests=3)
    inst = Instance(
        capability=np.array([10.0, 5.0]),
        arrival=np.array([0.0, 1.0, 2.0]),
        due=np.array([5.0, 3.0, 4.0]),
        penalty=np.array([0, 1, 2]),  # linear, quadratic, sqrt
    )
    env = EdgeEnv(cfg)
    obs, _ = env.reset(options={"instance": inst})
    np.testing.assert_allclose(obs, [0, 0, 5, 5], rtol=1e-6)

    # r0 on server 0 with 40 steps: starts at 0, finishes at 4 <= due 5.
    obs, r, term, trunc, info = env.step([0, 39])
    assert r == pytest.approx(q(40)) and info == {
        "quality": pytest.approx(q(40)),
        "tardiness": 0.0,
        "late": False,
    }
    np.testing.assert_allclose(obs, [3, 0, 2, 25], rtol=1e-6)  # at t=1: server 0 busy until 4
    assert not term and not trunc

    # r1 on server 0 with 10 steps: waits until 4, finishes at 5, 2 s late, quadratic.
    obs, r, term, _, info = env.step([0, 9])
    assert info["tardiness"] == pytest.approx(2.0) and info["late"]
    assert r == pytest.approx(q(10) - 1.5 * 4.0)
    np.testing.assert_allclose(obs, [3, 0, 2, math.sqrt(5)], rtol=1e-6)

    # r2 on server 1 with 20 steps: starts at 2, finishes at 6, 2 s late, sqrt.
    obs, r, term, _, info = env.step([1, 19])
    assert r == pytest.approx(q(20) - 1.5 * math.sqrt(2.0))
    assert term
    np.testing.assert_allclose(obs, [3, 4, 0, 0], rtol=1e-6)  # servers free at 5 and 6, seen from t=2
    with pytest.raises(RuntimeError):
        env.step([0, 0])


def test_capabilities_drawn_per_episode_strong_first():
    env = EdgeEnv(n_requests=5)
    env.reset(seed=1)
    first = env.instance.capability.copy()
    assert np.all((first[:6] >= 12) & (first[:6] <= 18)) and np.all((first[6:] >= 6) & (first[6:] <= 10))
    env.reset()
    assert not np.array_equal(first, env.instance.capability)


def rollout(env, seed, n, actions_seed=0):
    rng = np.random.default_rng(actions_seed)
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for _ in range(n):
        obs, r, term, _, _ = env.step(rng.integers([0, 0], env.action_space.nvec))
        out += [obs, r]
        if term:
            obs, _ = env.reset()
    return out


def test_determinism_by_seed():
    a = rollout(EdgeEnv(n_requests=40), seed=7, n=100)
    b = rollout(EdgeEnv(n_requests=40), seed=7, n=100)
    c = rollout(EdgeEnv(n_requests=40), seed=8, n=100)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c, strict=True))


@pytest.mark.parametrize("observe_capabilities", [False, True])
def test_batched_env_equals_single_env(observe_capabilities):
    """Same seeds, same actions: the batched env replays each single env exactly, through autoresets."""
    n, B, seed = 30, 4, 11
    venv = gym.make_vec(
        EDGE_ENV_ID,
        num_envs=B,
        vectorization_mode="vector_entry_point",
        n_requests=n,
        observe_capabilities=observe_capabilities,
    )
    assert isinstance(venv.unwrapped, EdgeVectorEnv)
    singles = [EdgeEnv(n_requests=n, observe_capabilities=observe_capabilities) for _ in range(B)]
    obs, _ = venv.reset(seed=seed)
    np.testing.assert_array_equal(obs, np.stack([e.reset(seed=seed + i)[0] for i, e in enumerate(singles)]))
    rng = np.random.default_rng(3)
    done = np.zeros(B, dtype=bool)
    for _ in range(3 * n + 5):
        actions = rng.integers([0, 0], venv.single_action_space.nvec, size=(B, 2))
        obs, reward, term, trunc, info = venv.step(actions)
        for i, env in enumerate(singles):
            if done[i]:  # next-step autoreset
                o, r, t, extra = env.reset()[0], 0.0, False, {}
            else:
                o, r, t, _, extra = env.step(actions[i])
            np.testing.assert_array_equal(obs[i], o)
            assert reward[i] == r and term[i] == t and not trunc[i]
            if extra:
                assert info["quality"][i] == extra["quality"] and info["tardiness"][i] == extra["tardiness"]
        done = term


def test_batched_env_state_matches_single():
    venv = EdgeVectorEnv(num_envs=2, n_requests=10)
    venv.reset(seed=3)
    env = EdgeEnv(n_requests=10)
    env.reset(seed=4)
    for _ in range(5):
        venv.step(np.array([[0, 50], [2, 80]]))
        env.step([2, 80])
    single, batched = env.state(), venv.state()
    for a, b in zip(single, batched, strict=True):
        np.testing.assert_allclose(a, b[1])


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"n_strong": 11}, "n_strong"),
        ({"strong_capability": (0.0, 5.0)}, "strong_capability"),
        ({"weak_capability": (-1.0, 5.0)}, "weak_capability"),
        ({"mean_interarrival_s": 0.0}, "mean_interarrival_s"),
        ({"due_window_s": (5.0, 2.0)}, "due_window_s"),
        ({"max_steps": 0}, "max_steps"),
        ({"penalty_kinds": ("cubic",)}, "penalty_kinds"),
        ({"colour": 1}, "colour"),
    ],
)
def test_impossible_configs_are_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        EdgeConfig(**bad)


@pytest.mark.parametrize("observe_capabilities", [False, True])
def test_observation_from_state_matches_env(observe_capabilities):
    from aigcsched.envs import observation_from_state

    env = EdgeEnv(n_requests=20, observe_capabilities=observe_capabilities)
    obs, _ = env.reset(seed=2)
    for _ in range(10):
        np.testing.assert_array_equal(observation_from_state(env.state(), env.cfg), obs)
        obs, *_ = env.step([1, 150])
    venv = EdgeVectorEnv(num_envs=3, n_requests=20, observe_capabilities=observe_capabilities)
    obs, _ = venv.reset(seed=2)
    np.testing.assert_array_equal(observation_from_state(venv.state(), venv.cfg), obs)

import numpy as np
import pytest

from aigcsched.algorithms.datacenter_heuristics import (
    CHARGE,
    DISCHARGE,
    IDLE,
    arbitrage,
    handoff_plan,
    make_datacenter_heuristic,
    most_steps_that_clear,
)
from aigcsched.envs import DataCenterConfig, DataCenterEnv, DataCenterState
from aigcsched.platform.problems.datacenter import evaluate_datacenter


def state(**overrides) -> DataCenterState:
    base = dict(
        slot=0,
        queue=np.array([0.0, 0.0, 0.0]),
        expected_arrivals=np.array([100.0, 100.0, 100.0]),
        capacity=np.array([[500, 250, 170, 120, 100]] * 3, dtype=float),
        kwh_per_job=np.array([[0.001, 0.002, 0.003, 0.004, 0.005]] * 3),
        price=np.array([50.0, 20.0, 80.0]),
        day_prices=np.tile(np.arange(24, dtype=float) * 5, (3, 1)),  # median 57.5
        soc=np.array([0.5, 0.5, 0.5]),
        handoff_fee=0.0001,
    )
    return DataCenterState(**{**base, **overrides})


def test_most_steps_that_clear_the_queue():
    s = state(queue=np.array([0.0, 100.0, 1000.0]))
    # loads 100, 200, 1100: every level, up to 250 jobs (level 1), none (lowest level)
    assert most_steps_that_clear(s).tolist() == [4, 1, 0]


def test_handoff_goes_to_the_cheapest_site_with_room():
    cfg = DataCenterConfig()
    s = state(queue=np.array([0.0, 0.0, 200.0]))  # site 2: load 300 > 170 at the middle level
    keep, target = handoff_plan(cfg, s, level=2)
    assert keep[:2].tolist() == [0, 0]  # the others keep everything
    # site 2 is 130 jobs over; the cheapest site (1, at 20 USD/MWh) has room for 70 of its 100
    # arrivals: it hands off 75% (the smallest keep level that sends at least 70%)
    assert cfg.keep_levels[keep[2]] == 0.25 and target[2] == 1
    s = state(queue=np.array([200.0, 200.0, 200.0]))  # nobody has room
    keep, _ = handoff_plan(cfg, s, level=2)
    assert [cfg.keep_levels[i] for i in keep] == [1.0, 1.0, 1.0]


def test_arbitrage_charges_below_and_discharges_above_the_median():
    s = state(price=np.array([10.0, 57.5, 90.0]))
    assert arbitrage(s).tolist() == [CHARGE, IDLE, DISCHARGE]


def test_policies_return_valid_actions_for_every_agent():
    cfg = DataCenterConfig(episode_slots=4)
    env = DataCenterEnv(cfg)
    for name in ("random", "local", "handoff", "arbitrage", "combined"):
        policy = make_datacenter_heuristic(name, cfg, seed=0)
        obs, _ = env.reset(seed=0)
        while env.agents:
            actions = policy(obs, env.state())
            assert all(env.action_space(a).contains(np.asarray(actions[a])) for a in env.agents)
            obs, *_ = env.step(actions)
    with pytest.raises(ValueError, match="unknown policy 'nope'"):
        make_datacenter_heuristic("nope", cfg)


def test_heuristics_at_defaults():
    cfg = DataCenterConfig()
    res = {
        name: evaluate_datacenter(make_datacenter_heuristic(name, cfg, seed=0), cfg, episodes=2, seed=100)
        for name in ("random", "local", "arbitrage", "combined")
    }
    assert res["local"]["handed_over"] == 0.0 and res["local"]["violation_rate"] == 0.0
    assert res["local"]["utility"] > res["random"]["utility"]
    # battery arbitrage buys less expensive energy than running without the battery
    assert res["arbitrage"]["energy_cost"] < res["local"]["energy_cost"]
    assert res["arbitrage"]["revenue"] == pytest.approx(res["local"]["revenue"])
    # the SD3.5 site is over its 30-step capacity at peak: the combined policy hands jobs off
    assert res["combined"]["handed_over"] > 0

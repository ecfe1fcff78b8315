import numpy as np
import pytest
from pettingzoo.test import parallel_api_test, parallel_seed_test
from pydantic import ValidationError
from trace_files import fixture_traces, write_traces

from aigcsched.envs import DataCenterConfig, DataCenterEnv

SHORT = {"episode_slots": 48}


def random_episode(env: DataCenterEnv, seed: int, action_seed: int = 0):
    """Play one episode with uniformly random actions; returns the rewards per step."""
    env.reset(seed=seed)
    space = env.action_space(env.possible_agents[0])
    space.seed(action_seed)
    rewards = []
    while env.agents:
        _, r, _, _, _ = env.step({a: space.sample() for a in env.agents})
        rewards.append(r)
    return rewards


def test_pettingzoo_parallel_api_and_seed_tests():
    parallel_api_test(DataCenterEnv(**SHORT), num_cycles=60)
    parallel_seed_test(lambda: DataCenterEnv(**SHORT))


def test_spaces_and_observations():
    env = DataCenterEnv(**SHORT)
    assert env.possible_agents == ["asp_0", "asp_1", "asp_2"]
    assert env.action_space("asp_0").nvec.tolist() == [5, 2, 5, 3, 3]
    obs, infos = env.reset(seed=0)
    assert set(obs) == set(infos) == set(env.agents)
    space = env.action_space("asp_0")
    space.seed(0)
    while env.agents:
        for agent, o in obs.items():
            assert o.shape == (18,) and env.observation_space(agent).contains(o)
        obs, *_ = env.step({a: space.sample() for a in env.agents})


def test_same_seed_same_episode_other_seed_other_episode():
    a, b, c = (DataCenterEnv(**SHORT) for _ in range(3))
    ra, rb, rc = random_episode(a, 7), random_episode(b, 7), random_episode(c, 8)
    assert ra == rb
    for name in a.ledger:
        np.testing.assert_array_equal(a.ledger[name], b.ledger[name])
    assert ra != rc and a.day == b.day


def test_hand_computed_energy_and_money(tmp_path):
    """No jobs, one hour per slot: only the site's base load, wind and the battery."""
    prices = np.full(8760, 40.0)
    prices[1], prices[2] = 100.0, -10.0  # UTC hours 1 and 2 of day 0
    data = write_traces(tmp_path, price=prices, temperature=10.0, wind_kmh=36.0, carbon=200.0, renewable_pct=50.0)
    env = DataCenterEnv(
        data_dir=str(data),
        day=0,
        slot_minutes=60,
        episode_slots=3,
        regions=("CAISO", "PJM"),
        models=("a", "b"),
        n_gpus=(10, 10),
        sec_per_step=(0.1, 0.1),
        gpu_power_w=(400.0, 400.0),
        gpu_idle_w=(50.0, 50.0),
        host_power_w=200.0,
        quality_max=(0.5, 0.5),
        quality_mid_steps=(8.0, 8.0),
        quality_scale_steps=(3.0, 3.0),
        base_rate=(0.0, 0.0),
        pv_kwp=(0.0, 0.0),
        wind_kw=(2.0, 2.0),
        wind_hub_height_m=10.0,
        battery_kwh=(10.0, 10.0),
        battery_kw=(5.0, 5.0),
        battery_efficiency=0.81,
        battery_wear_usd_per_kwh=0.05,
    )
    env.reset(seed=0)
    for battery in (2, 0, 1):  # charge, discharge, idle
        env.step({a: np.array([0, 0, 0, battery, 0]) for a in env.agents})
    led = {k: v[:, 0] for k, v in env.ledger.items()}
    load = 10 * (200 + 50) / 1000 * 1.1  # IT kW x PUE (10 C: free cooling)
    wind = 2.0 * (10**3 - 3**3) / (12**3 - 3**3)  # 36 km/h = 10 m/s on the cubic part of the curve
    charge = (0.9 * 10 - 5.0) / 0.9  # room to soc_max, before the sqrt(0.81) = 0.9 charging loss
    discharge = load - wind  # only what the site needs
    bought = [load - wind + charge, 0.0, load - wind]
    np.testing.assert_allclose(led["load_kwh"], load)
    np.testing.assert_allclose(led["renewable_used_kwh"], wind)
    np.testing.assert_allclose(led["charge_kwh"], [charge, 0, 0])
    np.testing.assert_allclose(led["discharge_kwh"], [0, discharge, 0])
    np.testing.assert_allclose(led["bought_kwh"], bought, atol=1e-12)
    np.testing.assert_allclose(led["energy_cost"], np.array(bought) * [40, 100, -10] / 1000, atol=1e-12)
    np.testing.assert_allclose(led["degradation"], [0, 0.05 * discharge, 0])
    np.testing.assert_allclose(led["soc"] * 10, [9.0, 9.0 - discharge / 0.9, 9.0 - discharge / 0.9])
    np.testing.assert_allclose(led["utility"], -led["energy_cost"] - led["degradation"])
    np.testing.assert_allclose(led["grid_renewable_kwh"], np.array(bought) * 0.5, atol=1e-12)
    np.testing.assert_allclose(led["carbon_kg"], np.array(bought) * 0.2, atol=1e-12)
    assert led["utility"][2] > 0  # a negative price pays the buyer


@pytest.mark.parametrize("delay", [0, 1])
def test_jobs_are_never_lost_or_duplicated(delay):
    env = DataCenterEnv(handoff_delay_slots=delay)
    random_episode(env, seed=3)
    led = env.ledger
    assert led["handed_out"].sum() > 0
    assert led["arrivals"].sum() == led["served"].sum() + env.queued_jobs()
    assert led["executed"].sum() == led["served"].sum()
    assert led["fees_paid"].sum() == pytest.approx(led["fees_received"].sum())
    assert led["queue"][-1].sum() == env.queued_jobs()  # at the end everything left waits as late


def test_every_unserved_job_pays_its_penalty_once():
    env = DataCenterEnv(episode_slots=24, base_rate=(400.0, 300.0, 200.0), n_gpus=(1, 1, 1), class_mix=(1.0, 0.0, 0.0))
    random_episode(env, seed=1)
    led = env.ledger
    assert led["violations"].sum() > 0
    np.testing.assert_allclose(led["penalty"], led["violations"] * env.cfg.late_penalty[0])
    assert led["violations"].sum() >= env.queued_jobs()  # left-over jobs count as violations
    np.testing.assert_allclose(led["revenue"], led["quality_sum"] * env.cfg.revenue_per_quality)


def test_energy_balance_and_battery_limits():
    cfg = DataCenterConfig()
    env = DataCenterEnv(cfg)
    random_episode(env, seed=5)
    led = env.ledger
    h = cfg.slot_minutes / 60
    balance = led["load_kwh"] - led["renewable_used_kwh"] - led["discharge_kwh"] + led["charge_kwh"]
    np.testing.assert_allclose(led["bought_kwh"], balance, atol=1e-9)
    assert (led["bought_kwh"] >= 0).all()
    assert (led["renewable_used_kwh"] <= led["renewable_kwh"] + 1e-12).all()
    assert (led["charge_kwh"] <= np.array(cfg.battery_kw) * h + 1e-9).all()
    assert (led["discharge_kwh"] <= np.array(cfg.battery_kw) * h + 1e-9).all()
    assert (led["soc"] >= cfg.battery_soc_min - 1e-9).all() and (led["soc"] <= cfg.battery_soc_max + 1e-9).all()
    assert led["charge_kwh"].sum() > 0 and led["discharge_kwh"].sum() > 0


def test_reward_modes_sum_to_the_same_episode_utility():
    returns = {}
    for mode in ("dense", "sparse", "team"):
        env = DataCenterEnv(reward_mode=mode, **SHORT)
        rewards = random_episode(env, seed=11)
        returns[mode] = {a: sum(r[a] for r in rewards) for a in env.possible_agents}
        if mode == "sparse":
            assert all(v == 0.0 for r in rewards[:-1] for v in r.values())
        utility = env.ledger["utility"].sum(axis=0)
    for i, agent in enumerate(env.possible_agents):
        assert returns["sparse"][agent] == pytest.approx(returns["dense"][agent])
        assert returns["dense"][agent] == pytest.approx(utility[i])
        assert returns["team"][agent] == pytest.approx(utility.sum())


def test_embedded_profiles_and_files_both_drive_the_env():
    a = DataCenterEnv(day=200, **SHORT)
    b = DataCenterEnv(day=200, data_dir=str(fixture_traces()), **SHORT)
    random_episode(a, 0)
    random_episode(b, 0)
    assert not np.allclose(a.ledger["price"], b.ledger["price"])
    assert (a.ledger["renewable_kwh"] > 0).any() and (b.ledger["renewable_kwh"] > 0).any()


@pytest.mark.parametrize(
    "values, message",
    [
        ({"regions": ("CAISO",)}, "regions needs >= 2 providers"),
        ({"regions": ("CAISO", "MARS", "PJM")}, "unknown region(s) MARS"),
        ({"n_gpus": (8, 8)}, "n_gpus needs one entry per region (3)"),
        ({"class_mix": (0.5, 0.5, 0.5)}, "class_mix must be >= 0 and sum to 1"),
        ({"handoff_delay_slots": 2}, "handoff_delay_slots (2) must be < the shortest deadline"),
        ({"battery_soc_init": 0.95}, "soc_min <= soc_init <= soc_max"),
        ({"slot_minutes": 7}, "slot_minutes must divide 60"),
        ({"gpu_idle_w": (500.0, 75.0, 75.0)}, "gpu_idle_w must not exceed gpu_power_w"),
        ({"workload": "azure"}, "workload must be one of alibaba, google"),
        ({"reward_mode": "shaped"}, "Input should be 'dense', 'sparse' or 'team'"),
        ({"no_such_field": 1}, "Extra inputs are not permitted"),
    ],
)
def test_config_rejects_impossible_scenarios(values, message):
    with pytest.raises(ValidationError) as err:
        DataCenterConfig(**values)
    assert message in str(err.value)


def test_step_after_end_and_missing_actions_are_errors():
    env = DataCenterEnv(episode_slots=1)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="actions missing for agent asp_1"):
        env.step({"asp_0": np.zeros(5, dtype=int)})
    env.step({a: np.zeros(5, dtype=int) for a in env.agents})
    with pytest.raises(RuntimeError, match="call reset"):
        env.step({a: np.zeros(5, dtype=int) for a in env.possible_agents})

import functools
import json

import numpy as np
import pytest
from cli_runner import run_cli

from aigcsched.algorithms.datacenter_heuristics import DATACENTER_HEURISTICS, make_datacenter_heuristic
from aigcsched.algorithms.datacenter_optimum import (
    DataCenterOptimumPolicy,
    _PlannedBattery,
    _play,
    _Tracker,
    known_load_battery,
    plan,
    solve,
)
from aigcsched.envs.datacenter import PER_ASP_FIELDS, DataCenterConfig, DataCenterEnv
from aigcsched.envs.datacenter.lookahead import tuned_handoff_plan
from aigcsched.platform.errors import ConfigError
from aigcsched.platform.policies import resolve_policy
from aigcsched.platform.problems.datacenter import DATACENTER, run_episode

FULL = DataCenterConfig()
# Where the LP's relaxations (fractional jobs, mixed modes, any service order) cannot matter, its
# optimum is the env's: the relaxations' slack (one job of carry per slot, +-0.5 jobs of hand-off
# rounding, one job's busy seconds) is worth well under this share of the day.
EXACT_SHARE = 0.002
# On the busy small instances below, the schedule played through the env (one hand-off target per
# slot, one step level, FCFS) is within this share of the LP's bound (measured: 1-10%).
REPLAY_SHARE = 0.12


def small(k: int, slots: int, **fields) -> DataCenterConfig:
    """The first k providers of the default scenario, `slots` slots, the embedded typical days."""
    base = {f: getattr(FULL, f)[:k] for f in ("regions", *PER_ASP_FIELDS)}
    return DataCenterConfig(**{**base, "episode_slots": slots, "data_dir": "embedded", **fields})


@functools.cache
def solved(k: int, seed: int):
    cfg = small(k, 24)
    return cfg, solve(cfg, seed)


def utility(cfg: DataCenterConfig, policy, seed: int) -> float:
    return float(run_episode(DataCenterEnv(cfg), policy, seed)[0]["utility"].sum())


@pytest.mark.parametrize(("k", "seed"), [(2, 0), (3, 1)])
def test_schedule_beats_every_heuristic_and_the_bound_holds(k, seed):
    cfg, result = solved(k, seed)
    assert result.optimal
    assert result.actions.shape == (cfg.episode_slots, k, 5)
    assert result.utility <= result.bound + 1e-9
    assert result.bound - result.utility <= REPLAY_SHARE * result.bound
    # the parts of both figures add up to them, as the ledger's add up to the utility
    for total, parts in ((result.bound, result.model_parts), (result.utility, result.replay_parts)):
        revenue, penalty, energy, wear = (parts[k] for k in ("revenue", "penalty", "energy_cost", "degradation"))
        assert revenue - penalty - energy - wear == pytest.approx(total, rel=1e-6)
    for name in DATACENTER_HEURISTICS:
        h = utility(cfg, make_datacenter_heuristic(name, cfg, seed=0), seed)
        assert h <= result.utility, name


@pytest.mark.parametrize(
    "fields",
    [
        {"base_rate": (0.0, 0.0), "battery_kw": (0.0, 0.0)},  # energy only: idle GPUs, PUE, renewables, prices
        {"n_gpus": (400, 400)},  # capacity to spare: revenue, hand-offs, battery
    ],
)
def test_bound_is_the_env_utility_where_nothing_is_relaxed(fields):
    result = solve(small(2, 12, **fields), 0)
    assert result.optimal
    assert result.utility <= result.bound + 1e-9
    assert result.bound - result.utility <= EXACT_SHARE * abs(result.bound)


def test_policy_replays_the_schedule_in_evaluation():
    cfg, result = solved(2, 0)
    policy = resolve_policy("optimum", cfg, seed=0)
    assert isinstance(policy, DataCenterOptimumPolicy)
    metrics = DATACENTER.evaluate(policy, cfg, episodes=1, seed=0)
    assert metrics["utility"] == pytest.approx(result.utility, abs=1e-9)
    assert metrics["solver_bound"] == pytest.approx(result.bound, abs=1e-9)
    assert DATACENTER.upper_bound(cfg, episodes=1, seed=0) == pytest.approx(result.bound, abs=1e-9)


def test_time_limit_without_a_plan_still_plays_a_schedule():
    cfg = small(2, 24)
    result = solve(cfg, 0, time_limit_s=1e-3)
    assert not result.optimal
    assert np.isnan(result.bound)

    def play(obs, state):
        return {f"asp_{i}": a for i, a in enumerate(result.actions[state.slot])}

    assert result.utility == pytest.approx(utility(cfg, play, 0), abs=1e-9)


def test_bad_input():
    cfg = small(2, 4)
    with pytest.raises(ValueError, match="time_limit_s"):
        solve(cfg, 0, time_limit_s=0)
    with pytest.raises(ValueError, match="too long"):
        solve(cfg.model_copy(update={"episode_slots": 5000}), 0)
    with pytest.raises(RuntimeError, match="reset"):
        DataCenterEnv(cfg).hindsight()
    env = DataCenterEnv(cfg)
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match="begin"):
        DataCenterOptimumPolicy(cfg)({}, env.state())


def test_bad_time_limit_variable(monkeypatch):
    monkeypatch.setenv("AIGCSCHED_OPTIMUM_TIME_LIMIT_S", "soon")
    with pytest.raises(ConfigError, match="AIGCSCHED_OPTIMUM_TIME_LIMIT_S"):
        resolve_policy("optimum", small(2, 4), seed=0)


def test_evaluate_command_offers_optimum_and_bound(capsys, monkeypatch):
    args = ["evaluate", "datacenter", "-p", "local", "-p", "optimum", "--episodes", "1", "--seed", "3", "--bound"]
    code, out, err = run_cli(
        capsys, monkeypatch, *args, "--set", "episode_slots=12", "--set", "data_dir=embedded", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["local"]["utility"] <= result["optimum"]["utility"] <= result["upper bound"]["utility"] + 1e-9
    assert result["optimum"]["solver_bound"] == pytest.approx(result["upper bound"]["utility"])


def tuned_actions(env: DataCenterEnv, seed: int) -> np.ndarray:
    """(slot, K, 5) `tuned_handoff`'s actions over the episode of `seed`."""
    env.reset(seed=seed)
    tuned = []
    for _ in range(env.cfg.episode_slots):
        tuned.append(tuned_handoff_plan(env.cfg, env.state()))
        env.step(dict(zip(env.agents, tuned[-1], strict=True)))
    return np.array(tuned)


def test_one_rounding_is_tuned_handoff_with_the_plans_battery():
    cfg = small(3, 24)
    env = DataCenterEnv(cfg)
    env.reset(seed=1)
    lp_plan, status, bound = plan(env)
    actions, played, _ = _play(env, 1, _Tracker(cfg, lp_plan, 1, 0, heuristic="tuned_handoff"))
    tuned = tuned_actions(env, 1)
    # hand-offs, step levels and power caps are tuned_handoff's (the battery moves no job) ...
    assert np.array_equal(actions[..., [0, 1, 2, 4]], tuned[..., [0, 1, 2, 4]])
    # ... and the battery follows the plan's state of charge instead of the price band
    assert not np.array_equal(actions[..., 3], tuned[..., 3])
    assert played <= bound and solve(cfg, 1).utility >= played


def test_one_schedule_is_tuned_handoff_with_the_battery_planned_on_the_days_load():
    cfg = small(3, 96)
    env = DataCenterEnv(cfg)
    env.reset(seed=2)
    known = _PlannedBattery(env, 2)
    actions, played, _ = _play(env, 2, known)
    tuned = tuned_actions(env, 2)
    # the battery moves no job: the net load it was planned on is the one it meets
    assert np.array_equal(actions[..., [0, 1, 2, 4]], tuned[..., [0, 1, 2, 4]])
    led = env.ledger
    assert np.allclose(known.net_kw, (led["load_kwh"] - led["renewable_kwh"]).T * 12)
    # knowing that load beats forecasting it, which beats the price rule
    forecast = utility(cfg, make_datacenter_heuristic("planned_handoff", cfg), 2)
    assert played >= forecast > utility(cfg, make_datacenter_heuristic("tuned_handoff", cfg), 2)
    assert known_load_battery(cfg, 2) == played
    assert solve(cfg, 2).utility >= played


def test_pooled_handoff_with_the_days_load_is_a_schedule_too():
    cfg = small(3, 96)
    env = DataCenterEnv(cfg)
    known = _PlannedBattery(env, 2, "pooled_handoff")
    actions, played, _ = _play(env, 2, known)
    pooled = make_datacenter_heuristic("pooled_handoff", cfg)
    obs, _ = env.reset(seed=2)
    while env.agents:  # the same hand-offs and service, slot by slot, with its own battery
        t, act = env.state().slot, pooled(obs, env.state())
        assert np.array_equal(np.array([act[a] for a in env.agents])[:, [0, 1, 2, 4]], actions[t][:, [0, 1, 2, 4]])
        obs, *_ = env.step(act)
    assert played >= env.ledger["utility"].sum()
    assert known_load_battery(cfg, 2, "pooled_handoff") == played
    assert solve(cfg, 2).utility >= played
    with pytest.raises(ValueError, match="heuristic must be one of"):
        _PlannedBattery(env, 2, "tuned_handoff")

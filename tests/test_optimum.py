import functools
import itertools

import numpy as np
import pytest

from aigcsched.algorithms.heuristics import make_heuristic
from aigcsched.algorithms.optimum import OptimumPolicy, replay, solve, upper_bound
from aigcsched.envs import EdgeConfig, EdgeEnv
from aigcsched.envs.edge import draw_instance
from aigcsched.platform.problems.edge import episode_instances, evaluate_policy

# Busy scenarios (requests arrive faster than servers finish) so that choices interact.
TINY = EdgeConfig(n_servers=2, n_strong=1, n_requests=4, max_steps=4, mean_interarrival_s=0.1, due_window_s=(0.1, 0.4))
SMALL = EdgeConfig(n_requests=6, mean_interarrival_s=1.0)

# The model rounds times in the schedule's favour (see aigcsched/algorithms/optimum.py), so the
# env's optimum lies in [objective, bound]. A request the model sees on time can be up to
# ~s microseconds late in the env; under sqrt(t) that costs up to 1.5 * sqrt(8e-4 s) ~ 0.04 for
# a chain of 4 requests of 200 steps. Hence this budget on bound - objective for an OPTIMAL solve.
ROUNDING_BUDGET = 0.05


def instance(cfg, seed):
    return draw_instance(np.random.default_rng(seed), cfg)


@functools.cache
def solved_small(seed):
    inst = instance(SMALL, seed)
    return inst, solve(inst, SMALL, time_limit_s=60)


def heuristic_total(name, inst, cfg):
    env, policy = EdgeEnv(cfg), make_heuristic(name, cfg, seed=0)
    obs, _ = env.reset(options={"instance": inst})
    total = 0.0
    for _ in range(cfg.n_requests):
        obs, reward, *_ = env.step(policy(obs, env.state()))
        total += reward
    return total


@pytest.mark.parametrize("seed", range(4))
def test_equals_brute_force_on_tiny_instances(seed):
    inst = instance(TINY, seed)
    options = list(itertools.product(range(TINY.n_servers), range(TINY.max_steps)))
    best = max(replay(inst, TINY, seq) for seq in itertools.product(options, repeat=TINY.n_requests))
    result = solve(inst, TINY, time_limit_s=30)
    assert result.optimal
    assert result.objective <= best + 1e-9  # its schedule is one of those enumerated
    assert best <= result.bound + 1e-9  # the bound is valid
    assert best - result.objective <= result.bound - result.objective <= 1e-3  # 4 steps: tiny rounding


@pytest.mark.parametrize("seed", [0])
def test_schedule_replays_to_its_objective_and_beats_heuristics(seed):
    inst, result = solved_small(seed)
    assert result.optimal
    assert result.actions.shape == (SMALL.n_requests, 2)
    assert result.objective == pytest.approx(replay(inst, SMALL, result.actions), abs=1e-9)
    # at the optimum the integer model values the schedule at least as highly as the env does
    assert result.objective <= result.model_objective + 1e-9 <= result.bound + 2e-9
    assert result.bound - result.objective <= ROUNDING_BUDGET
    for name in ("random", "greedy", "myopic"):
        h = heuristic_total(name, inst, SMALL)
        assert h <= result.bound + 1e-9
        assert result.objective >= h - (result.bound - result.objective)
    assert result.objective > heuristic_total("myopic", inst, SMALL)  # busy: hindsight pays


def test_time_limited_solve_reports_a_valid_gap():
    cfg = EdgeConfig(n_requests=30, mean_interarrival_s=1.0)
    inst = instance(cfg, 0)
    result = solve(inst, cfg, time_limit_s=3)
    assert result.status in ("FEASIBLE", "UNKNOWN")
    assert result.gap > 0
    assert result.gap == pytest.approx((result.bound - result.objective) / abs(result.objective))
    assert result.objective == pytest.approx(replay(inst, cfg, result.actions), abs=1e-9)
    for name in ("greedy", "myopic"):
        assert heuristic_total(name, inst, cfg) <= result.bound


def test_upper_bound_is_valid():
    for seed in [0]:  # shares the solve with the test above
        inst, opt = solved_small(seed)
        cheap = upper_bound(inst, SMALL)
        blocks = upper_bound(inst, SMALL, block_size=3)
        assert opt.objective <= blocks + 1e-9 and blocks <= cheap + 1e-6
    full = EdgeConfig(mean_interarrival_s=2.0)  # full size: 2000 requests
    inst = instance(full, 0)
    cheap = upper_bound(inst, full)
    for name in ("random", "greedy", "myopic"):
        assert heuristic_total(name, inst, full) <= cheap


def test_optimum_policy_in_the_evaluation_loop():
    policy = OptimumPolicy(TINY, time_limit_s=30)
    result = evaluate_policy(policy, TINY, episodes=3, seed=7)
    totals = result.reward * TINY.n_requests
    instances = episode_instances(TINY, 3, 7)
    for total, solved, inst in zip(totals, policy.results, instances, strict=True):
        assert solved.optimal
        assert total == pytest.approx(solved.objective, abs=1e-9)  # the loop played the solved schedule
        assert solved.objective == pytest.approx(replay(inst, TINY, solved.actions), abs=1e-9)  # same episode
        assert total >= heuristic_total("myopic", inst, TINY) - (solved.bound - solved.objective)

"""Few-seed statistics (Agarwal et al., NeurIPS 2021): IQM, stratified bootstrap, P(improvement), profiles."""

import numpy as np
import pytest

from aigcsched.platform.statistics import (
    iqm,
    performance_profile,
    probability_of_improvement,
    stratified_bootstrap,
    summarize,
    trimmed_mean,
)


def test_iqm_drops_the_top_and_bottom_quarter():
    assert iqm([1.0, 2, 3, 4, 100]) == pytest.approx(3.0)  # 5 runs: the middle three
    assert iqm([[1.0, 5], [2, 6], [3, 7], [4, 8]]) == pytest.approx(4.5)  # over all (run, task) scores


def test_the_trimmed_mean_cuts_int_of_the_share_off_each_end_along_the_last_axis():
    values = np.array([[-50.0, 1, 2, 3, 4, 5, 6, 7, 100], [9.0, 9, 9, 9, 1, 1, 1, 1, 5]])
    # 9 values at 25%: int(2.25) = 2 off each end, as scipy.stats.trim_mean
    assert trimmed_mean(values, 0.25) == pytest.approx([4.0, 5.0])
    assert trimmed_mean(values[:, :2], 0.25) == pytest.approx([-24.5, 9.0])  # 2 values: none cut


def test_the_bootstrap_resamples_runs_within_each_task():
    scores = np.array([[1.0, 10], [2, 20], [3, 30]])  # 3 runs x 2 tasks

    def stays_in_its_task(s):  # s: (resamples, runs, tasks)
        assert set(s[..., 0].ravel()) == {1.0, 2, 3} and set(s[..., 1].ravel()) == {10.0, 20, 30}
        return s.mean(axis=(1, 2))

    low, high = stratified_bootstrap(stays_in_its_task, scores, reps=200)
    assert 1.0 <= low < scores.mean() < high <= 30.0
    assert stratified_bootstrap(iqm, np.full(5, 7.0), reps=50) == (7.0, 7.0)


def test_probability_of_improvement_counts_ties_half_and_follows_the_direction():
    assert probability_of_improvement([1.0, 3, 4], [2.0]) == pytest.approx(2 / 3)
    assert probability_of_improvement([1.0, 3, 4], [2.0], sign=-1) == pytest.approx(1 / 3)  # lower is better
    assert probability_of_improvement([2.0, 2], [2.0]) == 0.5


def test_performance_profile_is_the_share_of_runs_at_least_as_good_as_tau():
    taus = np.array([0.0, 2.5, 5])
    assert performance_profile([1.0, 2, 3, 4], taus) == pytest.approx([1, 0.5, 0])
    assert performance_profile([1.0, 2, 3, 4], taus, sign=-1) == pytest.approx([0, 0.5, 1])


def test_a_diverged_seed_moves_the_mean_not_the_iqm():
    scores = [2.0, 2.1, 1.9, 2.0, 190.0]  # delays: lower is better, one seed diverged
    out = summarize(scores, sign=-1, best_heuristic=2.05)
    assert out["score_iqm"] == pytest.approx(2.033, abs=1e-3) and np.mean(scores) > 39
    low, high = out["score_iqm_ci95"]
    assert low <= out["score_iqm"] <= high
    assert out["p_improvement"] == pytest.approx(0.6)  # 3 of 5 seeds beat 2.05
    assert 0 <= out["p_improvement_ci95"][0] <= 0.6 <= out["p_improvement_ci95"][1] <= 1

"""Few-seed statistics for comparing training recipes, after Agarwal et al., "Deep Reinforcement
Learning at the Edge of the Statistical Precipice" (NeurIPS 2021): the interquartile mean (IQM)
with stratified percentile-bootstrap intervals, the probability of improvement, and performance
profiles. With 5 seeds one diverged run drags a mean (and widens a t interval) past anything the
other runs did; the IQM drops the top and bottom quarter of the runs.

The paper's own `rliable` package pulls in arch, statsmodels and seaborn for what fits in a
few lines of numpy here (scipy.stats too: a second of imports on every study command for a
trimmed mean). Scores are arrays of shape (runs, tasks); a study has one task (its
held-out episodes), where stratifying changes nothing, but the functions keep the general form.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

REPS = 10_000  # bootstrap resamples


def as_runs_by_tasks(scores) -> np.ndarray:
    """Scores as (..., runs, tasks): a flat list is runs of one task; leading axes are resamples."""
    s = np.asarray(scores, dtype=np.float64)
    return s[:, None] if s.ndim == 1 else s


def trimmed_mean(values: np.ndarray, cut: float) -> np.ndarray:
    """Mean over the last axis without int(cut * n) values at each end (scipy.stats.trim_mean)."""
    n = values.shape[-1]
    k = int(cut * n)
    return np.sort(values, axis=-1)[..., k : n - k].mean(axis=-1)


def iqm(scores):
    """Mean of the middle 50% of all (run, task) scores (the 25% trimmed mean, as rliable); one
    value per resample when given (resamples, runs, tasks)."""
    s = as_runs_by_tasks(scores)
    out = trimmed_mean(s.reshape(*s.shape[:-2], -1), 0.25)
    return float(out) if np.ndim(out) == 0 else out


def stratified_bootstrap(
    statistic: Callable, *samples, reps: int = REPS, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile interval of `statistic(*samples)`: each sample's runs are resampled with
    replacement within each task (the strata), independently per sample. `statistic` takes
    arrays (resamples, runs, tasks) and returns one value per resample."""
    rng = np.random.default_rng(seed)
    resampled = []
    for s in samples:
        a = as_runs_by_tasks(s)
        runs, tasks = a.shape
        rows = rng.integers(0, runs, size=(reps, runs, tasks))  # a run index per (resample, draw, task)
        resampled.append(a[rows, np.arange(tasks)])
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(statistic(*resampled), [tail, 100 - tail])
    return float(low), float(high)


def probability_of_improvement(x, y, sign: float = 1.0):
    """P(X > Y): the chance that a run of X scores better than a run of Y on the same task (ties
    count half; `sign` -1 when lower is better), averaged over tasks (the Mann-Whitney statistic)."""
    x, y = sign * as_runs_by_tasks(x), sign * as_runs_by_tasks(y)
    xs, ys = x[..., :, None, :], y[..., None, :, :]
    better = (xs > ys) + 0.5 * (xs == ys)
    out = better.mean(axis=(-3, -2)).mean(axis=-1)
    return float(out) if np.ndim(out) == 0 else out


def performance_profile(scores, taus: np.ndarray, sign: float = 1.0) -> np.ndarray:
    """Share of (run, task) scores at least as good as each threshold tau (per resample when
    given (resamples, runs, tasks))."""
    s = as_runs_by_tasks(scores)
    s = sign * s.reshape(*s.shape[:-2], 1, -1)
    return (s >= sign * np.asarray(taus)[:, None]).mean(axis=-1)


def profile_band(scores, taus: np.ndarray, sign: float = 1.0, reps: int = 2000, seed: int = 0) -> np.ndarray:
    """95% stratified-bootstrap band (2, len(taus)) of a performance profile."""
    a = as_runs_by_tasks(scores)
    runs, tasks = a.shape
    rows = np.random.default_rng(seed).integers(0, runs, size=(reps, runs, tasks))
    return np.percentile(performance_profile(a[rows, np.arange(tasks)], taus, sign), [2.5, 97.5], axis=0)


def summarize(scores, sign: float, best_heuristic: float | None) -> dict:
    """IQM with its 95% interval and, against the best heuristic's score (deterministic on the
    same held-out episodes), the probability of improvement with its interval."""
    scores = as_runs_by_tasks(scores)
    out = {"score_iqm": iqm(scores), "score_iqm_ci95": list(stratified_bootstrap(iqm, scores))}
    if best_heuristic is not None:
        reference = np.full((1, scores.shape[1]), best_heuristic)
        out["p_improvement"] = probability_of_improvement(scores, reference, sign)
        interval = stratified_bootstrap(lambda s: probability_of_improvement(s, reference, sign), scores)
        out["p_improvement_ci95"] = list(interval)
    return out


def plot_profiles(
    scores: dict[str, np.ndarray], heuristics: dict[str, float], sign: float, path, metric: str, title: str
):
    """Performance profiles: per variant, the share of runs scoring at least tau (95% bootstrap
    band), with the heuristics' scores as vertical lines."""
    import matplotlib.pyplot as plt

    from aigcsched.platform.reports import save_plot  # sets the Agg backend first

    values = np.concatenate([np.ravel(s) for s in scores.values()] + [np.array(list(heuristics.values()))])
    low, high = values.min(), values.max()
    pad = 0.05 * (high - low) if high > low else max(abs(high), 1.0) * 0.05
    taus = np.linspace(low - pad, high + pad, 200)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name, s in scores.items():
        ax.plot(taus, performance_profile(s, taus, sign), label=f"{name} ({len(np.ravel(s))} runs)")
        if len(np.ravel(s)) > 1:
            band = profile_band(s, taus, sign)
            ax.fill_between(taus, band[0], band[1], alpha=0.15)
    for i, (name, v) in enumerate(heuristics.items()):
        ax.axvline(v, linestyle="--", linewidth=1, color=f"C{len(scores) + i}", label=name)
    ax.set_xlabel(f"{metric} threshold tau ({'higher' if sign > 0 else 'lower'} is better)")
    ax.set_ylabel(f"share of runs with {metric} {'>=' if sign > 0 else '<='} tau")
    ax.set_ylim(-0.02, 1.02)
    return save_plot(fig, ax, title, path)

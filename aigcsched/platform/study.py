"""Studies: several experiment variants, each trained with several seeds at the same env-step
budget, compared on the same held-out episodes.

A study file (YAML) names the variants; each is an experiment config plus overrides:

    name: mec-algorithms
    seeds: 5
    set: {stop.env_steps: 20000}          # for every variant
    variants:
      PPO-diffusion: {config: ../mec_ppo.yaml}
      PPO-MLP: {config: ../mec_ppo.yaml, set: {algorithm.module: mlp}}
    reference: null                        # optional: a variant whose final curve sets a threshold
    threshold: 0.9

Every (variant, seed) is one `train` run (MLflow experiment `study-<name>`, run `<variant>-seed<k>`,
experiment seed k) in a Ray Tune trial of its own (`trials`), as many at once as the cluster holds;
the heuristics of the first variant's evaluation run once on the same held-out episodes. The
report gives, per variant, the held-out score (mean and 95% t interval over seeds; IQM with its
stratified-bootstrap interval and the probability of beating the best heuristic, see
`statistics`), its ratio to the best heuristic, the learning curve of the sampled episodes (mean and
interval over seeds against env steps), performance profiles, and with a reference, the env steps
each run needed for its smoothed curve to reach `threshold` of the reference's final value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
from pydantic import BaseModel, Field, ValidationError, model_validator
from scipy.special import stdtrit  # the t quantile; scipy.stats takes a second to import

from aigcsched.platform import statistics
from aigcsched.platform.config import ConfigError, ExperimentConfig, load_experiment, read_yaml, validation_message

REPORT_FILES = ("study.json", "report.md", "learning_curves.png", "performance_profile.png")
SMOOTHING = 3  # iterations in the moving average of a curve before the threshold test
GRID_POINTS = 50


class Variant(BaseModel):
    model_config = {"extra": "forbid"}
    config: str = Field(description="experiment YAML, relative to the study file")
    set: dict = Field(default_factory=dict, description="dotted overrides for this variant")


class StudyConfig(BaseModel):
    model_config = {"extra": "forbid"}
    name: str = Field(min_length=1)
    seeds: int = Field(5, ge=1)
    set: dict = Field(default_factory=dict, description="dotted overrides for every variant")
    variants: dict[str, Variant] = Field(min_length=1)
    reference: str | None = Field(None, description="variant whose final curve value sets the threshold")
    threshold: float = Field(0.9, gt=0, le=1)

    @model_validator(mode="after")
    def _check(self) -> StudyConfig:
        if self.reference is not None and self.reference not in self.variants:
            raise ValueError(f"reference {self.reference!r} is not a variant ({', '.join(self.variants)})")
        return self


def load_study(path: str | Path, overrides: dict | None = None) -> tuple[StudyConfig, dict[str, ExperimentConfig]]:
    """The study and the validated experiment of each variant (seed 0), so that every error shows
    before the first run. `overrides` (dotted keys) apply to every variant, after the study's own."""
    p = Path(path)
    try:
        study = StudyConfig(**read_yaml(p, "study"))
    except (ValidationError, TypeError) as e:  # TypeError: a key that is no string
        message = validation_message(e) if isinstance(e, ValidationError) else str(e)
        raise ConfigError(f"invalid study {p}: {message}") from None
    study.set = {**study.set, **(overrides or {})}
    experiments = {name: _experiment(p.parent, study, name, seed=0) for name in study.variants}
    problems = {exp.env.id for exp in experiments.values()}
    if len(problems) > 1:
        raise ConfigError(f"a study compares variants of one problem, got {', '.join(sorted(problems))}")
    # the heuristics run once, on the first variant's scenario: it must be every variant's way of deciding
    notes = {exp.problem.scenario_note(exp.evaluation_scenario()) for exp in experiments.values()}
    if len(notes) > 1:
        raise ConfigError(f"a study's variants are scored on one kind of scenario, got {' / '.join(sorted(notes))}")
    return study, experiments


def _experiment(folder: Path, study: StudyConfig, name: str, seed: int, heuristics: bool = False) -> ExperimentConfig:
    variant = study.variants[name]
    values = {
        **study.set,
        **variant.set,
        "seed": seed,
        "tracking.experiment": f"study-{study.name}",
        "tracking.register_model": False,
    }
    if not heuristics:
        values["evaluation.baselines"] = []  # the study evaluates the heuristics once
    try:
        return load_experiment(folder / variant.config, values)
    except ConfigError as e:
        raise ConfigError(f"variant {name}: {e}") from None


def mean_ci(values) -> tuple[float, float]:
    """Mean and half-width of the 95% t interval (nan with one value)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), float(stdtrit(len(v) - 1, 0.975) * v.std(ddof=1) / np.sqrt(len(v)))


def run_curve(run_id: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(env steps, metric) per iteration of a run."""
    client = mlflow.MlflowClient()
    steps = {p.step: p.value for p in client.get_metric_history(run_id, "env_steps")}
    points = [(steps[p.step], p.value) for p in client.get_metric_history(run_id, metric) if p.step in steps]
    points.sort()
    return np.array([x for x, _ in points], dtype=np.float64), np.array([y for _, y in points], dtype=np.float64)


def steps_to_reach(x: np.ndarray, y: np.ndarray, target: float, sign: float) -> float:
    """First env step at which the smoothed curve reaches the target (nan if it never does)."""
    if len(y) == 0:
        return float("nan")
    k = min(SMOOTHING, len(y))
    smooth = np.convolve(y, np.ones(k) / k, mode="valid")
    hit = np.flatnonzero(sign * smooth >= sign * target)
    return float(x[k - 1 + hit[0]]) if len(hit) else float("nan")


def final_value(y: np.ndarray) -> float:
    return float(np.mean(y[-SMOOTHING:])) if len(y) else float("nan")


def run_study(
    path: str | Path,
    out: str | Path,
    overrides: dict | None = None,
    seeds: int | None = None,
    log: Callable[[str], None] = print,
    *,
    address: str | None = None,
    max_concurrent: int | None = None,
    restart: bool = False,
) -> dict:
    """Train every (variant, seed) as a Ray Tune trial, as many at once as the resources allow
    (at most `max_concurrent`), then evaluate, aggregate, and write study.json, report.md and the
    plots in `out`, also logged to an MLflow run of their own. Tune's experiment state lives in
    `out`/tune: run again after a crash or Ctrl-C, the study goes on where it stopped (`restart`:
    from scratch)."""
    import ray

    from aigcsched.platform import tracking
    from aigcsched.platform.jobs import resolve_tracking_uri
    from aigcsched.platform.training import leave_job_working_dir, start_ray
    from aigcsched.platform.trials import STORE_KEY, check_spec

    study, experiments = load_study(path, overrides)
    if seeds is not None:
        study.seeds = seeds
    folder = Path(path).resolve().parent
    problem = next(iter(experiments.values())).problem
    key = problem.score.metric
    evaluation = _experiment(folder, study, next(iter(study.variants)), 0, heuristics=True)
    # seed-major, so that Tune starts every variant's first seed before any second one
    trials = {
        f"{name}-seed{seed}": _experiment(folder, study, name, seed)
        for seed in range(study.seeds)
        for name in study.variants
    }
    leave_job_working_dir()  # every file is read: a job's `out` goes to the home directory
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tracking_uri = resolve_tracking_uri(mlflow.get_tracking_uri())
    spec = {
        "study": study.name,
        STORE_KEY: tracking_uri,
        "trials": {run: exp.model_dump(mode="json") for run, exp in trials.items()},
    }
    if not restart:
        check_spec(out / "tune", spec)  # another study or store in `out`: an error before Ray starts
    own_ray = not ray.is_initialized()
    start_ray(evaluation, address)
    store = tracking.open_store_meanwhile(tracking_uri)  # a new store's tables, while the driver imports
    from ray import tune

    from aigcsched.platform.promotion import held_out_results
    from aigcsched.platform.trials import CODE_TAG, run_trials, train_trial, trial_resources, version_tags

    versions = version_tags()
    version = versions[CODE_TAG]
    resources = {run: trial_resources(exp) for run, exp in trials.items()}
    log(f"{len(trials)} trials, each {resources[next(iter(trials))].bundles} (code {version})")
    heuristics = {b: r[key] for b, r in held_out_results(evaluation).items()}
    ray.wait([store])  # done or failed: the driver's own first use of the store says what is wrong
    mlflow.set_tracking_uri(tracking_uri)
    tracking.use_experiment(f"study-{study.name}")  # made here: its artifact root is the driver's
    tags = {"aigcsched.study": study.name, **versions}
    grid = run_trials(
        tune.with_parameters(train_trial, experiments=trials, tracking_uri=tracking_uri, tags=tags),
        folder=out / "tune",
        spec=spec,
        param_space={"run": tune.grid_search(list(trials))},
        resources=lambda config: resources[config["run"]],
        max_concurrent=max_concurrent,
        restart=restart,
        log=log,
    )
    if own_ray:
        ray.shutdown()  # the report needs no cluster; at exit Ray would first wait half a second for logs
    done = {r.config["run"]: r.metrics["run_id"] for r in grid if r.error is None and r.metrics.get("finished")}
    failed = {r.config["run"]: r.error for r in grid if r.error is not None}
    # Ctrl-C: Tune saves its state and returns; the trials it stopped have not finished
    unfinished = [r.config["run"] for r in grid if r.error is None and not r.metrics.get("finished")]
    client = mlflow.MlflowClient()
    runs: dict[str, list[dict]] = {name: [] for name in study.variants}
    for run_name in (r for r in trials if r in done):
        name, seed = run_name.rsplit("-seed", 1)
        run_id = done[run_name]
        run = client.get_run(run_id)
        x, y = run_curve(run_id, problem.curve)
        score = run.data.metrics[f"eval.trained.{key}"]
        code = run.data.tags.get(CODE_TAG, "")
        if code != version:
            log(f"{run_name}: trained by code {code or 'of unknown version'}, not the current {version}")
        runs[name].append(
            {"seed": int(seed), "run_id": run_id, "score": score, "steps": x, "curve": y, "code_version": code}
        )
        log(f"{run_name}: {key} {score:.4g} (run {run_id})")
    if any(not rs for rs in runs.values()):
        missing = ", ".join(n for n, rs in runs.items() if not rs)
        raise StudyFailed(f"no finished run of {missing}; {_failures(failed, unfinished, out)}")
    result = _write_results(study, evaluation, heuristics, runs, out)
    mlflow.set_experiment(f"study-{study.name}")
    with mlflow.start_run(run_name=f"study-{study.name}", tags=tags):
        mlflow.log_params({"seeds": study.seeds, "variants": ",".join(study.variants), "problem": problem.name})
        mlflow.log_metrics({f"{n}.score_mean": r["score_mean"] for n, r in result["variants"].items()})
        mlflow.log_metrics({f"{n}.score_iqm": r["score_iqm"] for n, r in result["variants"].items()})
        for name in REPORT_FILES:
            mlflow.log_artifact(str(out / name), "study")
    if failed or unfinished:
        raise StudyFailed(f"report written for the finished runs; {_failures(failed, unfinished, out)}")
    return result


class StudyFailed(RuntimeError):
    """Some trials failed or were stopped (Ctrl-C); the finished ones are reported."""


def _failures(failed: dict, unfinished: list, out: Path) -> str:
    parts = []
    if failed:
        reason = str(next(iter(failed.values()))).strip().splitlines()[-1]
        parts.append(
            f"{len(failed)} trial(s) failed ({', '.join(failed)}): {reason}; their errors are under {out / 'tune'}"
        )
    if unfinished:
        parts.append(f"{len(unfinished)} trial(s) stopped before the end ({', '.join(unfinished)})")
    return "; ".join(parts) + "; run the same command again to go on"


def _write_results(study: StudyConfig, evaluation: ExperimentConfig, heuristics: dict, runs: dict, out: Path) -> dict:
    problem, ev = evaluation.problem, evaluation.evaluation
    key, sign = problem.score.metric, problem.score.sign
    best = max(heuristics, key=lambda b: sign * heuristics[b]) if heuristics else None
    target = None
    if study.reference:
        ref = np.mean([final_value(r["curve"]) for r in runs[study.reference]])
        target = ref * study.threshold if sign * ref >= 0 else ref / study.threshold
    summary = {}
    for name, rs in runs.items():
        m, ci = mean_ci([r["score"] for r in rs])
        row = {"score_mean": m, "score_ci95": ci, "scores": [r["score"] for r in rs], "runs": [r["run_id"] for r in rs]}
        if best is not None:
            row["vs_best_heuristic"] = m / heuristics[best]
        if target is not None:
            reached = [steps_to_reach(r["steps"], r["curve"], target, sign) for r in rs]
            row["steps_to_target"] = reached
            row["steps_to_target_mean"] = None if np.all(np.isnan(reached)) else float(np.nanmean(reached))
            row["reached"] = int(np.sum(~np.isnan(reached)))
        row["final_curve_mean"], row["final_curve_ci95"] = mean_ci([final_value(r["curve"]) for r in rs])
        row.update(statistics.summarize(row["scores"], sign, heuristics[best] if best else None))
        row["code_versions"] = sorted({r.get("code_version", "") for r in rs})
        summary[name] = row
    result = {
        "study": study.model_dump(),
        "seeds_done": min(len(rs) for rs in runs.values()),
        "problem": problem.name,
        "score": {
            "metric": key,
            "higher_is_better": sign > 0,
            "held_out_seeds": [ev.seed, ev.seed + ev.episodes - 1],
        },
        "scenario": problem.scenario_note(evaluation.evaluation_scenario()),
        "curve_metric": problem.curve,
        "target": target,
        "heuristics": heuristics,
        "best_heuristic": best,
        "variants": summary,
    }
    (out / "study.json").write_text(json.dumps(result, indent=2))
    png = plot_curves(runs, out / "learning_curves.png", problem.curve, f"{study.name}: {problem.curve}", target)
    statistics.plot_profiles(
        {name: np.array(row["scores"]) for name, row in summary.items()},
        heuristics,
        sign,
        out / "performance_profile.png",
        key,
        f"{study.name}: performance profiles, held-out {key}",
    )
    (out / "report.md").write_text(report_markdown(result, png.name))
    return result


def curve_band(ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (rows) and its 95% t band, kept within the seeds' own range: around a few
    diverged seeds the t band reaches values no run had (negative delays)."""
    mean = ys.mean(axis=0)
    if len(ys) < 2:
        return mean, mean, mean
    half = stdtrit(len(ys) - 1, 0.975) * ys.std(axis=0, ddof=1) / np.sqrt(len(ys))
    return mean, np.maximum(mean - half, ys.min(axis=0)), np.minimum(mean + half, ys.max(axis=0))


def wants_log_scale(values: np.ndarray) -> bool:
    """Positive values spanning more than a factor of 20: on a linear axis diverged runs would
    flatten every other curve."""
    return bool(values.size and values.min() > 0 and values.max() > 20 * values.min())


def plot_curves(runs: dict, path: Path, metric: str, title: str, target: float | None = None) -> Path:
    """Mean curve per variant over seeds (95% band) against env steps, on a common grid."""
    import matplotlib.pyplot as plt

    from aigcsched.platform.reports import save_plot  # sets the Agg backend first

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    shown = []
    for name, rs in runs.items():
        rs = [r for r in rs if len(r["steps"])]
        if not rs:
            continue
        end = min(r["steps"][-1] for r in rs)
        start = max(r["steps"][0] for r in rs)
        grid = np.linspace(start, end, GRID_POINTS) if end > start else np.array([end])
        ys = np.stack([np.interp(grid, r["steps"], r["curve"]) for r in rs])
        mean, low, high = curve_band(ys)
        ax.plot(grid, mean, label=f"{name} ({len(rs)} seeds)")
        if len(rs) > 1:
            ax.fill_between(grid, low, high, alpha=0.2)
        shown.append(ys)
    if shown and wants_log_scale(np.concatenate([y.ravel() for y in shown])):
        ax.set_yscale("log")
    if target is not None:
        ax.axhline(target, linestyle="--", linewidth=1, color="grey", label="target")
    ax.set_xlabel("env steps")
    ax.set_ylabel(metric)
    return save_plot(fig, ax, title, path)


def report_markdown(result: dict, plot_name: str) -> str:
    s, score = result["study"], result["score"]
    better = "higher" if score["higher_is_better"] else "lower"
    lines = [
        f"# Study {s['name']} ({result['problem']})",
        "",
        f"{result['seeds_done']} of {s['seeds']} seeds per variant, same env-step budget. "
        f"Score: held-out `{score['metric']}` ({better} is better) on episodes seeded "
        f"{score['held_out_seeds'][0]}..{score['held_out_seeds'][1]}; mean and 95% t interval over seeds."
        + (f" Scenario: {result['scenario']}." if result.get("scenario") else ""),
        "",
    ]
    header = "| variant | score | 95% CI +- | per seed | vs best heuristic | final curve |"
    if result["target"] is not None:
        header += " env steps to target | runs reaching it |"
    lines += [header, "|---" * (header.count("|") - 1) + "|"]
    for name, r in result["variants"].items():
        ratio = f"{r['vs_best_heuristic']:.3f}x" if "vs_best_heuristic" in r else "-"
        row = (
            f"| {name} | {r['score_mean']:.4g} | {r['score_ci95']:.3g} | "
            + " ".join(f"{v:.4g}" for v in r["scores"])
            + f" | {ratio} | {r['final_curve_mean']:.4g} +- {r['final_curve_ci95']:.3g} |"
        )
        if result["target"] is not None:
            mean = r["steps_to_target_mean"]
            row += f" {'-' if mean is None else f'{mean:,.0f}'} | {r['reached']}/{len(r['scores'])} |"
        lines.append(row)
    if result["heuristics"]:
        lines += ["", "Heuristics on the same held-out episodes:", ""]
        lines += [f"- {b}: {v:.4g}" for b, v in result["heuristics"].items()]
    if result["target"] is not None:
        lines += [
            "",
            f"Target: {s['threshold']:.0%} of the final `{result['curve_metric']}` of {s['reference']} "
            f"({result['target']:.4g}); a run reaches it when the {SMOOTHING}-iteration moving average does.",
        ]
    lines += ["", *robust_table(result), "", f"![learning curves]({plot_name})", ""]
    return "\n".join(lines)


def robust_table(result: dict) -> list[str]:
    """IQM and probability of improvement (Agarwal et al., NeurIPS 2021), robust to a diverged seed."""
    best = result["best_heuristic"]
    lines = [
        "Robust to diverged seeds (Agarwal et al., NeurIPS 2021): interquartile mean of the seeds with its 95% "
        "stratified-bootstrap interval"
        + (f"; P(improvement): the chance that a seed beats the best heuristic ({best})." if best else "."),
        "",
        "| variant | IQM | IQM 95% CI |" + (" P(improvement) | 95% CI |" if best else ""),
        "|---|---|---|" + ("---|---|" if best else ""),
    ]
    for name, r in result["variants"].items():
        low, high = r["score_iqm_ci95"]
        row = f"| {name} | {r['score_iqm']:.4g} | [{low:.4g}, {high:.4g}] |"
        if best:
            p_low, p_high = r["p_improvement_ci95"]
            row += f" {r['p_improvement']:.2f} | [{p_low:.2f}, {p_high:.2f}] |"
        lines.append(row)
    lines += ["", "![performance profiles](performance_profile.png)"]
    return lines

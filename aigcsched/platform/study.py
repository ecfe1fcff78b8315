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
experiment seed k); the heuristics of the first variant's evaluation run once on the same
held-out episodes. The report gives, per variant, the held-out score (mean and 95% t interval over
seeds), its ratio to the best heuristic, the learning curve of the sampled episodes (mean and
interval over seeds against env steps), and with a reference, the env steps each run needed for
its smoothed curve to reach `threshold` of the reference's final value.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator
from scipy import stats

from aigcsched.platform.config import ConfigError, ExperimentConfig, load_experiment, validation_message

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
    if not p.is_file():
        raise ConfigError(f"study file not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
        study = StudyConfig(**raw)
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
    except (ValidationError, TypeError) as e:
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
    return float(v.mean()), float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))


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


def _finished_run(exp: ExperimentConfig, run_name: str, key: str) -> str | None:
    """A finished run of this study with exactly this experiment (an interrupted study goes on
    where it stopped instead of training again)."""
    params = {k: str(v) for k, v in exp.flat().items()}
    # a key added to the config after the run counts as its default there
    defaults = {k: str(v) for k, v in ExperimentConfig().flat().items()}
    runs = mlflow.search_runs(
        experiment_names=[exp.tracking.experiment],
        filter_string=f"tags.mlflow.runName = '{run_name}' and attributes.status = 'FINISHED'",
        output_format="list",
    )
    for run in runs:
        if f"eval.trained.{key}" in run.data.metrics and all(
            run.data.params.get(k, defaults.get(k)) == v for k, v in params.items()
        ):
            return run.info.run_id
    return None


def run_study(
    path: str | Path,
    out: str | Path,
    overrides: dict | None = None,
    seeds: int | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Train every variant with every seed (seed by seed, so that every variant has as many seeds
    when a study is stopped early), evaluate, aggregate; rewrites study.json, report.md and
    learning_curves.png in `out` after each seed, and logs them to an MLflow run of their own at the
    end. Runs already finished with the same experiment are reused."""
    from aigcsched.platform.promotion import held_out_results
    from aigcsched.platform.training import train

    study, experiments = load_study(path, overrides)
    if seeds is not None:
        study.seeds = seeds
    folder, out = Path(path).parent, Path(out)
    out.mkdir(parents=True, exist_ok=True)
    problem = next(iter(experiments.values())).problem
    key = problem.score.metric
    evaluation = _experiment(folder, study, next(iter(study.variants)), 0, heuristics=True)
    heuristics = {b: r[key] for b, r in held_out_results(evaluation).items()}
    runs: dict[str, list[dict]] = {name: [] for name in study.variants}
    result = {}
    for seed in range(study.seeds):
        for name in study.variants:
            exp, run_name = _experiment(folder, study, name, seed), f"{name}-seed{seed}"
            run_id = _finished_run(exp, run_name, key)
            if run_id is None:
                log(f"{name} seed {seed}: training")
                run_id = train(exp, run_name=run_name, tags={"aigcsched.study": study.name}).run_id
            score = mlflow.MlflowClient().get_run(run_id).data.metrics[f"eval.trained.{key}"]
            x, y = run_curve(run_id, problem.curve)
            runs[name].append({"seed": seed, "run_id": run_id, "score": score, "steps": x, "curve": y})
            log(f"{name} seed {seed}: {key} {score:.4g} (run {run_id})")
        result = _write_results(study, evaluation, heuristics, runs, out)
    mlflow.set_experiment(f"study-{study.name}")
    with mlflow.start_run(run_name=f"study-{study.name}", tags={"aigcsched.study": study.name}):
        mlflow.log_params({"seeds": study.seeds, "variants": ",".join(study.variants), "problem": problem.name})
        mlflow.log_metrics({f"{n}.score_mean": r["score_mean"] for n, r in result["variants"].items()})
        mlflow.log_artifacts(str(out), "study")
    return result


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
    (out / "report.md").write_text(report_markdown(result, png.name))
    return result


def curve_band(ys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over seeds (rows) and its 95% t band, kept within the seeds' own range: around a few
    diverged seeds the t band reaches values no run had (negative delays)."""
    mean = ys.mean(axis=0)
    if len(ys) < 2:
        return mean, mean, mean
    half = stats.t.ppf(0.975, len(ys) - 1) * ys.std(axis=0, ddof=1) / np.sqrt(len(ys))
    return mean, np.maximum(mean - half, ys.min(axis=0)), np.minimum(mean + half, ys.max(axis=0))


def wants_log_scale(values: np.ndarray) -> bool:
    """Positive values spanning more than a factor of 20: on a linear axis diverged runs would
    flatten every other curve."""
    return bool(values.size and values.min() > 0 and values.max() > 20 * values.min())


def plot_curves(runs: dict, path: Path, metric: str, title: str, target: float | None = None) -> Path:
    """Mean curve per variant over seeds (95% band) against env steps, on a common grid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


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
    lines += ["", f"![learning curves]({plot_name})", ""]
    return "\n".join(lines)

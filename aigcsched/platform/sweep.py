"""Hyperparameter sweeps: Optuna's sampler proposes values for config keys, each trial a `train`
run through Ray Tune, ASHA stops the trials that fall behind early; the best trial's config is
written out as an experiment file and its run registered as `train` registers one.

A sweep file (YAML):

    name: edge-ppo-lr
    config: ../edge_ppo.yaml                    # relative to the sweep file
    set: {stop.env_steps: 40960}                # for every trial
    trials: 16
    search:                                     # dotted config keys and their ranges
      algorithm.lr: {loguniform: [1.0e-5, 1.0e-3]}
      algorithm.entropy_coeff: {uniform: [0.0, 0.02]}
      algorithm.num_epochs: {int: [1, 8]}       # both ends included
      algorithm.hidden: {choice: [64, 128, 256]}
    early_stopping: {grace: 8192, reduction_factor: 3}   # null: every trial runs to the end

Trials are ranked, and Optuna and ASHA steered, by the problem's learning-curve metric on the
sampled episodes; the best config is the finished trial with the best held-out score.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import mlflow
import numpy as np
import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator

from aigcsched.platform.config import ConfigError, ExperimentConfig, load_experiment, read_yaml, validation_message

RANGES = ("uniform", "loguniform", "int", "choice")


class EarlyStopping(BaseModel):
    model_config = {"extra": "forbid"}
    grace: int = Field(
        ge=1, description="env steps (iterations where the config stops by iterations) before any trial stops"
    )
    reduction_factor: float = Field(3, gt=1, description="ASHA keeps 1/reduction_factor of the trials per rung")


class SweepConfig(BaseModel):
    model_config = {"extra": "forbid"}
    name: str = Field(min_length=1)
    config: str = Field(description="experiment YAML, relative to the sweep file")
    set: dict = Field(default_factory=dict, description="dotted overrides for every trial")
    trials: int = Field(16, ge=1, description="configs Optuna samples")
    search: dict[str, dict[Literal["uniform", "loguniform", "int", "choice"], list]] = Field(min_length=1)
    early_stopping: EarlyStopping | None = None
    seed: int = Field(0, ge=0, description="Optuna's sampler seed")

    @field_validator("search")
    @classmethod
    def _ranges(cls, search: dict) -> dict:
        for key, spec in search.items():
            if len(spec) != 1:
                raise ValueError(f"{key}: give one of {', '.join(RANGES)}")
            (kind, values), *_ = spec.items()
            if key.startswith("resources."):
                raise ValueError(f"{key}: the trials' resources are fixed; search other keys")
            if kind == "choice" and not values:
                raise ValueError(f"{key}: choice needs at least one value")
            if kind != "choice" and (len(values) != 2 or not values[0] < values[1]):
                raise ValueError(f"{key}: {kind} takes [low, high] with low < high")
            if kind == "loguniform" and values[0] <= 0:
                raise ValueError(f"{key}: loguniform needs a positive low end")
        return search


def load_sweep(path: str | Path, overrides: dict | None = None) -> tuple[SweepConfig, ExperimentConfig]:
    """The sweep and its base experiment (the sweep's `set` and `overrides` applied), with every
    searched key checked at both ends of its range before the first trial."""
    p = Path(path)
    try:
        sweep = SweepConfig(**read_yaml(p, "sweep"))
    except (ValidationError, TypeError) as e:  # TypeError: a key that is no string
        message = validation_message(e) if isinstance(e, ValidationError) else str(e)
        raise ConfigError(f"invalid sweep {p}: {message}") from None
    sweep.set = {**sweep.set, **(overrides or {})}
    base = trial_experiment(p.parent, sweep, {})
    for key, spec in sweep.search.items():
        (kind, values), *_ = spec.items()
        for value in values if kind == "choice" else values[:2]:
            try:
                trial_experiment(p.parent, sweep, {key: value})
            except ConfigError as e:
                raise ConfigError(f"search {key}={value!r}: {e}") from None
    return sweep, base


def trial_experiment(folder: Path, sweep: SweepConfig, values: dict, for_trial: bool = True) -> ExperimentConfig:
    """The experiment of one trial (its own MLflow experiment, no registration), or with
    `for_trial` False the user's experiment with these values (the best config written out)."""
    own = {"tracking.experiment": f"sweep-{sweep.name}", "tracking.register_model": False} if for_trial else {}
    return load_experiment(folder / sweep.config, {**sweep.set, **values, **own})


def search_space(search: dict) -> dict:
    from ray import tune

    space = {}
    for key, spec in search.items():
        (kind, values), *_ = spec.items()
        if kind == "choice":
            space[key] = tune.choice(values)
        elif kind == "int":
            space[key] = tune.randint(int(values[0]), int(values[1]) + 1)  # Tune's upper end is excluded
        else:
            space[key] = getattr(tune, kind)(float(values[0]), float(values[1]))
    return space


def run_sweep(
    path: str | Path,
    out: str | Path,
    overrides: dict | None = None,
    *,
    address: str | None = None,
    max_concurrent: int | None = None,
    restart: bool = False,
    log: Callable[[str], None] = print,
) -> dict:
    """Run (or resume) the sweep; write sweep.json, report.md and best.yaml in `out`; register the
    best trial's policy (when its config registers models). Returns the summary."""
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from aigcsched.platform import tracking
    from aigcsched.platform.jobs import resolve_tracking_uri
    from aigcsched.platform.training import leave_job_working_dir, start_ray
    from aigcsched.platform.trials import CODE_TAG, STORE_KEY, run_trials, train_trial, trial_resources, version_tags

    sweep, base = load_sweep(path, overrides)
    folder = Path(path).resolve().parent
    user_base = trial_experiment(folder, sweep, {}, for_trial=False).model_dump(mode="json")
    leave_job_working_dir()  # the files are read: a job's `out` goes to the home directory
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    problem, sign = base.problem, base.problem.score.sign
    mode = "max" if sign > 0 else "min"
    scheduler = None
    if sweep.early_stopping is not None:
        if base.stop.env_steps is None and base.stop.iterations is None:
            raise ConfigError("early_stopping needs stop.env_steps or stop.iterations (ASHA's budget)")
        # Tune counts a trial's reports: one per training iteration (and a final one)
        time_attr = "env_steps" if base.stop.env_steps is not None else "training_iteration"
        scheduler = ASHAScheduler(
            time_attr=time_attr,
            max_t=base.stop.env_steps or base.stop.iterations,
            grace_period=sweep.early_stopping.grace,
            reduction_factor=sweep.early_stopping.reduction_factor,
            stop_last_trials=False,  # at the budget the trial ends itself, after its held-out evaluation
        )
    start_ray(base, address)
    tracking_uri = resolve_tracking_uri(mlflow.get_tracking_uri())
    mlflow.set_tracking_uri(tracking_uri)
    tracking.use_experiment(base.tracking.experiment)
    versions = version_tags()
    version = versions[CODE_TAG]
    tags = {"aigcsched.sweep": sweep.name, **versions}
    spec = {"sweep": sweep.model_dump(mode="json"), "base": base.model_dump(mode="json"), STORE_KEY: tracking_uri}
    log(f"{sweep.trials} trials over {', '.join(sweep.search)} (code {version})")
    grid = run_trials(
        tune.with_parameters(train_trial, experiments={"": base}, tracking_uri=tracking_uri, tags=tags),
        folder=out / "tune",
        spec=spec,
        param_space={"set": search_space(sweep.search)},
        resources=trial_resources(base),
        max_concurrent=max_concurrent,
        restart=restart,
        tune_config={
            "search_alg": OptunaSearch(metric=problem.curve, mode=mode, seed=sweep.seed),
            "scheduler": scheduler,
            "num_samples": sweep.trials,
            "metric": problem.curve,
            "mode": mode,
        },
        log=log,
    )
    rows = []
    for r in grid:
        metrics = r.metrics or {}
        finished = r.error is None and bool(metrics.get("finished"))
        if not finished and metrics.get("run_id"):
            _close_stopped(metrics["run_id"], "error" if r.error is not None else "early_stopping")
        rows.append(
            {
                "params": r.config.get("set", {}),
                "status": "finished" if finished else "error" if r.error is not None else "stopped early",
                "score": metrics.get("score") if finished else None,
                "curve": metrics.get(problem.curve),
                "env_steps": metrics.get("env_steps"),
                "run_id": metrics.get("run_id"),
            }
        )
    scored = [row for row in rows if row["score"] is not None and np.isfinite(row["score"])]
    if not scored:
        raise ConfigError(f"no trial of sweep {sweep.name} finished; see {out / 'tune'}")
    best = max(scored, key=lambda row: sign * row["score"])
    best_exp = load_experiment(None, {**user_base, **best["params"]})
    (out / "best.yaml").write_text(yaml.safe_dump(best_exp.model_dump(mode="json"), sort_keys=False))
    rows.sort(key=lambda row: (row["score"] is None, -sign * (row["score"] or 0)))
    summary = {
        "sweep": sweep.model_dump(mode="json"),
        "problem": problem.name,
        "score_metric": problem.score.metric,
        "higher_is_better": sign > 0,
        "best": best,
        "trials": rows,
        "registered": None,
    }
    if best_exp.tracking.register_model:
        summary["registered"] = register_run(best["run_id"], best_exp)
    (out / "sweep.json").write_text(json.dumps(summary, indent=2))
    (out / "report.md").write_text(report_markdown(summary))
    return summary


def _close_stopped(run_id: str, why: str) -> None:
    """Say why a trial ended unfinished (ASHA or an error; only the driver writes this tag, so it
    races no trial); close its MLflow run if still open (its actor was gone before the run ended,
    as `train` ends it when Tune stops it)."""
    client = mlflow.MlflowClient()
    client.set_tag(run_id, "aigcsched.stopped_by", why)
    if client.get_run(run_id).info.status == "RUNNING":
        client.set_terminated(run_id, "KILLED" if why == "early_stopping" else "FAILED")


def register_run(run_id: str, exp: ExperimentConfig) -> dict:
    """Register the run's final policy as `train` does (held-out evaluation, then the champion rule)."""
    from rich.console import Console

    from aigcsched.platform import tracking
    from aigcsched.platform.promotion import evaluate_and_register
    from aigcsched.platform.registry import load_checkpoint_policy

    policy = load_checkpoint_policy(tracking.checkpoint_of(run_id))
    policy.info = {"uri": f"run:{run_id}"}
    with mlflow.start_run(run_id=run_id):
        done = evaluate_and_register(policy, exp, Console(stderr=True))
    return {"model": exp.tracking.model_name, "version": done["version"], "reason": done["reason"]}


def report_markdown(summary: dict) -> str:
    s = summary["sweep"]
    better = "higher" if summary["higher_is_better"] else "lower"
    keys = list(s["search"])
    lines = [
        f"# Sweep {s['name']} ({summary['problem']})",
        "",
        f"{len(summary['trials'])} trials of {s['config']} (Optuna's sampler"
        + (", ASHA early stopping" if s["early_stopping"] else "")
        + f"); held-out `{summary['score_metric']}`, {better} is better. Best config: best.yaml.",
        "",
        "| " + " | ".join([*keys, "status", "held-out score", "env steps", "run"]) + " |",
        "|---" * (len(keys) + 4) + "|",
    ]
    for row in summary["trials"]:
        values = [
            f"{row['params'].get(k):.4g}" if isinstance(row["params"].get(k), float) else str(row["params"].get(k))
            for k in keys
        ]
        score = "-" if row["score"] is None else f"{row['score']:.4g}"
        steps = "-" if row["env_steps"] is None else f"{row['env_steps']:,.0f}"
        lines.append("| " + " | ".join([*values, row["status"], score, steps, (row["run_id"] or "-")[:8]]) + " |")
    if summary["registered"]:
        r = summary["registered"]
        lines += ["", f"Registered {r['model']} version {r['version']}: {r['reason']}"]
    return "\n".join(lines) + "\n"

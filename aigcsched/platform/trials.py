"""Trainings as Ray Tune trials: each trial is one `train` run (one MLflow run), placed by the
resources its RLlib algorithm asks for, as many at once as the cluster holds.

Tune keeps the experiment's state (which trials are done, pending, running) under the storage
folder; run again, the same command restores it: finished trials are not repeated, unfinished ones
start again. A trial's MLflow run carries the Tune trial id, so a trial that had finished its MLflow
run before a crash (Tune saves its own state only every few seconds) takes that run instead of
training again, and one that was cut off continues its run from the last MLflow checkpoint. Every
run is tagged with the code version that trained it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import mlflow

import aigcsched
from aigcsched.platform.config import ConfigError, ExperimentConfig

TRIAL_TAG = "aigcsched.tune_trial"
CODE_TAG = "aigcsched.code_version"
SPEC_FILE = "aigcsched-trials.json"  # what the Tune experiment was started with


def code_version() -> str:
    """`<git commit>[+dirty]-<hash of the package's source>`, or the hash alone outside a checkout:
    the source hash tells apart code that git does not (uncommitted edits, an installed copy)."""
    package = Path(aigcsched.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    source = digest.hexdigest()[:12]
    try:
        git = ["git", "-C", str(package)]
        commit = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "."], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return source
    if commit.returncode != 0:
        return source
    return f"{commit.stdout.strip()}{'+dirty' if dirty.stdout.strip() else ''}-{source}"


def trial_resources(exp: ExperimentConfig):
    """The placement group the experiment's RLlib algorithm asks for: one bundle for the trial
    process (its local env runner, and learner, GPU included), one per remote env runner."""
    from aigcsched.platform.rllib_setup import algorithm_config

    config = algorithm_config(exp)
    return config.algo_class.default_resource_request(config)


def _run_of_trial(trial_id: str, run_name: str) -> tuple[str | None, bool]:
    """(MLflow run of this trial, whether it finished); the latest when there are several."""
    runs = mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.`{TRIAL_TAG}` = '{trial_id}' and tags.mlflow.runName = '{run_name}'",
        order_by=["attributes.start_time DESC"],
        output_format="list",
    )
    if not runs:
        return None, False
    return runs[0].info.run_id, runs[0].info.status == "FINISHED"


def train_trial(config: dict, *, experiments: dict, tracking_uri: str, tags: dict) -> None:
    """The Tune trainable: train `experiments[config["run"]]` (a sweep adds `config["set"]`),
    reporting each iteration's metrics, then the held-out score and the run id."""
    import ray.tune

    from aigcsched.platform import tracking
    from aigcsched.platform.config import load_experiment
    from aigcsched.platform.training import train

    run_name = config["run"]
    exp = experiments[run_name]
    if config.get("set"):
        exp = load_experiment(None, {**exp.model_dump(mode="json"), **config["set"]})
    mlflow.set_tracking_uri(tracking_uri)  # a trial runs in its own directory, maybe on another node
    trial_id = ray.tune.get_context().get_trial_id()
    run_id, finished = _run_of_trial(trial_id, run_name)
    key = f"eval.trained.{exp.problem.score.metric}"
    if not finished:

        def report(metrics: dict) -> None:
            ray.tune.report({**metrics, "run_id": mlflow.active_run().info.run_id})

        checkpoint = None
        if run_id is not None:
            try:
                tracking.checkpoint_of(run_id)
                checkpoint = run_id
            except ConfigError:
                pass  # cut off before its first checkpoint: a new run
        run_id = train(
            exp,
            run_name=run_name,
            resume_run_id=checkpoint,
            tags={**tags, TRIAL_TAG: trial_id},
            on_iteration=report,
        ).run_id
    run = mlflow.MlflowClient().get_run(run_id)
    final = {"run_id": run_id, "score": run.data.metrics.get(key, float("nan")), "finished": True}
    for name in ("env_steps", exp.problem.curve):
        if name in run.data.metrics:
            final[name] = run.data.metrics[name]
    ray.tune.report(final)


def check_spec(folder: Path, spec: dict) -> bool:
    """Whether `folder` holds a Tune experiment started with this same spec (True: restore it;
    False: none there). A different one is an error: restoring would run the old trials."""
    saved = folder / SPEC_FILE
    if not saved.is_file():
        return False
    old = json.loads(saved.read_text())
    if old != spec:
        raise ConfigError(
            f"{folder} holds an unfinished run of another version of this study or sweep (its variants, seeds "
            "or configs changed); pass --restart to start over, or --out for another folder"
        )
    return True


def run_trials(
    trainable: Callable,
    *,
    folder: Path,
    spec: dict,
    param_space: dict,
    resources,
    max_concurrent: int | None,
    restart: bool = False,
    tune_config: dict | None = None,
    log: Callable[[str], None] = print,
):
    """Run (or restore) the Tune experiment in `folder` and return its ResultGrid."""
    import shutil

    from ray import tune

    folder = folder.resolve()
    if restart and folder.exists():
        shutil.rmtree(folder)
    trainable = tune.with_resources(trainable, resources)
    if check_spec(folder, spec) and tune.Tuner.can_restore(str(folder)):
        log(f"resuming the Tune experiment in {folder}")
        tuner = tune.Tuner.restore(str(folder), trainable, resume_errored=True)
    else:
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        (folder / SPEC_FILE).write_text(json.dumps(spec, indent=1))
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, **(tune_config or {})),
            run_config=tune.RunConfig(
                name=folder.name,
                storage_path=str(folder.parent),
                verbose=1,
                failure_config=tune.FailureConfig(max_failures=0),
            ),
        )
    return tuner.fit()

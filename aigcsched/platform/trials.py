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
GIT_TAG = "aigcsched.git_commit"
SPEC_FILE = "aigcsched-trials.json"  # what the Tune experiment was started with


def code_version() -> str:
    """A hash of the package's source files: the same code gives the same version in a git
    checkout, an installed copy or the copy a Ray job ships, and any edit (committed or not) a new
    one."""
    package = Path(aigcsched.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def git_commit() -> str | None:
    """The commit of the checkout the package runs from (`+dirty` with uncommitted edits), if any."""
    package = str(Path(aigcsched.__file__).parent)
    try:
        head = subprocess.run(["git", "-C", package, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "-C", package, "status", "--porcelain", "--", "."], capture_output=True, text=True
        )
    except OSError:
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def version_tags() -> dict:
    """The tags that say which code trained a run."""
    commit = git_commit()
    return {CODE_TAG: code_version(), **({GIT_TAG: commit} if commit else {})}


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
    """The Tune trainable: train `experiments[config["run"]]` as the MLflow run of that name (a
    sweep: `experiments[""]` with `config["set"]`, as run trial-ID), reporting each iteration's
    metrics, then the held-out score and the run id."""
    import ray.tune

    from aigcsched.platform import tracking
    from aigcsched.platform.config import load_experiment
    from aigcsched.platform.training import train

    exp = experiments[config.get("run", "")]
    if config.get("set"):
        exp = load_experiment(None, {**exp.model_dump(mode="json"), **config["set"]})
    mlflow.set_tracking_uri(tracking_uri)  # a trial runs in its own directory, maybe on another node
    trial_id = ray.tune.get_context().get_trial_id()
    run_name = config.get("run") or f"trial-{trial_id}"
    run_id, finished = _run_of_trial(trial_id, run_name)
    key = f"eval.trained.{exp.problem.score.metric}"
    if not finished:

        def report(metrics: dict) -> None:
            # a sweep steers by the curve metric: an iteration before the first finished episode has none
            if exp.problem.curve in metrics:
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
    final["env_steps"] = run.data.metrics.get("env_steps", 0.0)
    final[exp.problem.curve] = run.data.metrics.get(exp.problem.curve, float("nan"))
    ray.tune.report(final)


STORE_KEY = "tracking_uri"  # a spec's MLflow store: the trials' runs are there


def check_spec(folder: Path, spec: dict) -> bool:
    """Whether `folder` holds a Tune experiment started with this same spec (True: restore it;
    False: none there). A different one is an error: restoring would run the old trials."""
    saved = folder / SPEC_FILE
    if not saved.is_file():
        return False
    old = json.loads(saved.read_text())
    stores = old.get(STORE_KEY), spec.get(STORE_KEY)
    if stores[0] != stores[1]:  # its finished trials' runs are in the other store
        raise ConfigError(
            f"{folder} holds a run tracked in {stores[0]}, not in {stores[1]}: set MLFLOW_TRACKING_URI "
            "to that store to resume it, or pass --restart to start over, or --out for another folder"
        )
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
            # a finished trial's process takes the next trial of the same resources: no new
            # process that imports torch and RLlib again (seconds per trial)
            tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, reuse_actors=True, **(tune_config or {})),
            run_config=tune.RunConfig(
                name=folder.name,
                storage_path=str(folder.parent),
                verbose=1,
                failure_config=tune.FailureConfig(max_failures=0),
            ),
        )
    return tuner.fit()

"""Training, studies and sweeps as Ray jobs on an existing cluster, through Ray's Job Submission SDK.

The job gets a runtime environment whose working_dir holds only the validated experiment
(config + overrides, resolved here so errors show before anything is sent; for a study or a sweep,
its file and the experiment files it names) and whose py_modules carry the `aigcsched` package,
so it imports on every node. MLflow locations are made absolute
here: a relative `sqlite:///mlflow.db` would otherwise land in the job's temporary directory.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import tempfile
import time
from pathlib import Path

import yaml

import aigcsched
from aigcsched.platform.config import ConfigError, ExperimentConfig

ARTIFACT_ROOT_ENV = "AIGCSCHED_ARTIFACT_ROOT"  # where new experiments keep artifacts
EXPERIMENT_FILE = "experiment.yaml"


def resolve_tracking_uri(uri: str | None, cwd: Path | None = None) -> str:
    """An MLflow tracking URI that means the same from any working directory."""
    cwd = (cwd or Path.cwd()).resolve()
    if not uri:
        return f"sqlite:///{cwd / 'mlflow.db'}"
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{(cwd / uri.removeprefix('sqlite:///')).resolve()}"
    if uri.startswith("file:"):
        path = uri.removeprefix("file://").removeprefix("file:")
        return f"file://{(cwd / path).resolve()}"
    if "://" not in uri:  # a plain path is a file store
        return str((cwd / uri).resolve())
    return uri


def local_artifact_root(tracking_uri: str, cwd: Path | None = None) -> str | None:
    """For a local store, the absolute ./mlruns that MLflow would otherwise resolve per process."""
    if tracking_uri.startswith(("sqlite:", "file:", "/")):
        return str(((cwd or Path.cwd()) / "mlruns").resolve())
    return None


def with_absolute_paths(exp: ExperimentConfig, cwd: Path | None = None) -> ExperimentConfig:
    """The experiment with a relative `env.config.data_dir` made absolute: the job reads it from
    another working directory (the same path must exist on the cluster, e.g. shared storage)."""
    data_dir = exp.env.config.get("data_dir")
    if not isinstance(data_dir, str) or data_dir == "embedded" or Path(data_dir).is_absolute():
        return exp
    config = {**exp.env.config, "data_dir": str(((cwd or Path.cwd()) / data_dir).resolve())}
    return exp.model_copy(update={"env": exp.env.model_copy(update={"config": config})})


def runtime_env(exp: ExperimentConfig, folder: Path, tracking_uri: str) -> dict:
    exp = with_absolute_paths(exp)
    (folder / EXPERIMENT_FILE).write_text(yaml.safe_dump(exp.model_dump(mode="json"), sort_keys=False))
    return package_env(folder, tracking_uri)


def package_env(folder: Path, tracking_uri: str) -> dict:
    """The job's working_dir (`folder`), the aigcsched package, and where MLflow is."""
    env_vars = {"MLFLOW_TRACKING_URI": tracking_uri, "PYTHONUNBUFFERED": "1"}
    root = local_artifact_root(tracking_uri)
    if root:
        env_vars[ARTIFACT_ROOT_ENV] = root
    return {"working_dir": str(folder), "py_modules": [str(Path(aigcsched.__file__).parent)], "env_vars": env_vars}


def file_kind(path: str | Path) -> str:
    """'study' (a file with variants), 'sweep' (with search ranges) or 'train' (an experiment)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"file not found: {p}")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from None
    if isinstance(raw, dict) and "variants" in raw:
        return "study"
    if isinstance(raw, dict) and "search" in raw:
        return "sweep"
    return "train"


def _config_copy(source: Path, exp: ExperimentConfig, folder: Path, name: str, values: dict) -> str:
    """Copy an experiment file into the job's folder as written (overrides then apply there as
    here); a relative data_dir becomes an absolute override in `values`."""
    (folder / name).write_text(source.read_text())
    data_dir = with_absolute_paths(exp).env.config.get("data_dir")
    if data_dir != exp.env.config.get("data_dir"):
        values["env.config.data_dir"] = data_dir
    return name


def write_study_job(path: str | Path, overrides: dict, folder: Path) -> str:
    """The study file, its variants' configs beside it, and the overrides folded in: what the
    job's `aigcsched study` reads. Returns the study file's name."""
    from aigcsched.platform.study import load_study

    p = Path(path)
    study, experiments = load_study(p, overrides)
    raw = yaml.safe_load(p.read_text())
    raw["set"] = study.set
    for i, (name, variant) in enumerate(study.variants.items()):
        values = dict(variant.set)
        raw["variants"][name] = {
            "config": _config_copy(p.parent / variant.config, experiments[name], folder, f"variant{i}.yaml", values),
            "set": values,
        }
    (folder / "study.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return "study.yaml"


def write_sweep_job(path: str | Path, overrides: dict, folder: Path) -> str:
    """The sweep file and its config beside it, the overrides folded in. Returns its name."""
    from aigcsched.platform.sweep import load_sweep

    p = Path(path)
    sweep, base = load_sweep(p, overrides)
    raw = yaml.safe_load(p.read_text())
    values = dict(sweep.set)
    raw["config"] = _config_copy(p.parent / sweep.config, base, folder, "config.yaml", values)
    raw["set"] = values
    (folder / "sweep.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return "sweep.yaml"


def entrypoint(verbose: bool = False, command: str = "train", args: str = EXPERIMENT_FILE) -> str:
    """The job's command: `aigcsched train` on the experiment file the job carries (or `study` /
    `tune` on its study or sweep file)."""
    return f"python -m aigcsched.cli {'--verbose ' if verbose else ''}{command} {args}"


def submit_training(exp: ExperimentConfig, address: str, wait: bool = True, echo=print, verbose: bool = False) -> int:
    """Submit `aigcsched train` as a Ray job; with `wait`, stream its logs until it ends and return
    its exit code (0 only when it SUCCEEDED)."""
    return submit_job(
        lambda folder, uri: runtime_env(exp, folder, uri),
        entrypoint(verbose),
        {"aigcsched": "train", "experiment": exp.tracking.experiment},
        address,
        wait,
        echo,
    )


def submit_file(
    kind: str,
    path: str | Path,
    overrides: dict,
    address: str,
    args: list[str],
    wait: bool = True,
    echo=print,
    verbose: bool = False,
) -> int:
    """Submit `aigcsched study` or `aigcsched tune` on a study or sweep file as a Ray job: the file
    and its configs travel with it; `args` are the command's options (e.g. --out)."""
    writer = write_study_job if kind == "study" else write_sweep_job
    command = "study" if kind == "study" else "tune"
    names = {}

    def env(folder: Path, uri: str) -> dict:
        names["file"] = writer(path, overrides, folder)
        return package_env(folder, uri)

    with tempfile.TemporaryDirectory() as tmp:  # validate (and fail) before anything is sent
        writer(path, overrides, Path(tmp))
    return submit_job(
        env,
        lambda: entrypoint(verbose, command, shlex.join([names["file"], *args])),
        {"aigcsched": command, "file": Path(path).name},
        address,
        wait,
        echo,
    )


def submit_job(make_env, command, metadata: dict, address: str, wait: bool, echo) -> int:
    """Submit a job whose runtime env `make_env(folder, tracking_uri)` builds; `command` is the
    entrypoint (or a function giving it, once the env is built)."""
    from ray.job_submission import JobSubmissionClient

    tracking_uri = resolve_tracking_uri(os.environ.get("MLFLOW_TRACKING_URI"))
    try:
        client = JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ConfigError(f"cannot reach the Ray job server at {address}: {str(e).splitlines()[0]}") from None
    with tempfile.TemporaryDirectory() as tmp:
        env = make_env(Path(tmp), tracking_uri)
        job_id = client.submit_job(
            entrypoint=command() if callable(command) else command, runtime_env=env, metadata=metadata
        )
    echo(f"submitted job {job_id} to {address} (MLflow: {tracking_uri})")
    if not wait:
        echo(f"follow with: ray job logs --follow --address {address} {job_id}")
        return 0

    async def stream():
        async for lines in client.tail_job_logs(job_id):
            echo(lines, end="")

    try:
        asyncio.run(stream())
    except RuntimeError as e:  # the stream broke off (head restarted, network): the job's state decides
        echo(f"log stream ended: {str(e).splitlines()[0]}; waiting for the job to finish")
    info = client.get_job_info(job_id)
    while not info.status.is_terminal():
        time.sleep(2)
        info = client.get_job_info(job_id)
    code = job_exit_code(info.status, info.driver_exit_code)
    echo(f"job {job_id}: {info.status.value}" + (f" (exit code {code})" if code else ""))
    return code


def job_exit_code(status, driver_exit_code: int | None) -> int:
    """0 only for a job that SUCCEEDED; a failed job's own exit code where there is one (2: bad
    input, as for the local command), else 1 (stopped, killed by a signal, never started)."""
    from ray.job_submission import JobStatus

    if status == JobStatus.SUCCEEDED:
        return 0
    if status == JobStatus.FAILED and driver_exit_code is not None and 0 < driver_exit_code < 256:
        return driver_exit_code
    return 1

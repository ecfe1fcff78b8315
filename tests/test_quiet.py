"""`aigcsched` shows its own progress and results; the warnings and logs of Ray, RLlib and MLflow,
its driver's and its Ray workers', only with `aigcsched --verbose`. The real command, in a process
of its own: what libraries print at import and at start-up is the point."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import run_cli

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "edge_ppo.yaml")
TINY = {  # one remote env runner, so that a worker process has its say too; about 25 s
    "resources.num_env_runners": 1,
    "resources.num_envs_per_env_runner": 2,
    "env.config.n_requests": 50,
    "algorithm.train_batch_size": 200,
    "algorithm.minibatch_size": 100,
    "algorithm.num_epochs": 1,
    "evaluation.episodes": 1,
}
# What each source printed before, one line of it each: Ray's logger, RLlib's (driver and env runner
# process), MLflow's python warnings, its logger and its prints.
LIBRARY_LINES = {
    "ray": "Started a local Ray instance",
    "rllib": "on the new API stack",
    "rllib deprecation": "DeprecationWarning: `RLModule(config=",
    "env runner process": "(SingleAgentEnvRunner pid=",
    "mlflow warning": "Add type hints to the `predict` method",
    "mlflow logger": "WARNING mlflow.pyfunc",
    "mlflow print": "Created version '1' of model",
}
# Any python warning or log record (Ray's token authentication notice, Tune's "Install gputil", ...):
# a line of a source not named above fails as well.
LOG_RECORD = re.compile(r"Warning: |\b(DEBUG|INFO|WARNING)\b")


def _start(tmp_path, *root_options):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db", "PYTHONUNBUFFERED": "1"}
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    cmd = [sys.executable, "-m", "aigcsched.cli", *root_options, "train", CONFIG, "--stop-iters", "1", *sets]
    return subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def trainings(tmp_path_factory):
    """Both trainings at once (each its own Ray instance and store): the suite waits for one, not two."""
    started = {
        name: _start(tmp_path_factory.mktemp(name), *opts)
        for name, opts in (("quiet", ()), ("verbose", ("--verbose",)))
    }
    results = {}
    for name, proc in started.items():
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-3000:]
        results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return results


def test_by_default_only_the_commands_own_output(trainings):
    result = trainings["quiet"]
    shown = {source: line for source, line in LIBRARY_LINES.items() if line in result.stderr}
    assert not shown, result.stderr
    # Ray's C++ core logs this advisory at ERROR straight to stderr, past Python's logging.
    lines = [line for line in result.stderr.splitlines() if "core_worker.cc" not in line]
    assert not [line for line in lines if LOG_RECORD.search(line)], result.stderr
    # ... and what is left is the command's own: progress, evaluation, registration, the results.
    assert "iter 1" in result.stderr and "registered aigcsched-edge version 1" in result.stderr
    assert "1 iterations, 200 env steps" in result.stdout.replace("\n", " ")


def test_verbose_shows_the_libraries_again(trainings):
    result = trainings["verbose"]
    missing = {source: line for source, line in LIBRARY_LINES.items() if line not in result.stderr}
    assert not missing, result.stderr
    assert "registered aigcsched-edge version 1" in result.stderr


def test_v_is_short_for_verbose(capsys, monkeypatch):
    args = ["evaluate", "mec", "--episodes", "1", "-p", "myopic", "--json"]
    quiet, verbose = run_cli(capsys, monkeypatch, *args), run_cli(capsys, monkeypatch, "-v", *args)
    assert quiet[0] == verbose[0] == 0 and quiet[1] == verbose[1]

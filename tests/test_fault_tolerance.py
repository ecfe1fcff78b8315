"""Fault tolerance, for real: an env runner process killed mid-training, and a driver killed with
SIGKILL and then resumed from its last checkpoint in MLflow."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from ray.tune.registry import register_env

from aigcsched.envs import make_edge_env
from aigcsched.platform import rllib_setup
from aigcsched.platform.config import load_experiment
from aigcsched.platform.problems.edge import RLLIB_ENV
from aigcsched.platform.tracking import CHECKPOINT_TAG
from aigcsched.platform.training import STALL_S_ENV, SamplingStalled, train

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "edge_ppo.yaml")
TINY = {  # an iteration takes about a second
    "env.config.n_requests": 64,
    "resources.num_envs_per_env_runner": 4,
    "algorithm.train_batch_size": 256,
    "algorithm.minibatch_size": 128,
    "algorithm.num_epochs": 1,
    "algorithm.hidden": 16,
    "evaluation.episodes": 1,
}


def test_killed_env_runner_is_restarted_and_training_goes_on(store, monkeypatch):
    """SIGKILL the only remote env runner after the first iteration: RLlib (restart_failed_env_runners
    in the platform's config) starts a new one and the platform's loop carries on to the stop."""
    seen = []  # per iteration: env runner pids and RLlib's fault-tolerance stats

    def on_train_result(*, algorithm, result, **kwargs):
        group = algorithm.env_runner_group
        pids = group.foreach_env_runner(lambda runner: os.getpid(), local_env_runner=False)
        steps = result["env_runners"].get("num_env_steps_sampled_lifetime", 0)
        seen.append({"pids": pids, "steps": steps, **result["fault_tolerance"]})
        if len(seen) == 1:
            os.kill(pids[0], signal.SIGKILL)

    platform_config = rllib_setup.algorithm_config

    def config_with_callback(exp):
        config = platform_config(exp).callbacks(on_train_result=on_train_result)
        # RLlib waits 60 s between restarts of a runner by default: cut short to keep the test short
        return config.fault_tolerance(delay_between_env_runner_restarts_s=1)

    monkeypatch.setattr(rllib_setup, "algorithm_config", config_with_callback)
    exp = load_experiment(
        CONFIG,
        {
            **TINY,
            "resources.num_env_runners": 1,
            # Until enough steps are sampled, so only if sampling resumes (minutes: a safety net).
            "stop": {"env_steps": 3 * 256, "minutes": 3},
            "tracking.experiment": "fault-runner",
            "tracking.register_model": False,
        },
    )
    outcome = train(exp)

    assert outcome.env_steps >= 3 * 256 and outcome.iterations == len(seen) >= 3
    killed = seen[0]["pids"][0]
    assert seen[1]["num_healthy_workers"] == 0  # the kill was noticed: that iteration sampled nothing
    assert seen[-1]["num_remote_worker_restarts"] >= 1 and seen[-1]["num_healthy_workers"] == 1
    assert seen[-1]["pids"] and killed not in seen[-1]["pids"]  # a new process samples
    history = mlflow.MlflowClient().get_metric_history(outcome.run_id, "env_steps")
    steps = [m.value for m in sorted(history, key=lambda m: m.step)]
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(1, outcome.iterations + 1))
    assert steps == sorted(steps) and steps[-1] >= steps[0] + 2 * 256  # sampling resumed after the restart
    assert mlflow.get_run(outcome.run_id).info.status == "FINISHED"


def test_training_fails_when_no_env_runner_can_sample(store, monkeypatch):
    """An env that breaks on every step: RLlib keeps restarting its runner and returns iterations
    without samples; training fails instead of finishing (and registering) on nothing."""

    def broken_env(config):
        env = make_edge_env(config)

        def step(actions):
            raise RuntimeError("the simulator broke")

        env.step = step
        return env

    platform_config = rllib_setup.algorithm_config

    def config_with_broken_env(exp):
        # RLlib's waits (60 s between restarts, by default) cut short to keep the test short
        config = platform_config(exp).env_runners(sample_timeout_s=5)
        config = config.fault_tolerance(delay_between_env_runner_restarts_s=1)
        register_env(RLLIB_ENV, broken_env)  # replaces the one just registered
        return config

    monkeypatch.setattr(rllib_setup, "algorithm_config", config_with_broken_env)
    monkeypatch.setenv(STALL_S_ENV, "5")
    exp = load_experiment(
        CONFIG,
        {**TINY, "resources.num_env_runners": 1, "stop": {"iterations": 50}, "tracking.experiment": "fault-broken"},
    )
    try:
        with pytest.raises(SamplingStalled, match="no env step sampled for 5 s"):
            train(exp)
    finally:
        register_env(RLLIB_ENV, make_edge_env)
    (run,) = mlflow.search_runs(experiment_names=["fault-broken"], output_format="list")
    assert run.info.status == "FAILED" and "aigcsched.model_version" not in run.data.tags
    assert len(mlflow.MlflowClient().get_metric_history(run.info.run_id, "env_steps")) < 50


def _processes() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent pid, session id, start time) of every process, read from /proc."""
    out = {}
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split() if entry.name.isdigit() else None
        except OSError:
            continue  # gone meanwhile
        if fields:
            out[int(entry.name)] = (int(fields[1]), int(fields[3]), int(fields[19]))
    return out


def _started_by(root: int) -> set[tuple[int, int]]:
    """(pid, start time) of the processes `root` started: its session and all its descendants."""
    procs = _processes()
    family = {pid for pid, (_, sid, _) in procs.items() if sid == root} | {root}
    while True:
        more = {pid for pid, (ppid, _, _) in procs.items() if ppid in family} - family
        if not more:
            return {(pid, procs[pid][2]) for pid in family if pid in procs}
        family |= more


def _alive(processes: set[tuple[int, int]]) -> set[tuple[int, int]]:
    procs = _processes()
    return {(pid, start) for pid, start in processes if pid in procs and procs[pid][2] == start}


def _checkpoint_iteration(client, run_id: str) -> int:
    tag = client.get_run(run_id).data.tags.get(CHECKPOINT_TAG, "")
    return int(tag.rsplit("_", 1)[1]) if tag else 0


def test_driver_killed_with_sigkill_resumes_from_its_last_checkpoint(tmp_path):
    """`aigcsched train` killed with -9 after its second checkpoint; `--resume RUN_ID` continues the
    same run from that checkpoint's iteration to the stop, and registers the model."""
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONUNBUFFERED": "1"}
    sets = {**TINY, "tracking.checkpoint_every": 1, "tracking.experiment": "fault-driver", "tracking.model_name": "ft"}
    args = [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]
    # far more iterations than it lives for: on a fast machine a 4-iteration run could finish
    # between the second checkpoint and the kill
    cmd = [sys.executable, "-m", "aigcsched.cli", "train", CONFIG, "--stop-iters", "50", *args]
    client = mlflow.MlflowClient(uri)
    log = open(tmp_path / "first.log", "w")
    # Its own session: the driver and the local Ray it starts form one group to kill.
    first = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 240
        run_id = None
        while time.time() < deadline and first.poll() is None:
            time.sleep(0.5)
            if run_id is None:
                experiment = client.get_experiment_by_name("fault-driver")
                runs = client.search_runs([experiment.experiment_id]) if experiment else []
                run_id = runs[0].info.run_id if runs else None
            if run_id and _checkpoint_iteration(client, run_id) >= 2:
                break
        assert run_id and first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
        started = _started_by(first.pid)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        log.close()
    # Ray's processes share the driver's fate; whatever outlived it is ours to end.
    deadline = time.time() + 30
    while _alive(started) and time.time() < deadline:
        time.sleep(1)
    leftover = _alive(started)
    for pid, _ in leftover:
        os.kill(pid, signal.SIGKILL)
    assert not leftover, f"processes outlived the killed driver: {leftover}"
    assert first.returncode == -signal.SIGKILL and len(started) > 1
    checkpoint = _checkpoint_iteration(client, run_id)
    assert 2 <= checkpoint < 50
    total = checkpoint + 2  # the resumed run goes two iterations past its checkpoint
    assert client.get_run(run_id).info.status == "RUNNING"  # nobody closed it

    resume = [sys.executable, "-m", "aigcsched.cli", "train", CONFIG, "--stop-iters", str(total), *args]
    resume += ["--resume", run_id]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    second = subprocess.Popen(resume, env=env, cwd=tmp_path, start_new_session=True, **pipes)
    try:
        out, _ = second.communicate(timeout=300)
    finally:
        if second.poll() is None:
            os.killpg(second.pid, signal.SIGKILL)
    assert second.returncode == 0, out[-3000:]
    assert f"resumed run {run_id}" in out and f"at iteration {checkpoint}" in out
    assert f"run {run_id}: {total} iterations" in out.replace("\n", " ")
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags[CHECKPOINT_TAG] == f"checkpoints/iter_{total:06d}"
    # One iteration count across both processes: iterations after the checkpoint that the killed
    # driver had logged are logged again, with the steps counted on from the checkpoint.
    history = client.get_metric_history(run_id, "env_steps")
    assert sorted({m.step for m in history}) == list(range(1, total + 1))
    latest = {m.step: m.value for m in sorted(history, key=lambda m: m.timestamp)}
    assert [latest[i] for i in range(1, total + 1)] == [256 * i for i in range(1, total + 1)]
    # registered from the resumed run (promoted or not: see the promotion tests)
    assert [v.run_id for v in client.search_model_versions("name='ft'")] == [run_id]

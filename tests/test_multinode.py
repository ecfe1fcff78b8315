"""A real two-node Ray cluster on loopback: `ray start` twice, training submitted as a Ray job."""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import yaml

from aigcsched.platform.config import load_experiment

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TRAINING = {
    "env.config.n_requests": 64,
    "resources.num_env_runners": 2,  # one CPU per node: one runner lands on each
    "resources.num_envs_per_env_runner": 4,
    "algorithm.train_batch_size": 256,
    "algorithm.minibatch_size": 128,
    "algorithm.num_epochs": 1,
    "algorithm.hidden": 16,
    "evaluation.episodes": 1,
    "stop": {"iterations": 2},
    "tracking.experiment": "multinode",
    "tracking.model_name": "multinode-edge",
}


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def wait_for(check, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(1)
    raise TimeoutError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Head and worker node, 1 CPU each, token authentication on; stopped with SIGTERM. Each node has
    its own temp dir: a job's driver finds its cluster through the head's temp dir (the default
    /tmp/ray names whichever cluster on this machine started last). The cluster's own token: `ray
    start` with RAY_AUTH_MODE=token fails where none exists, as on a fresh machine."""
    root = tmp_path_factory.mktemp("cluster")
    gcs, dashboard, client, agent1, agent2 = free_ports(5)
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root}/mlflow.db",
    }
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--block"]
    head = subprocess.Popen(
        [
            BIN / "ray",
            "start",
            "--head",
            "--port",
            str(gcs),
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(dashboard),
            "--ray-client-server-port",
            str(client),
            "--dashboard-agent-listen-port",
            str(agent1),
            "--temp-dir",
            f"/tmp/ray-h{gcs}",
            *common,
        ],
        env=env,
        stdout=open(root / "head.log", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    nodes = [head]
    try:
        status = [BIN / "ray", "status", "--address", f"127.0.0.1:{gcs}"]
        wait_for(lambda: subprocess.run(status, env=env, capture_output=True).returncode == 0, 120, "the head")
        worker = subprocess.Popen(
            [
                BIN / "ray",
                "start",
                "--address",
                f"127.0.0.1:{gcs}",
                "--dashboard-agent-listen-port",
                str(agent2),
                "--temp-dir",
                f"/tmp/ray-w{gcs}",
                *common,
            ],
            env=env,
            stdout=open(root / "worker.log", "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        nodes.append(worker)

        def two_nodes():
            out = subprocess.run(status, env=env, capture_output=True, text=True).stdout
            return out.count(" node_") >= 2 and "2.0 CPU" in out.replace("0.0/2.0 CPU", "2.0 CPU")

        wait_for(two_nodes, 120, "the second node")
        out = subprocess.run(status, env=env, capture_output=True, text=True).stdout
        node_ids = set(re.findall(r"node_([0-9a-f]+)", out))
        yield {
            "env": env,
            "address": f"http://127.0.0.1:{dashboard}",
            "gcs": f"127.0.0.1:{gcs}",
            "root": root,
            "node_ids": node_ids,
        }
    finally:
        for node in reversed(nodes):  # ending the --block processes stops each node
            node.send_signal(signal.SIGTERM)
        for node in reversed(nodes):
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
        for d in (f"/tmp/ray-h{gcs}", f"/tmp/ray-w{gcs}"):
            shutil.rmtree(d, ignore_errors=True)


def test_ray_job_submit_trains_across_both_nodes(cluster, tmp_path):
    exp = load_experiment(ROOT / "configs" / "edge_ppo.yaml", TRAINING)
    workdir = tmp_path / "job"
    workdir.mkdir()
    (workdir / "experiment.yaml").write_text(yaml.safe_dump(exp.model_dump(mode="json")))
    runtime_env = {
        "env_vars": {
            "MLFLOW_TRACKING_URI": cluster["env"]["MLFLOW_TRACKING_URI"],
            "AIGCSCHED_ARTIFACT_ROOT": str(cluster["root"] / "mlruns"),
        }
    }
    result = subprocess.run(
        [
            BIN / "ray",
            "job",
            "submit",
            "--address",
            cluster["address"],
            "--working-dir",
            str(workdir),
            "--runtime-env-json",
            json.dumps(runtime_env),
            "--",
            "aigcsched",
            "train",
            "experiment.yaml",
        ],
        env=cluster["env"],
        capture_output=True,
        text=True,
        timeout=480,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "succeeded" in result.stdout.lower()

    mlflow.set_tracking_uri(cluster["env"]["MLFLOW_TRACKING_URI"])
    try:
        runs = mlflow.search_runs(experiment_names=["multinode"], output_format="list")
        assert len(runs) == 1 and runs[0].info.status == "FINISHED"
        run = runs[0]
        # Both nodes of this cluster sampled (not those of another cluster on this machine).
        assert set(run.data.tags["aigcsched.env_runner_nodes"].split(",")) == cluster["node_ids"]
        assert len(cluster["node_ids"]) == 2
        assert run.data.metrics["env_steps"] >= 512
        versions = mlflow.MlflowClient().search_model_versions("name='multinode-edge'")
        assert [v.run_id for v in versions] == [run.info.run_id]
        # Artifacts went to the absolute root, not the job's temporary working directory.
        assert run.info.artifact_uri.startswith(str(cluster["root"] / "mlruns"))
    finally:
        mlflow.set_tracking_uri(None)


def test_aigcsched_submit_streams_logs_and_returns_the_exit_status(cluster, tmp_path):
    env = {**cluster["env"], "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/submit.db"}
    cmd = [
        sys.executable,
        "-m",
        "aigcsched.cli",
        "submit",
        str(ROOT / "configs" / "edge_ppo.yaml"),
        "--address",
        cluster["address"],
    ]
    sets = [
        f"{k}={json.dumps(v)}"
        for k, v in {**TRAINING, "stop.iterations": 1, "tracking.register_model": False}.items()
        if k != "stop"
    ]
    args = [a for s in sets for a in ("--set", s)]
    ok = subprocess.run(cmd + args, env=env, capture_output=True, text=True, timeout=480, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    assert "submitted job" in ok.stdout and "SUCCEEDED" in ok.stdout and "iter 1" in ok.stdout


def test_aigcsched_submit_fails_when_the_job_fails(cluster, tmp_path):
    """A config that validates here but cannot run there (its trace folder is missing on the
    cluster): the job fails, its error streams here, and the exit code is the job's (1), not 0."""
    uri = f"sqlite:///{tmp_path}/failed.db"
    missing = tmp_path / "no-traces"
    cmd = [
        sys.executable,
        "-m",
        "aigcsched.cli",
        "submit",
        str(ROOT / "configs" / "datacenter_ppo.yaml"),
        "--address",
        cluster["address"],
        "--set",
        f"env.config.data_dir={missing}",
        "--set",
        "stop.iterations=1",
    ]
    env = {**cluster["env"], "MLFLOW_TRACKING_URI": uri}
    failed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert failed.returncode == 1, failed.stdout[-3000:] + failed.stderr[-3000:]
    assert "submitted job" in failed.stdout and "FAILED (exit code 1)" in failed.stdout
    assert f"DataError: {missing}/electricity_prices" in failed.stdout  # the job's traceback, streamed
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("aigcsched-datacenter").experiment_id])
    assert run.info.status == "FAILED"  # the training itself failed, in the job


STUDY_TRAINING = {
    "env.config.n_requests": 32,
    "resources.num_envs_per_env_runner": 2,
    "algorithm.train_batch_size": 64,
    "algorithm.minibatch_size": 64,
    "algorithm.num_epochs": 1,
    "algorithm.hidden": 8,
    "evaluation.episodes": 1,
    "tracking.checkpoint_every": 1,
    "stop": {"iterations": 2},
}


def test_a_study_runs_its_trials_on_both_nodes_and_resumes_after_its_driver_is_killed(cluster, tmp_path):
    """2 variants x 2 seeds, one trial per node at a time (each needs 1 CPU); the driver is killed
    once the first trial finished (not later: the trials are short, and the next ones could all end
    before the kill), and the study submitted as a job to the same folder then
    finishes it without training any finished trial again."""
    study = {
        "name": "multinode",
        "seeds": 2,
        "set": STUDY_TRAINING,
        "variants": {
            "scored": {"config": str(ROOT / "configs" / "edge_ppo.yaml")},
            "mlp": {
                "config": str(ROOT / "configs" / "edge_ppo.yaml"),
                "set": {"algorithm.module": "mlp", "algorithm.anchor_scale": 0.0},
            },
        },
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    uri = f"sqlite:///{tmp_path}/study.db"
    env = {**cluster["env"], "MLFLOW_TRACKING_URI": uri}
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "aigcsched.cli", "study", str(path), "--address", cluster["gcs"], "--out", str(out)]
    client = mlflow.MlflowClient(uri)

    def finished():
        experiment = client.get_experiment_by_name("study-multinode")
        if experiment is None:
            return []
        return client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'")

    log = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: len(finished()) >= 1 or first.poll() is not None, 300, "a finished trial")
    finally:
        first.kill()  # the driver only: its trials end with it
        first.wait()
    before = {r.info.run_name: r.info.run_id for r in finished()}
    assert 1 <= len(before) < 4, (tmp_path / "first.log").read_text()[-3000:]
    # Ray frees the killed driver's trials a while after it dies (seconds on a busy machine): until
    # then the resumed study finds one free CPU and would run every trial on that one node.
    status = [BIN / "ray", "status", "--address", cluster["gcs"]]
    wait_for(
        lambda: "0.0/2.0 CPU" in subprocess.run(status, env=env, capture_output=True, text=True).stdout,
        120,
        "the killed driver's trials to free their CPUs",
    )

    submit = [sys.executable, "-m", "aigcsched.cli", "submit", str(path), "--address", cluster["address"]]
    again = subprocess.run([*submit, "--out", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "SUCCEEDED" in again.stdout and "resuming the Tune experiment" in again.stdout
    result = json.loads((out / "study.json").read_text())
    ran = {f"{name}-seed{k}": run for name, row in result["variants"].items() for k, run in enumerate(row["runs"])}
    assert len(ran) == 4 and all(ran[name] == run_id for name, run_id in before.items())
    runs = [r for r in finished() if r.info.run_name in ran]
    assert sorted(r.info.run_name for r in runs) == sorted(ran)  # one finished run per trial: none repeated
    assert {r.data.tags["aigcsched.env_runner_nodes"] for r in runs} == cluster["node_ids"]

"""`aigcsched serve`: argument errors exit 2 before Ray starts; a real run prints the URL, answers,
and stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from cli_runner import run_cli

from aigcsched.envs import EdgeConfig
from aigcsched.serve.client import EndpointError, SchedulerClient


@pytest.mark.parametrize(
    "args, message",
    [
        (["serve", "--policy", "random"], "unknown policy 'random'; choose from greedy, myopic"),
        (["serve", "--policy", "greedy", "--model", "models:/x@champion"], "not both"),
        (["serve", "--policy", "greedy", "--replicas", "3", "--max-replicas", "2"], "--max-replicas (2)"),
        (["serve", "--problem", "cloud"], "unknown problem 'cloud'; choose from edge, datacenter, mec"),
        (
            ["serve", "--problem", "mec", "--policy", "greedy"],
            "unknown mec policy 'greedy' to serve; choose from local",
        ),
        (
            ["serve", "--problem", "datacenter", "--policy", "random"],
            "choose from local, handoff, arbitrage, combined, deadline",
        ),
    ],
)
def test_bad_arguments_exit_2(capsys, monkeypatch, args, message):
    code, out, err = run_cli(capsys, monkeypatch, *args)
    assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1


def test_a_taken_port_exits_2(capsys, monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = run_cli(capsys, monkeypatch, "serve", "--policy", "greedy", "--port", str(port))
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in err


def test_missing_champion_exits_2_before_ray_starts(capsys, monkeypatch, tmp_path, register_edge_model):
    import mlflow
    import ray

    from aigcsched.serve.deployment import check_policy
    from aigcsched.serve.policy import PolicySource

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")  # relative: the command makes it absolute
    name = "aigcsched-edge"  # what serve loads by default
    version = register_edge_model(name, EdgeConfig(n_servers=3, n_strong=1, observe_capabilities=True))
    assert mlflow.MlflowClient().get_registered_model(name).aliases == {}  # registered, never promoted
    capsys.readouterr()  # what registering printed
    code, out, err = run_cli(capsys, monkeypatch, "serve")
    assert code == 2 and out == "" and err.startswith("error: ") and err.count("\n") == 1
    assert f"models:/{name}@champion" in err and f"(tracking store sqlite:///{tmp_path}/mlflow.db)" in err
    assert "none with alias 'champion'" in err and f"aigcsched models promote {name} VERSION" in err
    assert not ray.is_initialized()
    # The store the command read holds the model: only the alias was missing.
    served = check_policy(PolicySource(model_uri=f"models:/{name}/{version}"))
    assert served.model_info()["version"] == version and served.n_servers == 3
    assert not ray.is_initialized()


def test_default_model_in_an_empty_store_exits_2(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    code, out, err = run_cli(capsys, monkeypatch, "serve")
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and out == ""
    assert "models:/aigcsched-edge@champion" in err


def test_serve_prints_the_urls_answers_and_stops_on_ctrl_c(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    env["AIGCSCHED_API_TOKEN"] = "cli-token"
    cmd = [sys.executable, "-m", "aigcsched.cli", "serve", "--policy", "myopic", "--port", str(port)]
    cmd += ["--num-cpus", "2", "--replica-cpus", "0.5", "--ingress", "direct"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        # one line on stdout once it serves: the proxy's URL, then each replica's direct URL
        url, *direct = proc.stdout.readline().split()
        assert url == f"http://127.0.0.1:{port}"
        assert len(direct) == 1 and direct[0] != url and direct[0].startswith("http://127.0.0.1:")
        for base in (url, direct[0]):
            client = SchedulerClient(base, token="cli-token")
            assert client.health() == {"status": "ok", "app": "aigcsched"}
            assert client.model()["policy"] == "heuristic:myopic"
            servers = {"a": {"capability": 15.0, "busy_for_s": 0.0}}
            answer = client.decide(servers, {"id": "r", "due_in_s": 8.0, "penalty": "quadratic"})
            assert answer["server"] == "a" and answer["policy"] == "heuristic:myopic"
            with pytest.raises(EndpointError) as e:
                SchedulerClient(base).model()
            assert e.value.status == 401
        proc.send_signal(signal.SIGINT)
        deadline = time.time() + 60
        while proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert proc.returncode == 0, proc.stderr.read()
        for base in (url, *direct):
            with pytest.raises(OSError):
                SchedulerClient(base, timeout_s=2).health()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

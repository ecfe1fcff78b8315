import json

import pytest
from cli_runner import run_cli as run


def test_evaluate_json(capsys, monkeypatch):
    code, out, err = run(
        capsys,
        monkeypatch,
        "evaluate",
        "edge",
        "-p",
        "greedy",
        "-p",
        "myopic",
        "--episodes",
        "2",
        "--seed",
        "5",
        "--set",
        "n_requests=50",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)  # nothing but the JSON object on stdout
    assert list(result) == ["greedy", "myopic"]
    assert set(result["greedy"]) == {"reward", "quality", "tardiness", "late_fraction"}
    assert result["myopic"]["reward"] >= result["greedy"]["reward"]


def test_evaluate_table(capsys, monkeypatch):
    code, out, _ = run(capsys, monkeypatch, "evaluate", "edge", "--episodes", "1", "--set", "n_requests=20")
    assert code == 0
    for name in ("random", "greedy", "myopic", "late fraction"):
        assert name in out


def test_set_overrides_change_the_scenario(capsys, monkeypatch):
    args = ["evaluate", "edge", "-p", "greedy", "--episodes", "2", "--set", "n_requests=100", "--json"]
    _, base, _ = run(capsys, monkeypatch, *args)
    _, weak, _ = run(capsys, monkeypatch, *args, "--set", "n_strong=0", "--set", "due_window_s=[2, 5]")
    assert json.loads(weak)["greedy"]["quality"] < json.loads(base)["greedy"]["quality"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["evaluate", "edge", "-p", "nope"], "unknown policy 'nope'"),
        (["evaluate", "moon"], "unknown env 'moon'"),
        (["evaluate", "edge", "--set", "n_strong"], "--set expects KEY=VALUE"),
        (["evaluate", "edge", "--set", "=3"], "--set expects KEY=VALUE"),
        (["evaluate", "edge", "--set", "n_strongg=3"], "unknown edge config key(s) n_strongg"),
        (["evaluate", "edge", "--set", "n_strong=11"], "n_strong (11) must be <= n_servers (10)"),
        (["evaluate", "edge", "--set", "strong_capability=[0, 5]"], "strong_capability must satisfy 0 < low"),
        (["evaluate", "edge", "--set", "weak_capability=[-2, 5]"], "weak_capability must satisfy 0 < low"),
        (["evaluate", "edge", "--set", "mean_interarrival_s=-1"], "mean_interarrival_s must be > 0"),
        (["evaluate", "edge", "--set", "due_window_s=[9, 3]"], "due_window_s must satisfy"),
        (["evaluate", "edge", "--set", "max_steps=0"], "max_steps must be >= 1"),
        (["evaluate", "edge", "--set", "n_servers=many"], "n_servers: Input should be a valid integer"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(capsys, monkeypatch, args, message):
    code, out, err = run(capsys, monkeypatch, *args)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert out == ""


def test_help_explains_evaluate(capsys, monkeypatch):
    code, out, _ = run(capsys, monkeypatch, "evaluate", "--help")
    assert code == 0 and "--policy" in out and "--set" in out and "--json" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "no-such.yaml"], "config file not found: no-such.yaml"),
        (
            ["train", "configs/edge_ppo.yaml", "--set", "algorithm.lr=-1"],
            "algorithm.lr: Input should be greater than 0",
        ),
        (["reproduce", "edge", "--model", "models:/nobody@champion"], "no registered model at models:/nobody@champion"),
        (["evaluate", "edge", "-p", "models:/nobody/3"], "no registered model at models:/nobody/3"),
        (["evaluate", "edge", "-p", "models:nobody"], "unknown policy 'models:nobody'"),
        (["evaluate", "edge", "-p", "checkpoint:/no/such/dir"], "checkpoint not found: /no/such/dir"),
        (["models", "promote", "nobody", "1"], "model 'nobody' has no version 1"),
        (["tune", "no-such.yaml"], "sweep file not found: no-such.yaml"),
        (["submit", "no-such.yaml", "--address", "http://127.0.0.1:1"], "file not found: no-such.yaml"),
        (
            ["submit", "configs/edge_ppo.yaml", "--address", "http://127.0.0.1:1", "--out", "x"],
            "--out and --max-concurrent are for a study or a sweep, not a training",
        ),
    ],
)
def test_platform_commands_bad_input(capsys, monkeypatch, tmp_path, args, message):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    code, out, err = run(capsys, monkeypatch, *args)
    assert code == 2, err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


TINY_EDGE = ["--set", "n_servers=2", "--set", "n_strong=1", "--set", "n_requests=4", "--set", "max_steps=4"]
TINY_EDGE += ["--set", "mean_interarrival_s=0.1", "--set", "due_window_s=[0.1, 0.4]"]


def test_evaluate_optimum_and_bound(capsys, monkeypatch):
    args = ["evaluate", "edge", "-p", "myopic", "-p", "optimum", "--episodes", "2", "--bound", "--json"]
    code, out, err = run(capsys, monkeypatch, *args, *TINY_EDGE)
    assert code == 0, err
    result = json.loads(out)
    assert list(result) == ["myopic", "optimum", "upper bound"]
    assert result["optimum"]["proven_optimal_episodes"] == 2 and err == ""  # no note: all proven
    assert result["optimum"]["reward"] >= result["myopic"]["reward"] - 1e-3  # 1e-3: rounding, see test_optimum
    assert result["optimum"]["reward"] <= result["optimum"]["solver_bound"] <= result["upper bound"]["reward"]


def test_optimum_not_proven_says_so(capsys, monkeypatch):
    monkeypatch.setenv("AIGCSCHED_OPTIMUM_TIME_LIMIT_S", "0.5")
    args = ["evaluate", "edge", "-p", "optimum", "--episodes", "1", "--set", "n_requests=30", "--json"]
    code, out, err = run(capsys, monkeypatch, *args, "--set", "mean_interarrival_s=1")
    assert code == 0, err
    assert json.loads(out)["optimum"]["proven_optimal_episodes"] == 0
    assert err.startswith("note: optimum: 1 of 1 episodes not proven optimal within 0.5 s")


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["-p", "optimum"], "", "optimum: n_requests=2000 is too large to solve exactly"),
        (
            ["-p", "optimum", "--set", "n_requests=5"],
            "soon",
            "AIGCSCHED_OPTIMUM_TIME_LIMIT_S must be a positive",
        ),
    ],
)
def test_optimum_errors(capsys, monkeypatch, args, env, message):
    monkeypatch.setenv("AIGCSCHED_OPTIMUM_TIME_LIMIT_S", env)
    code, out, err = run(capsys, monkeypatch, "evaluate", "edge", *args)
    assert code == 2 and err.startswith("error: ") and message in err and out == ""

import json
import shutil

import pytest
from cli_runner import run_cli as run
from trace_files import fixture_traces

from aigcsched.envs.data import PUBLIC_FILES


def test_evaluate_datacenter_json(capsys, monkeypatch):
    args = ["evaluate", "datacenter", "-p", "local", "-p", "arbitrage", "--episodes", "2", "--seed", "3"]
    code, out, err = run(capsys, monkeypatch, *args, "--set", "episode_slots=48", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert list(result) == ["local", "arbitrage"]
    assert {"utility", "energy_cost", "renewable_share", "violation_rate", "quality"} <= set(result["local"])
    assert 0 < result["local"]["renewable_share"] < 1
    assert result["arbitrage"]["energy_cost"] < result["local"]["energy_cost"]
    # --set reaches the scenario: without batteries, arbitrage is just local scheduling
    overrides = ["--set", "episode_slots=48", "--set", "battery_kwh=[0, 0, 0]", "--json"]
    _, none, _ = run(capsys, monkeypatch, *args, *overrides)
    assert json.loads(none)["arbitrage"] == pytest.approx(json.loads(none)["local"])


def test_evaluate_datacenter_table_on_trace_files(capsys, monkeypatch):
    code, out, err = run(
        capsys,
        monkeypatch,
        "evaluate",
        "datacenter",
        "--episodes",
        "1",
        "--set",
        "episode_slots=24",
        "--set",
        f"data_dir={fixture_traces()}",
    )
    assert code == 0, err
    for name in (
        "random",
        "local",
        "handoff",
        "arbitrage",
        "combined",
        "violations",
        "energy $",
        "renewable",
    ):
        assert name in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["evaluate", "datacenter", "-p", "greedy"], "unknown policy 'greedy'; choose from random, local"),
        (["evaluate", "datacenter", "--set", "n_gpus=[4, 4]"], "n_gpus needs one entry per region (3)"),
        (["evaluate", "datacenter", "--set", "batteries=2"], "unknown datacenter config key(s) batteries"),
        (["evaluate", "datacenter", "--set", "data_dir=/nonexistent"], "US-CAL-CISO_2023.csv: no such file"),
    ],
)
def test_bad_datacenter_input_is_one_line_and_exit_2(capsys, monkeypatch, args, message):
    code, out, err = run(capsys, monkeypatch, *args)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and out == ""


def _mirror(root):
    """A local copy of the public origin's layout, from the test traces."""
    for local, origin in PUBLIC_FILES.items():
        target = root / origin
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(fixture_traces() / local, target)
    return root


def test_data_download_from_a_mirror(tmp_path, capsys, monkeypatch):
    mirror = _mirror(tmp_path / "mirror")
    dest = tmp_path / "cache"
    code, out, err = run(capsys, monkeypatch, "data", "download", "--dest", str(dest), "--source-url", mirror.as_uri())
    assert code == 0, err
    assert out.strip() == str(dest) and "14 downloaded" in err
    for local in PUBLIC_FILES:
        assert (dest / local).read_bytes() == (fixture_traces() / local).read_bytes()
    code, _, err = run(capsys, monkeypatch, "data", "download", "--dest", str(dest), "--source-url", mirror.as_uri())
    assert code == 0 and "0 downloaded, 14 already there" in err
    # the downloaded directory drives the env
    code, out, err = run(
        capsys, monkeypatch, "evaluate", "datacenter", "-p", "local", "--episodes", "1", "--set",
        "episode_slots=12", "--set", f"data_dir={dest}", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["local"]["utility"] != 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--only", "wind"], "unknown kind(s) wind; choose from prices, carbon, weather, workload"),
        (["--only", "prices", "--only", "solar"], "unknown kind(s) solar"),
        (["--source-url", "raw.githubusercontent.com"], "--source-url must be an http(s):// or file:// URL"),
        (["--dest", "{file}"], "is not a directory"),
    ],
)
def test_data_download_bad_input_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch, args, message):
    (tmp_path / "file").write_text("")
    args = [a.format(file=tmp_path / "file") for a in args]
    dest = ["--dest", str(tmp_path / "cache")] if "--dest" not in args else []
    code, out, err = run(capsys, monkeypatch, "data", "download", *dest, *args)
    assert code == 2
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1 and out == ""
    assert not (tmp_path / "cache").exists()


def test_data_download_errors(tmp_path, capsys, monkeypatch):
    dest = str(tmp_path / "cache")
    code, _, err = run(capsys, monkeypatch, "data", "download", "--dest", dest, "--source-url", "file:///nonexistent")
    assert code == 1 and err.startswith("error: cannot fetch file:///nonexistent/HewlettPackard/green-dcc")
    assert not any((tmp_path / "cache").rglob("*.part"))
    # a file that is not what its name says is refused and removed
    mirror = _mirror(tmp_path / "mirror")
    broken = mirror / PUBLIC_FILES["workload/google_cpu_hourly_1.csv"]
    broken.write_text("<html>rate limited</html>\n")
    code, _, err = run(
        capsys,
        monkeypatch,
        "data",
        "download",
        "--dest",
        dest,
        "--source-url",
        mirror.as_uri(),
        "--only",
        "workload",
    )
    assert code == 1 and "is not in the expected format" in err and "missing column(s) cpu_load" in err
    assert not (tmp_path / "cache" / "workload" / "google_cpu_hourly_1.csv").exists()

"""Studies: variants x seeds through `train`, aggregated honestly (tiny real runs)."""

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from cli_runner import run_cli

from aigcsched.platform.config import ConfigError, load_experiment
from aigcsched.platform.study import curve_band, load_study, mean_ci, run_study, steps_to_reach, wants_log_scale
from aigcsched.platform.sweep import load_sweep
from aigcsched.platform.trials import code_version

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
TINY = {
    "env.config.n_servers": 3,
    "env.config.episode_slots": 10,
    "resources.num_envs_per_env_runner": 2,
    "algorithm.hidden": 8,
    "algorithm.diffusion_steps": 2,
    "algorithm.train_batch_size": 40,
    "algorithm.minibatch_size": 40,
    "algorithm.num_epochs": 1,
    "evaluation.episodes": 2,
    "stop": {"iterations": 3},
}


def write_study(folder: Path, mlp_set: dict | None = None, **extra) -> Path:
    study = {
        "name": "tiny",
        "seeds": 2,
        "set": TINY,
        "variants": {
            "diffusion": {"config": "mec_ppo.yaml"},
            "mlp": {"config": "mec_ppo.yaml", "set": mlp_set or {"algorithm.module": "mlp"}},
        },
        **extra,
    }
    (folder / "mec_ppo.yaml").write_text((CONFIGS / "mec_ppo.yaml").read_text())
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def test_study_trains_every_variant_and_seed_and_reports(store, tmp_path, capsys, monkeypatch):
    path = write_study(tmp_path, reference="mlp", threshold=0.9)
    code, out, err = run_cli(capsys, monkeypatch, "study", str(path), "--out", str(tmp_path / "out"))
    assert code == 0, err
    result = json.loads((tmp_path / "out" / "study.json").read_text())
    assert (tmp_path / "out" / "learning_curves.png").stat().st_size > 0
    assert "| diffusion |" in (tmp_path / "out" / "report.md").read_text()
    client = mlflow.MlflowClient()
    for name, row in result["variants"].items():
        runs = [client.get_run(r) for r in row["runs"]]
        assert [r.info.run_name for r in runs] == [f"{name}-seed0", f"{name}-seed1"]
        assert [r.data.params["seed"] for r in runs] == ["0", "1"]
        scores = [r.data.metrics["eval.trained.mean_delay"] for r in runs]
        assert row["scores"] == pytest.approx(scores)
        assert row["score_mean"] == pytest.approx(np.mean(scores)) and 0 <= row["score_ci95"] < np.inf
        # lower delay is better: the best heuristic has the smallest delay
        assert row["vs_best_heuristic"] == pytest.approx(row["score_mean"] / min(result["heuristics"].values()))
        assert 0 <= row["reached"] <= 2 and len(row["steps_to_target"]) == 2
    assert set(result["heuristics"]) == {"least_loaded", "smcoedge", "myopic", "anticipating_myopic"}
    # the target is the reference's final delay (mean of its last iterations) / 0.9
    finals = []
    for run_id in result["variants"]["mlp"]["runs"]:
        history = sorted(client.get_metric_history(run_id, "episode_mean_delay"), key=lambda p: p.step)
        finals.append(np.mean([p.value for p in history[-3:]]))
    assert result["target"] == pytest.approx(np.mean(finals) / 0.9)
    assert "diffusion" in out and "mlp" in out and result["seeds_done"] == 2
    # every run carries the code version that trained it, and the report the robust statistics
    assert all(r.data.tags["aigcsched.code_version"] == code_version() for r in runs)
    # a study run again (e.g. after an interruption) restores Tune's state: no trial trains again
    again = run_study(path, tmp_path / "out", seeds=2)
    assert {n: r["runs"] for n, r in again["variants"].items()} == {n: r["runs"] for n, r in result["variants"].items()}
    trained = mlflow.search_runs(experiment_names=["study-tiny"], filter_string="tags.mlflow.runName LIKE '%-seed%'")
    assert len(trained) == 4
    # run against another tracking store, where its finished trials' runs are not: refused before Ray starts
    store_uri = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        with pytest.raises(ConfigError, match=r"holds a run tracked in .*, not in .*other\.db"):
            run_study(path, tmp_path / "out", seeds=2)
    finally:
        mlflow.set_tracking_uri(store_uri)


def test_a_new_tracking_store_gets_its_tables_in_a_task_on_the_drivers_node(store, tmp_path):
    import sqlite3

    import ray

    from aigcsched.platform.tracking import open_store_meanwhile

    db = tmp_path / "new.db"
    ray.get(open_store_meanwhile(f"sqlite:///{db}"))
    tables = {row[0] for row in sqlite3.connect(db).execute("select name from sqlite_master where type = 'table'")}
    assert {"experiments", "runs", "alembic_version"} <= tables


def test_steps_to_reach_uses_the_smoothed_curve():
    x = np.array([10.0, 20, 30, 40, 50])
    y = np.array([0.0, 3, 0, 3, 3])  # 3-point means: 1, 2, 2 (ending at 30, 40, 50)
    assert steps_to_reach(x, y, 2.0, 1.0) == 40.0
    assert np.isnan(steps_to_reach(x, y, 2.5, 1.0))  # single points reach 3, the smoothed curve never 2.5
    assert steps_to_reach(x, -y, -1.0, -1.0) == 30.0  # lower is better: the mean falls to -1 at 30


def test_bad_studies_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="reference 'nope' is not a variant"):
        load_study(write_study(tmp_path, reference="nope"))
    with pytest.raises(ConfigError, match="variant mlp: .*algorithm.module"):
        load_study(write_study(tmp_path, mlp_set={"algorithm.module": "gpt"}))
    with pytest.raises(ConfigError, match="unknown key"):
        load_study(write_study(tmp_path, colour="red"))
    with pytest.raises(ConfigError, match="study file not found"):
        load_study(tmp_path / "missing.yaml")


def test_curve_band_stays_within_the_seeds_and_diverged_runs_get_a_log_axis():
    # four seeds near 2 s and one diverged to 190 s: the t band would dip below zero
    ys = np.array([[2.0, 1.9], [2.1, 2.0], [1.9, 2.2], [2.0, 1.8], [190.0, 180.0]])
    mean, low, high = curve_band(ys)
    assert mean == pytest.approx([39.6, 37.58])
    assert np.all(low >= ys.min(axis=0)) and np.all(high <= ys.max(axis=0))
    assert low[0] == pytest.approx(1.9) and high[0] < 190.0  # the clipped side, the t side
    assert wants_log_scale(ys.ravel())
    assert not wants_log_scale(ys[:4].ravel()) and not wants_log_scale(np.array([-5.0, 500.0]))
    assert curve_band(ys[:1])[1] == pytest.approx(ys[0])


def test_mean_ci_is_the_95_percent_t_interval():
    # t(0.975, 2 dof) = 4.3027; sd of 1, 2, 3 is 1
    assert mean_ci([1.0, 2.0, 3.0]) == pytest.approx((2.0, 4.3027 / np.sqrt(3)), rel=1e-4)
    mean, half = mean_ci([5.0])
    assert mean == 5.0 and np.isnan(half)


def test_a_section_set_by_one_variant_does_not_leak_into_the_next(tmp_path):
    # the study sets `stop` as a section; variant a adds stop.minutes, which b must not inherit
    path = write_study(tmp_path, mlp_set={"algorithm.module": "mlp"})
    raw = yaml.safe_load(path.read_text())
    raw["variants"]["diffusion"]["set"] = {"stop.minutes": 1}
    path.write_text(yaml.safe_dump(raw))
    _, experiments = load_study(path)
    assert experiments["diffusion"].stop.minutes == 1
    assert experiments["mlp"].stop.minutes is None and experiments["mlp"].stop.iterations == 3


def test_tune_samples_configs_writes_the_best_and_registers_its_run(store, tmp_path, capsys, monkeypatch):
    (tmp_path / "mec_ppo.yaml").write_text((CONFIGS / "mec_ppo.yaml").read_text())
    sweep = {
        "name": "tiny",
        "config": "mec_ppo.yaml",
        "set": {**TINY, "tracking.model_name": "sweep-tiny"},
        "trials": 2,
        "search": {"algorithm.lr": {"loguniform": [1.0e-4, 1.0e-2]}, "algorithm.hidden": {"choice": [8, 16]}},
        "early_stopping": {"grace": 1, "reduction_factor": 2},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    code, out, err = run_cli(capsys, monkeypatch, "tune", str(path), "--out", str(tmp_path / "sweep"))
    assert code == 0, err
    summary = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    assert len(summary["trials"]) == 2 and summary["trials"][0] == summary["best"]
    client = mlflow.MlflowClient()
    for row in summary["trials"]:
        assert 1e-4 <= row["params"]["algorithm.lr"] <= 1e-2 and row["params"]["algorithm.hidden"] in (8, 16)
        run = client.get_run(row["run_id"])
        assert run.data.params["algorithm.lr"] == str(row["params"]["algorithm.lr"])
        # ASHA may stop the worse trial after its first iteration: its run is closed as such
        assert (row["status"], run.info.status) in {("finished", "FINISHED"), ("stopped early", "KILLED")}
    best = summary["best"]
    assert best["score"] == pytest.approx(client.get_run(best["run_id"]).data.metrics["eval.trained.mean_delay"])
    written = load_experiment(tmp_path / "sweep" / "best.yaml")
    assert (
        written.algorithm.lr == best["params"]["algorithm.lr"]
        and written.algorithm.hidden == best["params"]["algorithm.hidden"]
    )
    assert written.tracking.register_model and written.stop.iterations == 3
    (version,) = client.search_model_versions("name='sweep-tiny'")
    assert version.run_id == best["run_id"] and summary["registered"]["version"] == str(version.version)


def test_bad_sweeps_are_one_line_errors(tmp_path):
    (tmp_path / "mec_ppo.yaml").write_text((CONFIGS / "mec_ppo.yaml").read_text())

    def sweep(**search):
        path = tmp_path / "sweep.yaml"
        path.write_text(yaml.safe_dump({"name": "bad", "config": "mec_ppo.yaml", "search": search}))
        return path

    with pytest.raises(ConfigError, match="algorithm.lr: loguniform takes \\[low, high\\] with low < high"):
        load_sweep(sweep(**{"algorithm.lr": {"loguniform": [0.1, 0.01]}}))
    with pytest.raises(ConfigError, match="search algorithm.colour=1: .*unknown key"):
        load_sweep(sweep(**{"algorithm.colour": {"choice": [1, 2]}}))
    with pytest.raises(ConfigError, match="resources are fixed"):
        load_sweep(sweep(**{"resources.num_env_runners": {"int": [0, 2]}}))

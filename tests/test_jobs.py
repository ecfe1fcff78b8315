"""What `aigcsched submit` sends with a job (no cluster needed)."""

from pathlib import Path

import yaml

from aigcsched.platform.config import load_experiment
from aigcsched.platform.jobs import EXPERIMENT_FILE, runtime_env


def test_submitted_experiments_carry_absolute_data_paths(tmp_path):
    config = Path(__file__).resolve().parents[1] / "configs" / "datacenter_ppo.yaml"
    exp = load_experiment(config, {"env.config.data_dir": "../traces"})
    env = runtime_env(exp, tmp_path, "sqlite:////abs/mlflow.db")
    sent = yaml.safe_load((tmp_path / EXPERIMENT_FILE).read_text())
    assert sent["env"]["config"]["data_dir"] == str((Path.cwd() / "../traces").resolve())
    assert env["env_vars"]["MLFLOW_TRACKING_URI"] == "sqlite:////abs/mlflow.db"
    edge = load_experiment(Path(config).with_name("edge_ppo.yaml"))
    runtime_env(edge, tmp_path, "sqlite:////abs/mlflow.db")  # no data_dir: unchanged
    assert "data_dir" not in yaml.safe_load((tmp_path / EXPERIMENT_FILE).read_text())["env"]["config"]


def test_embedded_traces_travel_as_the_keyword_not_a_path(tmp_path):
    config = Path(__file__).resolve().parents[1] / "configs" / "datacenter_ppo.yaml"
    exp = load_experiment(config, {"env.config.data_dir": "embedded"})
    runtime_env(exp, tmp_path, "sqlite:////abs/mlflow.db")
    assert yaml.safe_load((tmp_path / EXPERIMENT_FILE).read_text())["env"]["config"]["data_dir"] == "embedded"


def test_the_job_is_as_verbose_as_the_submitting_command():
    from aigcsched.platform.jobs import entrypoint

    assert entrypoint() == f"python -m aigcsched.cli train {EXPERIMENT_FILE}"
    assert entrypoint(verbose=True) == f"python -m aigcsched.cli --verbose train {EXPERIMENT_FILE}"


def test_a_submitted_study_carries_its_configs_and_the_overrides(tmp_path):
    from aigcsched.platform.jobs import file_kind, write_study_job
    from aigcsched.platform.study import load_study

    configs = Path(__file__).resolve().parents[1] / "configs"
    study = configs / "studies" / "edge_actors.yaml"
    overrides = {"stop.env_steps": 4096}
    job = tmp_path / "job"
    job.mkdir()
    name = write_study_job(study, overrides, job)
    assert file_kind(job / name) == "study" and file_kind(configs / "edge_ppo.yaml") == "train"
    _, here = load_study(study, overrides)
    _, there = load_study(job / name)  # what the job reads, from its own folder only
    assert {k: e.model_dump() for k, e in there.items()} == {k: e.model_dump() for k, e in here.items()}
    assert all(e.stop.env_steps == 4096 for e in there.values())

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

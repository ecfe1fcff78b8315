from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import validate_config

CLUSTER_YAML = Path(__file__).resolve().parents[1] / "cluster.yaml"


def load():
    return yaml.safe_load(CLUSTER_YAML.read_text())


def test_cluster_yaml_passes_rays_cluster_schema():
    validate_config(load())  # Ray's own schema (offline) plus its node-type checks


def test_schema_check_is_real():
    bad = load()
    bad["available_node_types"]["head"]["colour"] = "blue"
    with pytest.raises(jsonschema.ValidationError):
        validate_config(bad)


def test_cluster_yaml_keeps_ports_private_and_auth_on_with_one_token_on_every_node():
    config = load()
    rules = config["provider"]["security_group"]["IpPermissions"]
    assert [(r["FromPort"], r["ToPort"]) for r in rules] == [(22, 22)]  # only SSH from outside
    assert all(ip["CidrIp"] != "0.0.0.0/0" for r in rules for ip in r["IpRanges"])
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start and "RAY_AUTH_MODE=token" in head_start
    assert all("RAY_AUTH_MODE=token" in c for c in config["worker_start_ray_commands"] if "ray start" in c)
    # `ray start` with RAY_AUTH_MODE=token makes no token: every node gets the operator's
    assert config["file_mounts"]["/home/ubuntu/.ray/auth_token"] == "~/.ray/auth_token"
    mlflow = " ".join(config["head_setup_commands"])
    assert "mlflow server --host 127.0.0.1" in mlflow and "--backend-store-uri" in mlflow
    assert any("pip install" in c and "-e ~/aigcsched" in c for c in config["setup_commands"])
    assert (
        config["available_node_types"]["gpu_worker"]["max_workers"]
        > config["available_node_types"]["gpu_worker"]["min_workers"]
    )

"""Trained policies as artifacts, MLflow pyfunc models and registry entries.

A policy artifact is a folder: `module/` (the RLModule's own checkpoint, loaded with
`RLModule.from_checkpoint`, no Algorithm needed) and `spec.json` (the scenario it was trained
for). The registered pyfunc wraps that folder: observations in, (server, steps) out.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from aigcsched.envs import EdgeConfig, SchedulingState, observation_from_state
from aigcsched.platform.config import ConfigError

DEFAULT_MODEL_NAME = "aigcsched-edge"
CHAMPION = "champion"
SPEC_FILE = "spec.json"
MODULE_DIR = "module"


class ModelNotFoundError(ConfigError):
    """The model URI, version or alias does not exist."""


class ModulePolicy:
    """A trained RLModule as a policy: (observations, state) -> actions (server, steps - 1).

    `cfg` is the scenario it was trained for; `info` names where it came from."""

    def __init__(self, module: Any, cfg: EdgeConfig, info: dict | None = None):
        self.module, self.cfg = module, cfg
        self.info = {
            "name": None,
            "version": None,
            "alias": None,
            "run_id": None,
            "uri": None,
            **(info or {}),
        }

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Most likely action for a batch of observations (in the trained scenario's layout)."""
        import torch
        from ray.rllib.core.columns import Columns

        with torch.no_grad():
            out = self.module.forward_inference({Columns.OBS: torch.as_tensor(np.asarray(obs, dtype=np.float32))})
            dist = self.module.get_inference_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
            return np.asarray(dist.to_deterministic().sample(), dtype=np.int64)

    def __call__(self, obs: np.ndarray | None, state: SchedulingState) -> np.ndarray:
        batched = np.ndim(state.due_in) > 0
        actions = self.act(np.atleast_2d(observation_from_state(state, self.cfg)))
        return actions if batched else actions[0]

    def check_fits(self, scenario: EdgeConfig) -> None:
        """Raise ConfigError if the scenario's shape differs from the one the model takes."""
        for key in ("n_servers", "max_steps", "penalty_probe_s"):
            have, need = getattr(scenario, key), getattr(self.cfg, key)
            if have != need:
                raise ConfigError(f"the model {self.describe()} takes {key}={need}, the scenario has {key}={have}")

    def describe(self) -> str:
        i = self.info
        return f"{i['uri']} (version {i['version']})" if i["version"] else str(i["uri"])


def save_policy(module: Any, cfg: EdgeConfig, path: str | Path) -> Path:
    """Write a policy artifact folder (module checkpoint + spec)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    module.save_to_path(str((path / MODULE_DIR).resolve()))
    (path / SPEC_FILE).write_text(json.dumps({"env": cfg.model_dump(mode="json")}, indent=2))
    return path


def load_policy_dir(path: str | Path, info: dict | None = None) -> ModulePolicy:
    from ray.rllib.core.rl_module.rl_module import RLModule

    path = Path(path)
    spec_file, module_dir = path / SPEC_FILE, path / MODULE_DIR
    if not spec_file.is_file() or not module_dir.is_dir():
        raise ModelNotFoundError(f"{path} is not a policy folder (needs {SPEC_FILE} and {MODULE_DIR}/)")
    cfg = EdgeConfig(**json.loads(spec_file.read_text())["env"])
    module = RLModule.from_checkpoint(str(module_dir.resolve()))
    module.eval()
    return ModulePolicy(module, cfg, info)


class EdgePolicyModel(mlflow.pyfunc.PythonModel):
    """Pyfunc: a float32 matrix of observations in, int64 columns (server, steps) out."""

    def load_context(self, context):
        self.policy = load_policy_dir(context.artifacts["policy"])

    def predict(self, context, model_input, params=None):
        obs = np.asarray(getattr(model_input, "values", model_input), dtype=np.float32)
        actions = self.policy.act(np.atleast_2d(obs))
        return actions + np.array([0, 1])  # steps are 1-based outside the env


def log_policy_model(policy_dir: str | Path, cfg: EdgeConfig, model_name: str | None) -> Any:
    """Log the pyfunc to the active run (and register it under `model_name`); returns ModelInfo."""
    example = np.zeros((2, cfg.obs_size), dtype=np.float32)
    signature = infer_signature(example, np.zeros((2, 2), dtype=np.int64))
    return mlflow.pyfunc.log_model(
        name="policy",
        python_model=EdgePolicyModel(),
        artifacts={"policy": str(policy_dir)},
        signature=signature,
        input_example=example,
        pip_requirements=["aigcsched", "ray[rllib]", "torch", "numpy"],
        registered_model_name=model_name,
    )


_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


def resolve_model_version(uri: str) -> Any:
    """The registry's ModelVersion for models:/NAME@ALIAS or models:/NAME/VERSION."""
    m = _URI.match(uri)
    if not m:
        raise ConfigError(f"expected models:/NAME@ALIAS or models:/NAME/VERSION, got {uri!r}")
    client = mlflow.MlflowClient()
    try:
        if m["alias"]:
            return client.get_model_version_by_alias(m["name"], m["alias"])
        return client.get_model_version(m["name"], m["version"])
    except MlflowException:
        pass
    store = mlflow.get_tracking_uri()
    if m["alias"] and client.search_model_versions(f"name='{m['name']}'", max_results=1):
        raise ModelNotFoundError(
            f"no model at {uri}: {m['name']!r} has versions but none with alias {m['alias']!r} "
            f"(tracking store {store}); set one with: aigcsched models promote {m['name']} VERSION"
        )
    raise ModelNotFoundError(f"no registered model at {uri} (tracking store {store})")


def load_policy(uri: str) -> ModulePolicy:
    """A registered policy (models:/NAME@ALIAS or models:/NAME/VERSION) ready to act."""
    mv = resolve_model_version(uri)
    m = _URI.match(uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{mv.name}/{mv.version}")
    policy = pyfunc.unwrap_python_model().policy
    policy.info = {
        "name": mv.name,
        "version": str(mv.version),
        "alias": m["alias"],
        "run_id": mv.run_id,
        "uri": uri,
    }
    return policy


def load_checkpoint_policy(path: str) -> ModulePolicy:
    """A policy folder, or a training checkpoint (which holds one under `policy/`)."""
    p = Path(path)
    if not p.exists():
        raise ModelNotFoundError(f"checkpoint not found: {p}")
    folder = p / "policy" if (p / "policy" / SPEC_FILE).is_file() else p
    return load_policy_dir(folder, {"uri": f"checkpoint:{p}"})


def champion_version(name: str) -> Any | None:
    try:
        return mlflow.MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def promote(name: str, version: str | int) -> None:
    client = mlflow.MlflowClient()
    try:
        client.get_model_version(name, str(version))
    except MlflowException:
        raise ModelNotFoundError(f"model {name!r} has no version {version}") from None
    client.set_registered_model_alias(name, CHAMPION, str(version))

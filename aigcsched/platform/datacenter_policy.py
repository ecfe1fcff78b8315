"""Trained `datacenter` policies: per-provider (or shared) RLModules as one policy, their artifact
folder, and the MLflow pyfunc that registers them.

A policy folder holds `spec.json` (the scenario, whether the policy is shared, agent -> module)
and one RLModule checkpoint per module id under `modules/`. The pyfunc takes a float32 array of
shape (n, K, obs_size) (every provider's observation, in agent order) and returns int64 actions
of shape (n, K, 5), in the env's action layout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.models import infer_signature

from aigcsched.envs import DataCenterConfig, DataCenterState
from aigcsched.platform.config import ConfigError

SPEC_FILE = "spec.json"
MODULES_DIR = "modules"


class MultiAgentPolicy:
    """RLModules by module id plus agent -> module id, as a datacenter policy:
    (observations by agent, state) -> most likely actions by agent."""

    def __init__(self, modules: dict[str, Any], agent_module: dict[str, str], cfg: DataCenterConfig, info=None):
        self.modules, self.agent_module, self.cfg = modules, agent_module, cfg
        self.info = {"uri": None, **(info or {})}

    def act(self, obs: np.ndarray) -> np.ndarray:
        """(n, K, obs_size) observations -> (n, K, 5) actions; each module sees its agents' rows."""
        import torch
        from ray.rllib.core.columns import Columns

        obs = np.asarray(obs, dtype=np.float32)
        agents = list(self.agent_module)
        out = np.zeros((*obs.shape[:2], 5), dtype=np.int64)
        for module_id, module in self.modules.items():
            cols = [i for i, a in enumerate(agents) if self.agent_module[a] == module_id]
            batch = obs[:, cols].reshape(-1, obs.shape[-1])
            with torch.no_grad():
                logits = module.forward_inference({Columns.OBS: torch.as_tensor(batch)})[Columns.ACTION_DIST_INPUTS]
                dist = module.get_inference_action_dist_cls().from_logits(logits)
                actions = np.asarray(dist.to_deterministic().sample(), dtype=np.int64)
            out[:, cols] = actions.reshape(obs.shape[0], len(cols), -1)
        return out

    def __call__(self, obs: dict, state: DataCenterState | None = None) -> dict:
        agents = list(self.agent_module)
        actions = self.act(np.stack([obs[a] for a in agents])[None])[0]
        return dict(zip(agents, actions, strict=True))

    def check_fits(self, cfg: DataCenterConfig) -> None:
        """Raise ConfigError if the scenario's observations or actions differ from the trained ones."""
        for key in ("n_asps", "obs_size", "step_levels", "keep_levels", "power_cap_levels"):
            have, need = getattr(cfg, key), getattr(self.cfg, key)
            if have != need:
                raise ConfigError(f"the policy {self.info['uri']} takes {key}={need}, the scenario has {key}={have}")


def save_policy(policy: MultiAgentPolicy, path: str | Path) -> Path:
    path = Path(path)
    for module_id, module in policy.modules.items():
        module.save_to_path(str((path / MODULES_DIR / module_id).resolve()))
    spec = {"env": policy.cfg.model_dump(mode="json"), "agent_module": policy.agent_module}
    (path / SPEC_FILE).write_text(json.dumps(spec, indent=2))
    return path


def load_policy_dir(path: str | Path, info: dict | None = None) -> MultiAgentPolicy:
    """A policy folder, or a training checkpoint holding one under `policy/`."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    p = Path(path)
    folder = p / "policy" if (p / "policy" / SPEC_FILE).is_file() else p
    if not p.exists():
        raise ConfigError(f"checkpoint not found: {p}")
    if not (folder / SPEC_FILE).is_file():
        raise ConfigError(f"{p} is not a datacenter policy folder or checkpoint (no {SPEC_FILE})")
    spec = json.loads((folder / SPEC_FILE).read_text())
    modules = {}
    for module_id in dict.fromkeys(spec["agent_module"].values()):
        modules[module_id] = RLModule.from_checkpoint(str((folder / MODULES_DIR / module_id).resolve()))
        modules[module_id].eval()
    return MultiAgentPolicy(modules, spec["agent_module"], DataCenterConfig(**spec["env"]), info or {"uri": str(p)})


def load_registered(uri: str) -> MultiAgentPolicy:
    """A registered datacenter policy (models:/NAME@ALIAS or models:/NAME/VERSION)."""
    from aigcsched.platform.registry import resolve_model_version

    mv = resolve_model_version(uri)
    policy = mlflow.pyfunc.load_model(f"models:/{mv.name}/{mv.version}").unwrap_python_model().policy
    if not isinstance(policy, MultiAgentPolicy):
        raise ConfigError(f"{uri} is not a datacenter policy")
    policy.info = {"uri": uri, "name": mv.name, "version": str(mv.version), "run_id": mv.run_id}
    return policy


class DataCenterPolicyModel(mlflow.pyfunc.PythonModel):
    """Pyfunc: (n, K, obs_size) float32 observations in, (n, K, 5) int64 actions out."""

    def load_context(self, context):
        self.policy = load_policy_dir(context.artifacts["policy"])

    def predict(self, context, model_input, params=None):
        return self.policy.act(np.asarray(model_input, dtype=np.float32))


def log_policy_model(policy_dir: str | Path, cfg: DataCenterConfig, model_name: str | None) -> Any:
    """Log the pyfunc to the active run (and register it under `model_name`); returns ModelInfo."""
    example = np.zeros((2, cfg.n_asps, cfg.obs_size), dtype=np.float32)
    signature = infer_signature(example, np.zeros((2, cfg.n_asps, 5), dtype=np.int64))
    return mlflow.pyfunc.log_model(
        name="policy",
        python_model=DataCenterPolicyModel(),
        artifacts={"policy": str(policy_dir)},
        signature=signature,
        input_example=example,
        pip_requirements=["aigcsched", "ray[rllib]", "torch", "numpy"],
        registered_model_name=model_name,
    )

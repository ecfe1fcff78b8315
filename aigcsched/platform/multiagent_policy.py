"""Trained multi-agent policies (`datacenter`, `mec`): per-agent (or shared) RLModules as one
policy, their artifact folder, and the MLflow pyfunc that registers them.

A policy folder holds `spec.json` (the problem, its scenario, agent -> module id) and one
RLModule checkpoint per module id under `modules/`. The pyfunc takes a float32 array of shape
(n, K, obs_size) (every agent's observation, in agent order) and returns int64 actions of shape
(n, K, *action_shape) in the env's action layout: (n, K, 5) on datacenter, (n, K) on mec's
subset action.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.models import infer_signature
from pydantic import BaseModel

from aigcsched.envs import PROBLEMS, DataCenterConfig, MECConfig
from aigcsched.platform.config import ConfigError

SPEC_FILE = "spec.json"
ACTION_MODES = ("greedy", "sampled")
MODULES_DIR = "modules"
# The scenario fields that shape observations and actions: a policy fits a scenario that agrees on them.
FIT_KEYS = {
    DataCenterConfig: ("n_asps", "obs_size", "step_levels", "keep_levels", "power_cap_levels"),
    MECConfig: ("n_servers", "action_mode", "max_split", "split_rules", "weight_levels"),
}


def problem_of(cfg: BaseModel) -> str:
    return next(name for name, (_, config_class) in PROBLEMS.items() if isinstance(cfg, config_class))


def spaces_of(cfg: BaseModel) -> tuple[int, int, tuple[int, ...]]:
    """Agents, observation size and the shape of one agent's action, for a scenario."""
    if isinstance(cfg, DataCenterConfig):
        return cfg.n_asps, cfg.obs_size, (5,)
    from aigcsched.envs.mec import MECEnv

    env = MECEnv(cfg)
    return cfg.n_servers, env.observation_space("bs_0").shape[0], env.action_space("bs_0").shape


class MultiAgentPolicy:
    """RLModules by module id plus agent -> module id, as a policy: (observations by agent, state)
    -> actions by agent, the most likely ones (`actions="greedy"`) or drawn from the policy's
    distribution (`"sampled"`, reproducible from `seed`)."""

    def __init__(
        self,
        modules: dict[str, Any],
        agent_module: dict[str, str],
        cfg: BaseModel,
        info=None,
        actions: str = "greedy",
        seed: int = 0,
    ):
        import torch

        if actions not in ACTION_MODES:
            raise ConfigError(f"actions must be one of {', '.join(ACTION_MODES)}, got {actions!r}")
        self.modules, self.agent_module, self.cfg, self.actions, self.seed = modules, agent_module, cfg, actions, seed
        self.info = {"uri": None, **(info or {})}
        self._rng = torch.Generator().manual_seed(seed)

    def _act(self, module, obs: np.ndarray) -> np.ndarray:
        import torch
        from ray.rllib.core.columns import Columns

        with torch.no_grad():
            out = module.forward_inference({Columns.OBS: torch.as_tensor(obs)})
            if Columns.ACTION_DIST_INPUTS not in out:  # DQN: argmax Q is its policy, with no distribution
                return np.asarray(out[Columns.ACTIONS], dtype=np.int64)
            logits = out[Columns.ACTION_DIST_INPUTS]
            if self.actions == "sampled":
                # Gumbel-max: the argmax of logits + Gumbel noise is a draw from each categorical
                # branch, and the generator makes the draws repeatable.
                u = torch.rand(logits.shape, generator=self._rng).clamp_(1e-12, 1.0 - 1e-7)
                logits = logits - torch.log(-torch.log(u))
            dist = module.get_inference_action_dist_cls().from_logits(logits)
            return np.asarray(dist.to_deterministic().sample(), dtype=np.int64)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """(n, K, obs_size) observations -> (n, K, *action_shape) actions; each module sees its agents' rows."""
        obs = np.asarray(obs, dtype=np.float32)
        agents = list(self.agent_module)
        out = None
        for module_id, module in self.modules.items():
            cols = [i for i, a in enumerate(agents) if self.agent_module[a] == module_id]
            actions = self._act(module, obs[:, cols].reshape(-1, obs.shape[-1]))
            if out is None:
                out = np.zeros((*obs.shape[:2], *actions.shape[1:]), dtype=np.int64)
            out[:, cols] = actions.reshape(obs.shape[0], len(cols), *actions.shape[1:])
        return out

    def act_agent(self, agent: str, obs: np.ndarray) -> np.ndarray:
        """One agent's action for one observation."""
        module = self.modules[self.agent_module[agent]]
        return self._act(module, np.asarray(obs, dtype=np.float32)[None])[0]

    def __call__(self, obs: dict, state: Any = None) -> dict:
        agents = list(self.agent_module)
        actions = self.act(np.stack([obs[a] for a in agents])[None])[0]
        return dict(zip(agents, actions, strict=True))

    def check_fits(self, cfg: BaseModel) -> None:
        """Raise ConfigError if the scenario's observations or actions differ from the trained ones."""
        if type(cfg) is not type(self.cfg):
            raise ConfigError(f"the policy {self.info['uri']} is a {problem_of(self.cfg)} policy")
        for key in FIT_KEYS[type(cfg)]:
            have, need = getattr(cfg, key), getattr(self.cfg, key)
            if have != need:
                raise ConfigError(f"the policy {self.info['uri']} takes {key}={need}, the scenario has {key}={have}")


def save_policy(policy: MultiAgentPolicy, path: str | Path) -> Path:
    path = Path(path)
    for module_id, module in policy.modules.items():
        module.save_to_path(str((path / MODULES_DIR / module_id).resolve()))
    spec = {
        "problem": problem_of(policy.cfg),
        "env": policy.cfg.model_dump(mode="json"),
        "agent_module": policy.agent_module,
        "actions": policy.actions,
        "seed": policy.seed,  # a loaded policy draws what the saved one drew from the start
    }
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
        raise ConfigError(f"{p} is not a multi-agent policy folder or checkpoint (no {SPEC_FILE})")
    spec = json.loads((folder / SPEC_FILE).read_text())
    modules = {}
    for module_id in dict.fromkeys(spec["agent_module"].values()):
        modules[module_id] = RLModule.from_checkpoint(str((folder / MODULES_DIR / module_id).resolve()))
        modules[module_id].eval()
    cfg = PROBLEMS[spec.get("problem", "datacenter")][1](**spec["env"])
    actions, seed = spec.get("actions", "greedy"), spec.get("seed", 0)
    return MultiAgentPolicy(modules, spec["agent_module"], cfg, info or {"uri": str(p)}, actions, seed)


def load_registered(uri: str) -> MultiAgentPolicy:
    """A registered multi-agent policy (models:/NAME@ALIAS or models:/NAME/VERSION)."""
    from aigcsched.platform.registry import resolve_model_version

    mv = resolve_model_version(uri)
    policy = mlflow.pyfunc.load_model(f"models:/{mv.name}/{mv.version}").unwrap_python_model().policy
    if not isinstance(policy, MultiAgentPolicy):
        raise ConfigError(f"{uri} is not a multi-agent policy")
    policy.info = {"uri": uri, "name": mv.name, "version": str(mv.version), "run_id": mv.run_id}
    return policy


class MultiAgentPolicyModel(mlflow.pyfunc.PythonModel):
    """Pyfunc: (n, K, obs_size) float32 observations in, (n, K, *action_shape) int64 actions out."""

    def load_context(self, context):
        self.policy = load_policy_dir(context.artifacts["policy"])

    def predict(self, context, model_input, params=None):
        return self.policy.act(np.asarray(model_input, dtype=np.float32))


def log_policy_model(policy_dir: str | Path, cfg: BaseModel, model_name: str | None) -> Any:
    """Log the pyfunc to the active run (and register it under `model_name`); returns ModelInfo."""
    n_agents, obs_size, action_shape = spaces_of(cfg)
    example = np.zeros((2, n_agents, obs_size), dtype=np.float32)
    signature = infer_signature(example, np.zeros((2, n_agents, *action_shape), dtype=np.int64))
    return mlflow.pyfunc.log_model(
        name="policy",
        python_model=MultiAgentPolicyModel(),
        artifacts={"policy": str(policy_dir)},
        signature=signature,
        input_example=example,
        pip_requirements=["aigcsched", "ray[rllib]", "torch", "numpy"],
        registered_model_name=model_name,
    )

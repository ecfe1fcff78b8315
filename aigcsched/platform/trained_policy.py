"""A trained policy of any problem, and its artifact folder.

A policy is one RLModule per module id and a map agent -> module id (one agent on `edge`; one per
station or provider on `mec` and `datacenter`, or one module shared by all). Its folder holds
`spec.json` (the problem, its scenario, agent -> module id, how it acts) and one RLModule
checkpoint per module id under `modules/`, loadable without an Algorithm.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from aigcsched.platform.errors import ConfigError
from aigcsched.platform.problems import get_problem, problem_of

SPEC_FILE = "spec.json"
MODULES_DIR = "modules"
ACTION_MODES = ("greedy", "sampled")


class ModelNotFoundError(ConfigError):
    """The model URI, version, alias or folder does not exist."""


class TrainedPolicy:
    """RLModules by module id plus agent -> module id, acting on every agent's observation: the most
    likely action (`actions="greedy"`) or a draw from the policy's distribution (`"sampled"`,
    reproducible from `seed`). `cfg` is the scenario it was trained for; `info` says where it came from."""

    def __init__(
        self,
        modules: dict[str, Any],
        agent_module: dict[str, str],
        cfg: BaseModel,
        info: dict | None = None,
        actions: str = "greedy",
        seed: int = 0,
    ):
        import torch

        if actions not in ACTION_MODES:
            raise ConfigError(f"actions must be one of {', '.join(ACTION_MODES)}, got {actions!r}")
        self.modules, self.agent_module, self.cfg = modules, agent_module, cfg
        self.actions, self.seed = actions, seed
        self.problem = problem_of(cfg)
        self.info = {"name": None, "version": None, "alias": None, "run_id": None, "uri": None, **(info or {})}
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
        """(n, K, obs_size) observations -> (n, K, *action_shape) env actions; each module sees its agents' rows."""
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
        """Observations by agent -> actions by agent."""
        agents = list(self.agent_module)
        actions = self.act(np.stack([obs[a] for a in agents])[None])[0]
        return dict(zip(agents, actions, strict=True))

    def check_fits(self, cfg: BaseModel) -> None:
        """Raise ConfigError if the scenario is another problem's, or its observations or actions
        differ from the trained ones."""
        other = problem_of(cfg)
        if other is not self.problem:
            raise ConfigError(f"the policy {self.describe()} is one of {self.problem.name}, not of {other.name}")
        for key in self.problem.fit_keys:
            have, need = getattr(cfg, key), getattr(self.cfg, key)
            if have != need:
                raise ConfigError(f"the policy {self.describe()} takes {key}={need}, the scenario has {key}={have}")

    def describe(self) -> str:
        i = self.info
        return f"{i['uri']} (version {i['version']})" if i["version"] else str(i["uri"])


def save_policy(policy: TrainedPolicy, path: str | Path) -> Path:
    """Write the policy's artifact folder."""
    path = Path(path)
    for module_id, module in policy.modules.items():
        module.save_to_path(str((path / MODULES_DIR / module_id).resolve()))
    spec = {
        "problem": policy.problem.name,
        "env": policy.cfg.model_dump(mode="json"),
        "agent_module": policy.agent_module,
        "actions": policy.actions,
        "seed": policy.seed,  # a loaded policy draws what the saved one drew from the start
    }
    (path / SPEC_FILE).write_text(json.dumps(spec, indent=2))
    return path


def load_policy_dir(path: str | Path, info: dict | None = None) -> TrainedPolicy:
    """A policy folder, or a training checkpoint holding one under `policy/`."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    p = Path(path)
    if not p.exists():
        raise ModelNotFoundError(f"checkpoint not found: {p}")
    folder = p / "policy" if (p / "policy" / SPEC_FILE).is_file() else p
    if not (folder / SPEC_FILE).is_file():
        raise ModelNotFoundError(f"{p} is not a policy folder or training checkpoint (no {SPEC_FILE})")
    spec = json.loads((folder / SPEC_FILE).read_text())
    problem = get_problem(spec["problem"])
    modules = {}
    for module_id in dict.fromkeys(spec["agent_module"].values()):
        modules[module_id] = RLModule.from_checkpoint(str((folder / MODULES_DIR / module_id).resolve()))
        modules[module_id].eval()
    cfg = problem.config_class(**spec["env"])
    return TrainedPolicy(
        modules, spec["agent_module"], cfg, info or {"uri": str(p)}, spec.get("actions", "greedy"), spec.get("seed", 0)
    )

"""Turn a `--policy` name into a policy callable (observations, state) -> actions."""

from __future__ import annotations

from pydantic import BaseModel

from aigcsched.algorithms.datacenter_heuristics import DATACENTER_HEURISTICS, make_datacenter_heuristic
from aigcsched.algorithms.heuristics import HEURISTICS, Policy, make_heuristic
from aigcsched.envs import DataCenterConfig
from aigcsched.platform.config import ConfigError


def known_policies(cfg: BaseModel | None = None) -> list[str]:
    return list(DATACENTER_HEURISTICS if isinstance(cfg, DataCenterConfig) else HEURISTICS)


def resolve_policy(name: str, cfg: BaseModel, seed: int | None = None) -> Policy:
    """A heuristic by name for the problem `cfg` belongs to; raises ConfigError naming the
    choices otherwise."""
    if isinstance(cfg, DataCenterConfig):
        if name in DATACENTER_HEURISTICS:
            return make_datacenter_heuristic(name, cfg, seed=seed)
    elif name in HEURISTICS:
        return make_heuristic(name, cfg, seed=seed)
    raise ConfigError(f"unknown policy {name!r}; choose from {', '.join(known_policies(cfg))}")

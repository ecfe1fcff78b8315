"""Turn a `--policy` name into a policy callable (observations, state) -> actions."""

from __future__ import annotations

from aigcsched.algorithms.heuristics import HEURISTICS, Policy, make_heuristic
from aigcsched.envs import EdgeConfig
from aigcsched.platform.config import ConfigError


def known_policies() -> list[str]:
    return list(HEURISTICS)


def resolve_policy(name: str, cfg: EdgeConfig, seed: int | None = None) -> Policy:
    """A heuristic by name; raises ConfigError naming the choices otherwise."""
    if name in HEURISTICS:
        return make_heuristic(name, cfg, seed=seed)
    raise ConfigError(f"unknown policy {name!r}; choose from {', '.join(known_policies())}")

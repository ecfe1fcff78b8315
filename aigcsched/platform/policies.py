"""Turn a `--policy` name into a policy callable (observations, state) -> actions.

Names: a heuristic (random, greedy, myopic), a registered model (models:/NAME@ALIAS or
models:/NAME/VERSION) or a checkpoint (checkpoint:PATH).
"""

from __future__ import annotations

from aigcsched.algorithms.heuristics import HEURISTICS, Policy, make_heuristic
from aigcsched.envs import EdgeConfig
from aigcsched.platform.config import ConfigError


def known_policies() -> list[str]:
    return [*HEURISTICS, "models:/NAME@ALIAS", "models:/NAME/VERSION", "checkpoint:PATH"]


def resolve_policy(name: str, cfg: EdgeConfig, seed: int | None = None) -> Policy:
    """A policy by name, checked against the scenario; raises ConfigError otherwise."""
    if name in HEURISTICS:
        return make_heuristic(name, cfg, seed=seed)
    if name.startswith(("models:/", "checkpoint:")):
        from aigcsched.platform import registry

        if name.startswith("models:/"):
            policy = registry.load_policy(name)
        else:
            policy = registry.load_checkpoint_policy(name.removeprefix("checkpoint:"))
        policy.check_fits(cfg)
        return policy
    raise ConfigError(f"unknown policy {name!r}; choose from {', '.join(known_policies())}")

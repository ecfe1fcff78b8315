"""Turn a `--policy` name into a policy callable (observations, state) -> actions.

Names: a heuristic (random, greedy, myopic), a registered model (models:/NAME@ALIAS or
models:/NAME/VERSION) or a checkpoint (checkpoint:PATH).
"""

from __future__ import annotations

from pydantic import BaseModel

from aigcsched.algorithms.datacenter_heuristics import DATACENTER_HEURISTICS, make_datacenter_heuristic
from aigcsched.algorithms.heuristics import HEURISTICS, Policy, make_heuristic
from aigcsched.envs import DataCenterConfig
from aigcsched.platform.config import ConfigError


def known_policies(cfg: BaseModel | None = None) -> list[str]:
    trained = ["models:/NAME@ALIAS", "models:/NAME/VERSION", "checkpoint:PATH"]
    if isinstance(cfg, DataCenterConfig):
        return [*DATACENTER_HEURISTICS, *trained]
    return [*HEURISTICS, *trained]


def resolve_policy(name: str, cfg: BaseModel, seed: int | None = None) -> Policy:
    """A policy by name for the problem `cfg` belongs to, checked against the scenario;
    raises ConfigError naming the choices otherwise."""
    if isinstance(cfg, DataCenterConfig):
        if name in DATACENTER_HEURISTICS:
            return make_datacenter_heuristic(name, cfg, seed=seed)
        if name.startswith(("models:/", "checkpoint:")):
            from aigcsched.platform import datacenter_policy

            if name.startswith("models:/"):
                policy = datacenter_policy.load_registered(name)
            else:
                policy = datacenter_policy.load_policy_dir(name.removeprefix("checkpoint:"), {"uri": name})
            policy.check_fits(cfg)
            return policy
    elif name in HEURISTICS:
        return make_heuristic(name, cfg, seed=seed)
    elif name.startswith(("models:/", "checkpoint:")):
        from aigcsched.platform import registry

        if name.startswith("models:/"):
            policy = registry.load_policy(name)
        else:
            policy = registry.load_checkpoint_policy(name.removeprefix("checkpoint:"))
        policy.check_fits(cfg)
        return policy
    raise ConfigError(f"unknown policy {name!r}; choose from {', '.join(known_policies(cfg))}")

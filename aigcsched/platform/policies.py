"""Turn a `--policy` name into a policy callable (observations, state) -> actions.

Names: a heuristic (random, greedy, myopic), a registered model (models:/NAME@ALIAS or
models:/NAME/VERSION) or a checkpoint (checkpoint:PATH).
"""

from __future__ import annotations

import os

from pydantic import BaseModel

from aigcsched.algorithms.datacenter_heuristics import DATACENTER_HEURISTICS, make_datacenter_heuristic
from aigcsched.algorithms.heuristics import HEURISTICS, Policy, make_heuristic
from aigcsched.algorithms.mec_heuristics import MEC_POLICIES, make_policy
from aigcsched.algorithms.optimum import DEFAULT_TIME_LIMIT_S, OptimumPolicy
from aigcsched.envs import DataCenterConfig, MECConfig
from aigcsched.platform.config import ConfigError

OPTIMUM = "optimum"
# Beyond this many requests an exact solve is hopeless within minutes (and the model alone is big).
MAX_OPTIMUM_REQUESTS = 100
TIME_LIMIT_ENV = "AIGCSCHED_OPTIMUM_TIME_LIMIT_S"


def optimum_time_limit() -> float:
    """Seconds CP-SAT may spend per episode: $AIGCSCHED_OPTIMUM_TIME_LIMIT_S, default 60."""
    raw = os.environ.get(TIME_LIMIT_ENV, "")
    if not raw.strip():
        return DEFAULT_TIME_LIMIT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{TIME_LIMIT_ENV} must be a positive number of seconds, got {raw!r}")
    return value


def known_policies(cfg: BaseModel | None = None) -> list[str]:
    trained = ["models:/NAME@ALIAS", "models:/NAME/VERSION", "checkpoint:PATH"]
    if isinstance(cfg, DataCenterConfig):
        return [*DATACENTER_HEURISTICS, *trained]
    if isinstance(cfg, MECConfig):
        return [*MEC_POLICIES, *trained]
    return [*HEURISTICS, OPTIMUM, *trained]


def resolve_policy(name: str, cfg: BaseModel, seed: int | None = None) -> Policy:
    """A policy by name for the problem `cfg` belongs to, checked against the scenario;
    raises ConfigError naming the choices otherwise. On mec a policy is (env, agent, obs) -> shares."""
    if isinstance(cfg, DataCenterConfig | MECConfig):
        if isinstance(cfg, DataCenterConfig) and name in DATACENTER_HEURISTICS:
            return make_datacenter_heuristic(name, cfg, seed=seed)
        if isinstance(cfg, MECConfig) and name in MEC_POLICIES:
            return make_policy(name, seed=seed or 0)
        if name.startswith(("models:/", "checkpoint:")):
            from aigcsched.platform import multiagent_policy

            if name.startswith("models:/"):
                policy = multiagent_policy.load_registered(name)
            else:
                policy = multiagent_policy.load_policy_dir(name.removeprefix("checkpoint:"), {"uri": name})
            policy.check_fits(cfg)
            return mec_policy(policy) if isinstance(cfg, MECConfig) else policy
    elif name in HEURISTICS:
        return make_heuristic(name, cfg, seed=seed)
    elif name == OPTIMUM:
        if cfg.n_requests > MAX_OPTIMUM_REQUESTS:
            raise ConfigError(
                f"optimum: n_requests={cfg.n_requests} is too large to solve exactly (at most "
                f"{MAX_OPTIMUM_REQUESTS}, e.g. --set n_requests=20); for full-size episodes use --bound, "
                "an upper bound on any policy's reward"
            )
        return OptimumPolicy(cfg, time_limit_s=optimum_time_limit())
    elif name.startswith(("models:/", "checkpoint:")):
        from aigcsched.platform import registry

        if name.startswith("models:/"):
            policy = registry.load_policy(name)
        else:
            policy = registry.load_checkpoint_policy(name.removeprefix("checkpoint:"))
        policy.check_fits(cfg)
        return policy
    raise ConfigError(f"unknown policy {name!r}; choose from {', '.join(known_policies(cfg))}")


def mec_policy(policy) -> Policy:
    """A trained multi-agent policy as a mec policy: each station's greedy action, as shares."""

    def act(env, agent, obs):
        return env.shares(agent, policy.act_agent(agent, obs))

    act.info = policy.info
    return act

"""Turn a `--policy` name into a policy callable (observations, state) -> actions."""

from __future__ import annotations

import os

from aigcsched.algorithms.heuristics import HEURISTICS, Policy, make_heuristic
from aigcsched.algorithms.optimum import DEFAULT_TIME_LIMIT_S, OptimumPolicy
from aigcsched.envs import EdgeConfig
from aigcsched.platform.config import ConfigError

OPTIMUM = "optimum"
# Beyond this many requests an exact solve is hopeless within minutes (and the model alone is big).
MAX_OPTIMUM_REQUESTS = 100
TIME_LIMIT_ENV = "AIGCSCHED_OPTIMUM_TIME_LIMIT_S"


def known_policies() -> list[str]:
    return [*HEURISTICS, OPTIMUM]


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


def resolve_policy(name: str, cfg: EdgeConfig, seed: int | None = None) -> Policy:
    """A heuristic, or `optimum` (the hindsight schedule, solved per episode), by name; raises
    ConfigError naming the choices otherwise."""
    if name in HEURISTICS:
        return make_heuristic(name, cfg, seed=seed)
    if name == OPTIMUM:
        if cfg.n_requests > MAX_OPTIMUM_REQUESTS:
            raise ConfigError(
                f"optimum: n_requests={cfg.n_requests} is too large to solve exactly (at most "
                f"{MAX_OPTIMUM_REQUESTS}, e.g. --set n_requests=20); for full-size episodes use --bound, "
                "an upper bound on any policy's reward"
            )
        return OptimumPolicy(cfg, time_limit_s=optimum_time_limit())
    raise ConfigError(f"unknown policy {name!r}; choose from {', '.join(known_policies())}")

"""Evaluate scheduling policies on `edge`: per-request means over seeded episodes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from aigcsched.algorithms.heuristics import Policy
from aigcsched.envs import EdgeConfig, EdgeVectorEnv
from aigcsched.envs.edge import Instance

METRICS = ("reward", "quality", "tardiness", "late_fraction")


@dataclass(frozen=True)
class EvalResult:
    """Per-episode means (one entry per episode; episode k used seed + k)."""

    reward: np.ndarray
    quality: np.ndarray
    tardiness: np.ndarray
    late_fraction: np.ndarray
    # With record_requests: per-request quality and tardiness, shape (episodes, n_requests).
    requests: dict[str, np.ndarray] = field(default_factory=dict)

    def means(self) -> dict[str, float]:
        """Per-request means over all episodes (episodes have equal length)."""
        return {m: float(np.mean(getattr(self, m))) for m in METRICS}


def evaluate_policy(
    policy: Policy, cfg: EdgeConfig, episodes: int = 10, seed: int = 0, record_requests: bool = False
) -> EvalResult:
    """Run `episodes` episodes at once (episode k seeded with seed + k) under `policy`.
    A policy with a `begin(instances)` method (a hindsight scheduler) is first shown the
    episodes in full."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    env = EdgeVectorEnv(num_envs=episodes, config=cfg)
    obs, _ = env.reset(seed=seed)
    begin = getattr(policy, "begin", None)
    if begin is not None:
        begin(env.instances())
    totals = {m: np.zeros(episodes) for m in METRICS}
    requests = {k: np.zeros((episodes, cfg.n_requests)) for k in ("quality", "tardiness")} if record_requests else {}
    for t in range(cfg.n_requests):
        obs, reward, _, _, info = env.step(policy(obs, env.state()))
        totals["reward"] += reward
        totals["quality"] += info["quality"]
        totals["tardiness"] += info["tardiness"]
        totals["late_fraction"] += info["late"]
        for key, values in requests.items():
            values[:, t] = info[key]
    return EvalResult(**{m: v / cfg.n_requests for m, v in totals.items()}, requests=requests)


def episode_instances(cfg: EdgeConfig, episodes: int, seed: int) -> list[Instance]:
    """The instances `evaluate_policy` plays for these episodes and seed."""
    env = EdgeVectorEnv(num_envs=episodes, config=cfg)
    env.reset(seed=seed)
    return env.instances()

"""Evaluate policies on `datacenter`: system-wide means over seeded one-day episodes."""

from __future__ import annotations

import numpy as np

from aigcsched.algorithms.datacenter_heuristics import DataCenterPolicy
from aigcsched.envs import DataCenterConfig, DataCenterEnv

METRICS = (
    "reward",  # episode return summed over agents (reward_mode as configured)
    "utility",  # USD per episode, all providers
    "revenue",
    "energy_cost",  # USD per episode, all data centers
    "quality",  # mean quality of the jobs served
    "violation_rate",  # jobs that missed their deadline / jobs arrived
    "renewable_share",  # renewable share of the energy taken in (on-site used + grid mix of bought)
    "handed_over",  # jobs handed to another provider / jobs arrived
    "carbon_kg",  # of the energy bought
)


def run_episode(env: DataCenterEnv, policy: DataCenterPolicy, seed: int) -> tuple[dict[str, np.ndarray], float]:
    """One episode; returns the env's ledger (per slot and provider) and the summed return."""
    obs, _ = env.reset(seed=seed)
    total = 0.0
    while env.agents:
        obs, rewards, _, _, _ = env.step(policy(obs, env.state()))
        total += sum(rewards.values())
    return env.ledger, total


def episode_metrics(ledger: dict[str, np.ndarray], episode_return: float) -> dict[str, float]:
    s = {name: float(v.sum()) for name, v in ledger.items()}
    intake = s["renewable_used_kwh"] + s["bought_kwh"]
    return {
        "reward": episode_return,
        "utility": s["utility"],
        "revenue": s["revenue"],
        "energy_cost": s["energy_cost"],
        "quality": s["quality_sum"] / max(s["served"], 1.0),
        "violation_rate": s["violations"] / max(s["arrivals"], 1.0),
        "renewable_share": (s["renewable_used_kwh"] + s["grid_renewable_kwh"]) / intake if intake > 0 else 0.0,
        "handed_over": s["handed_out"] / max(s["arrivals"], 1.0),
        "carbon_kg": s["carbon_kg"],
    }


def evaluate_datacenter(
    policy: DataCenterPolicy, cfg: DataCenterConfig, episodes: int = 10, seed: int = 0
) -> dict[str, float]:
    """Means over `episodes` episodes, episode k seeded with seed + k."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    env = DataCenterEnv(cfg)
    rows = [episode_metrics(*run_episode(env, policy, seed + i)) for i in range(episodes)]
    return {m: float(np.mean([r[m] for r in rows])) for m in METRICS}

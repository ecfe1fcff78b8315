"""Reference policies for `datacenter`: local-only, price-aware hand-off, battery arbitrage, both.

Each policy maps (observations by agent, DataCenterState) to actions by agent; an action is
(keep level, hand-off target among the others, step level, battery, power cap) as in
`DataCenterEnv`. All of them run the GPUs at full power.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from aigcsched.envs.datacenter import DataCenterConfig, DataCenterState

DataCenterPolicy = Callable[[dict, DataCenterState], dict]

DISCHARGE, IDLE, CHARGE = 0, 1, 2


def _agents(cfg: DataCenterConfig) -> list[str]:
    return [f"asp_{i}" for i in range(cfg.n_asps)]


def _actions(cfg: DataCenterConfig, keep, target, level, battery) -> dict:
    full_power = int(np.argmax(cfg.power_cap_levels))
    k = cfg.n_asps
    cols = [np.broadcast_to(np.asarray(x, dtype=np.int64), (k,)) for x in (keep, target, level, battery)]
    act = np.stack([*cols, np.full(k, full_power)], axis=1)
    return dict(zip(_agents(cfg), act, strict=True))


def most_steps_that_clear(state: DataCenterState) -> np.ndarray:
    """Per data center: the highest step level whose capacity covers the queue plus this slot's
    expected arrivals; the lowest level when none does."""
    load = state.queue + state.expected_arrivals
    fits = state.capacity >= load[:, None]  # (K, S); capacity falls with the level
    return np.where(fits.any(axis=1), fits.shape[1] - 1 - np.argmax(fits[:, ::-1], axis=1), 0)


def _keep_all(cfg: DataCenterConfig) -> int:
    return int(np.argmax(cfg.keep_levels))


def handoff_plan(cfg: DataCenterConfig, state: DataCenterState, level: int) -> tuple[np.ndarray, np.ndarray]:
    """(keep level, target) per provider: a provider whose queue plus expected arrivals exceed its
    capacity at `level` hands the excess (rounded up to a keep level) to the other provider with
    the lowest marginal cost per job (energy at its price plus the fee) that has room to spare;
    nobody hands off when no one has room."""
    k = cfg.n_asps
    load = state.queue + state.expected_arrivals
    room = state.capacity[:, level] - load
    marginal = state.kwh_per_job[:, level] * state.price / 1000.0 + state.handoff_fee
    keep_levels = np.asarray(cfg.keep_levels)
    keep = np.full(k, _keep_all(cfg))
    target = np.zeros(k, dtype=np.int64)
    for i in range(k):
        if room[i] >= 0 or state.expected_arrivals[i] <= 0:
            continue
        others = [j for j in range(k) if j != i]
        candidates = [j for j in others if room[j] > 0]
        if not candidates:
            continue
        best = min(candidates, key=lambda j: marginal[j])
        share = min(1.0, -room[i] / state.expected_arrivals[i], room[best] / state.expected_arrivals[i])
        # the largest keep share that still hands off at least `share`
        ok = np.flatnonzero(1.0 - keep_levels >= share - 1e-9)
        keep[i] = ok[np.argmax(keep_levels[ok])] if ok.size else int(np.argmin(keep_levels))
        target[i] = others.index(best)
    return keep, target


def arbitrage(state: DataCenterState) -> np.ndarray:
    """Battery: charge below the day's median price, discharge above it, idle at it."""
    median = np.median(state.day_prices, axis=1)
    return np.where(state.price < median, CHARGE, np.where(state.price > median, DISCHARGE, IDLE))


def local_policy(cfg: DataCenterConfig) -> DataCenterPolicy:
    """Keep every job, run the most steps that clear the queue, leave the battery idle."""

    def act(obs: dict, state: DataCenterState) -> dict:
        return _actions(cfg, _keep_all(cfg), 0, most_steps_that_clear(state), IDLE)

    return act


def handoff_policy(cfg: DataCenterConfig, quality_level: int | None = None) -> DataCenterPolicy:
    """Local steps, plus price-aware hand-off of what exceeds the capacity at `quality_level`
    (default: the middle step level)."""
    level = len(cfg.step_levels) // 2 if quality_level is None else quality_level

    def act(obs: dict, state: DataCenterState) -> dict:
        keep, target = handoff_plan(cfg, state, level)
        return _actions(cfg, keep, target, most_steps_that_clear(state), IDLE)

    return act


def arbitrage_policy(cfg: DataCenterConfig) -> DataCenterPolicy:
    """Local scheduling, battery arbitrage around the day's median price."""

    def act(obs: dict, state: DataCenterState) -> dict:
        return _actions(cfg, _keep_all(cfg), 0, most_steps_that_clear(state), arbitrage(state))

    return act


def combined_policy(cfg: DataCenterConfig) -> DataCenterPolicy:
    """Price-aware hand-off and battery arbitrage together."""
    level = len(cfg.step_levels) // 2

    def act(obs: dict, state: DataCenterState) -> dict:
        keep, target = handoff_plan(cfg, state, level)
        return _actions(cfg, keep, target, most_steps_that_clear(state), arbitrage(state))

    return act


def random_policy(cfg: DataCenterConfig, seed: int | None = None) -> DataCenterPolicy:
    """Every action component uniformly at random."""
    rng = np.random.default_rng(seed)
    nvec = np.array([len(cfg.keep_levels), cfg.n_asps - 1, len(cfg.step_levels), 3, len(cfg.power_cap_levels)])

    def act(obs: dict, state: DataCenterState) -> dict:
        return dict(zip(_agents(cfg), rng.integers(0, nvec, size=(cfg.n_asps, len(nvec))), strict=True))

    return act


DATACENTER_HEURISTICS: dict[str, Callable[..., DataCenterPolicy]] = {
    "random": random_policy,
    "local": local_policy,
    "handoff": handoff_policy,
    "arbitrage": arbitrage_policy,
    "combined": combined_policy,
}


def make_datacenter_heuristic(name: str, cfg: DataCenterConfig, seed: int | None = None) -> DataCenterPolicy:
    if name not in DATACENTER_HEURISTICS:
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(DATACENTER_HEURISTICS)}")
    return random_policy(cfg, seed) if name == "random" else DATACENTER_HEURISTICS[name](cfg)

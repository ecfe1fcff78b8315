"""Reference policies for `datacenter`: local-only, price-aware hand-off, battery arbitrage, both,
deadline-aware service, that service with hand-offs to where jobs earn more, the same with knobs
tuned on training days (`tuned_handoff`), that with a battery planned over the rest of the day
(`planned_handoff`), and hand-offs and service planned for the sites' GPUs as one pool with that
battery (`pooled_handoff`, the strongest).

Each policy maps (observations by agent, DataCenterState) to actions by agent; an action is
(keep level, hand-off target among the others, step level, battery, power cap) as in
`DataCenterEnv`. All but `deadline`, `value_handoff` and `tuned_handoff` run the GPUs at full
power. The per-state computations they share (steps that clear the load, hand-off plan, battery
arbitrage, best-value service of the jobs due) and the plans of `combined`, `deadline`,
`value_handoff`, `tuned_handoff`, `planned_handoff` and `pooled_handoff` live in the env's
`lookahead` (the planned battery in its `battery_plan`, the pool's routes in its `pooling`), which
also offers one of those plans as observation features.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from aigcsched.envs.datacenter import DataCenterConfig, DataCenterState
from aigcsched.envs.datacenter.battery_plan import BatteryPlanner
from aigcsched.envs.datacenter.lookahead import (  # the battery commands too, for callers of this module
    CHARGE,  # noqa: F401
    CHARGE_QUANTILE,
    DISCHARGE,  # noqa: F401
    DISCHARGE_SHARE,
    IDLE,
    ROOM_FACTOR,
    arbitrage,
    combined_plan,
    deadline_plan,
    full_power,
    handoff_plan,
    keep_all,
    most_steps_that_clear,
    planned_handoff_plan,
    pooled_handoff_plan,
    tuned_handoff_plan,
    value_handoff_plan,
)

DataCenterPolicy = Callable[[dict, DataCenterState], dict]


def _agents(cfg: DataCenterConfig) -> list[str]:
    return [f"asp_{i}" for i in range(cfg.n_asps)]


def _actions(cfg: DataCenterConfig, keep, target, level, battery, cap=None) -> dict:
    k = cfg.n_asps
    cap = full_power(cfg) if cap is None else cap
    cols = [np.broadcast_to(np.asarray(x, dtype=np.int64), (k,)) for x in (keep, target, level, battery, cap)]
    return dict(zip(_agents(cfg), np.stack(cols, axis=1), strict=True))


def local_policy(cfg: DataCenterConfig) -> DataCenterPolicy:
    """Keep every job, run the most steps that clear the queue, leave the battery idle."""

    def act(obs: dict, state: DataCenterState) -> dict:
        return _actions(cfg, keep_all(cfg), 0, most_steps_that_clear(state), IDLE)

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
        return _actions(cfg, keep_all(cfg), 0, most_steps_that_clear(state), arbitrage(state))

    return act


def combined_policy(cfg: DataCenterConfig) -> DataCenterPolicy:
    """Price-aware hand-off and battery arbitrage together."""
    return _plan_policy(cfg, combined_plan)


def deadline_policy(cfg: DataCenterConfig) -> DataCenterPolicy:
    """Keep every job, run the step level and power cap that earn the most per job while still
    serving every job due this slot (the GPUs serve more when they can), battery arbitrage. The
    best of the simple variants of this rule tried on held-out days: with the battery idle it earns
    a little less, adding `handoff`'s hand-offs less again (RESULTS.md)."""
    return _plan_policy(cfg, deadline_plan)


def value_handoff_policy(cfg: DataCenterConfig) -> DataCenterPolicy:
    """`deadline`, plus hand-offs of new jobs to the provider that earns more per job at its best
    service, as many as its room takes (`lookahead.value_handoff_plan`). Revenue follows the site
    that runs a job (its model's quality), so a job handed to a better model's site earns more."""
    return _plan_policy(cfg, value_handoff_plan)


def tuned_handoff_policy(
    cfg: DataCenterConfig,
    room_factor: float = ROOM_FACTOR,
    charge_quantile: float = CHARGE_QUANTILE,
    discharge_share: float = DISCHARGE_SHARE,
) -> DataCenterPolicy:
    """`value_handoff` with knobs tuned on training days (`lookahead.tuned_handoff_plan` at the
    defaults): it hands a receiver up to `room_factor` x its capacity at the service rule's choice
    (less its queue and expected arrivals), as the hindsight optimum hands off more, and its battery
    charges only at or below the day's `charge_quantile` price quantile and discharges only in the
    day's dearest `discharge_share` of hours, as each cycle wears it."""
    knobs = {"room_factor": room_factor, "charge_quantile": charge_quantile, "discharge_share": discharge_share}
    return _plan_policy(cfg, functools.partial(tuned_handoff_plan, **knobs))


def planned_handoff_policy(cfg: DataCenterConfig) -> DataCenterPolicy:
    """`tuned_handoff`'s hand-offs and service with a battery planned over the rest of the day
    (`battery_plan`): the value of each state of charge on the day's prices, discharging only as
    fast as the site's recent net load takes, replanned every hour."""
    planner = BatteryPlanner(cfg)

    def act(obs: dict, state: DataCenterState) -> dict:
        return dict(zip(_agents(cfg), planned_handoff_plan(cfg, state, planner(state)), strict=True))

    return act


def pooled_handoff_policy(cfg: DataCenterConfig) -> DataCenterPolicy:
    """Hand-offs, step levels and power caps planned for the providers' GPUs as one pool
    (`lookahead.pooled_handoff_plan`): each slot, the route of new jobs that earns the pool the most
    on the expected arrivals, each site serving its jobs due and most of its planned load at the
    best value per job (no hand-offs that would land after the day's end), with `planned_handoff`'s
    battery."""
    planner = BatteryPlanner(cfg)

    def act(obs: dict, state: DataCenterState) -> dict:
        return dict(zip(_agents(cfg), pooled_handoff_plan(cfg, state, planner(state)), strict=True))

    return act


def _plan_policy(cfg: DataCenterConfig, plan) -> DataCenterPolicy:
    agents = _agents(cfg)

    def act(obs: dict, state: DataCenterState) -> dict:
        return dict(zip(agents, plan(cfg, state), strict=True))

    return act


def random_policy(cfg: DataCenterConfig, seed: int | None = None) -> DataCenterPolicy:
    """Every action component uniformly at random."""
    rng = np.random.default_rng(seed)
    nvec = np.array(cfg.action_nvec)

    def act(obs: dict, state: DataCenterState) -> dict:
        return dict(zip(_agents(cfg), rng.integers(0, nvec, size=(cfg.n_asps, len(nvec))), strict=True))

    return act


DATACENTER_HEURISTICS: dict[str, Callable[..., DataCenterPolicy]] = {
    "random": random_policy,
    "local": local_policy,
    "handoff": handoff_policy,
    "arbitrage": arbitrage_policy,
    "combined": combined_policy,
    "deadline": deadline_policy,
    "value_handoff": value_handoff_policy,
    "tuned_handoff": tuned_handoff_policy,
    "planned_handoff": planned_handoff_policy,
    "pooled_handoff": pooled_handoff_policy,
}


def make_datacenter_heuristic(name: str, cfg: DataCenterConfig, seed: int | None = None) -> DataCenterPolicy:
    if name not in DATACENTER_HEURISTICS:
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(DATACENTER_HEURISTICS)}")
    return random_policy(cfg, seed) if name == "random" else DATACENTER_HEURISTICS[name](cfg)

"""Look-ahead quantities of a `DataCenterState`: what a coordinator who knows this slot's expected
load and prices would do. Which step level clears the expected load (`most_steps_that_clear`),
which provider has spare room at the lowest marginal cost per job (`handoff_plan`), which step
level and power cap earn the most per job while serving every job due (`best_value_service`), the price
against the day's median (`arbitrage`), and together the heuristics' actions (`combined_plan`,
`deadline_plan`, `value_handoff_plan`, `tuned_handoff_plan`, `planned_handoff_plan`,
`pooled_handoff_plan`), also as one-hots per action branch (`plan_one_hot`, the `observe_lookahead`
block of the observation).

Every function takes a state of one episode ((K,) arrays) or of a batch (axes of episodes in
front of K) and gives the same numbers for each episode either way.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from aigcsched.envs.datacenter.battery_plan import BatteryPlanner
from aigcsched.envs.datacenter.config import BATTERY_ACTIONS, DataCenterConfig
from aigcsched.envs.datacenter.pooling import PooledRoutes

if TYPE_CHECKING:
    from aigcsched.envs.datacenter.env import DataCenterState

DISCHARGE, IDLE, CHARGE = (BATTERY_ACTIONS.index(a) for a in ("discharge", "idle", "charge"))


def keep_all(cfg: DataCenterConfig) -> int:
    """The keep level that keeps every new job."""
    return int(np.argmax(cfg.keep_levels))


def full_power(cfg: DataCenterConfig) -> int:
    """The power cap level of full power."""
    return int(np.argmax(cfg.power_cap_levels))


def most_steps_that_clear(state: DataCenterState) -> np.ndarray:
    """Per data center: the highest step level whose capacity covers the queue plus this slot's
    expected arrivals; the lowest level when none does."""
    load = state.queue + state.expected_arrivals
    fits = state.capacity >= load[..., None]  # (..., K, S); capacity falls with the level
    n = fits.shape[-1]
    return np.where(fits.any(axis=-1), n - 1 - np.argmax(fits[..., ::-1], axis=-1), 0)


def handoff_plan(cfg: DataCenterConfig, state: DataCenterState, level: int) -> tuple[np.ndarray, np.ndarray]:
    """(keep level, target) per provider: a provider whose queue plus expected arrivals exceed its
    capacity at `level` hands the excess (rounded up to a keep level) to the other provider with
    the lowest marginal cost per job (energy at its price plus the fee) that has room to spare;
    nobody hands off when no one has room."""
    k = cfg.n_asps
    others = np.array([[j for j in range(k) if j != i] for i in range(k)])  # (K, K-1): targets in index order
    arrivals = state.expected_arrivals
    room = state.capacity[..., level] - (state.queue + arrivals)
    marginal = state.kwh_per_job[..., level] * state.price / 1000.0 + state.handoff_fee
    room_of_others = room[..., others]  # (..., K, K-1)
    spare = room_of_others > 0
    # the cheapest of the others with room; the first in index order on ties
    best = np.argmin(np.where(spare, marginal[..., others], np.inf), axis=-1)
    over = (room < 0) & (arrivals > 0) & spare.any(axis=-1)
    per_job = np.where(over, arrivals, 1.0)  # no division by zero where nothing is handed off
    room_best = np.take_along_axis(room_of_others, best[..., None], axis=-1)[..., 0]
    share = np.minimum(np.minimum(1.0, -room / per_job), room_best / per_job)
    # the largest keep share that still hands off at least `share`; else the smallest keep share
    keep_levels = np.asarray(cfg.keep_levels)
    ok = 1.0 - keep_levels >= share[..., None] - 1e-9
    largest = np.argmax(np.where(ok, keep_levels, -np.inf), axis=-1)
    chosen = np.where(ok.any(axis=-1), largest, int(np.argmin(keep_levels)))
    return np.where(over, chosen, keep_all(cfg)), np.where(over, best, 0)


def service_values(cfg: DataCenterConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(K, S, P) each, per step level and power cap: whole jobs per slot (no carry-over), revenue per
    job, and the kWh per job its GPUs draw above idle at PUE 1 (host power and idle GPUs cost the
    same whatever runs: `energy`'s IT power)."""
    sec = cfg.seconds_per_job()
    capacity = np.floor(np.asarray(cfg.n_gpus, dtype=np.float64)[:, None, None] * cfg.slot_minutes * 60.0 / sec)
    busy_w = np.asarray(cfg.power_cap_levels)[None, :] * np.asarray(cfg.gpu_power_w)[:, None]  # (K, P)
    kwh = sec * (busy_w - np.asarray(cfg.gpu_idle_w)[:, None])[:, None, :] / 3.6e6
    revenue = np.broadcast_to((cfg.revenue_per_quality * cfg.quality())[..., None], sec.shape)
    return capacity, revenue, kwh


def job_values(cfg: DataCenterConfig, state: DataCenterState) -> tuple[np.ndarray, np.ndarray]:
    """(K, S, P) whole jobs per slot and (..., K, S, P) what a job earns, per step level and power
    cap: revenue at its steps less its GPUs' energy above idle at this slot's PUE and price."""
    capacity, revenue, kwh = service_values(cfg)
    return capacity, revenue - kwh * (state.pue * state.price / 1000.0)[..., None, None]


def due_this_slot(cfg: DataCenterConfig, state: DataCenterState) -> np.ndarray:
    """(..., K) the jobs each data center must serve this slot lest any pay its penalty: `state.due`,
    and in the episode's last slot the expected arrivals too (whatever is left then pays)."""
    return state.due + (state.expected_arrivals if state.slot == cfg.episode_slots - 1 else 0.0)


def best_value_service(
    cfg: DataCenterConfig,
    state: DataCenterState,
    values: tuple[np.ndarray, np.ndarray] | None = None,
    need: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(step level, power cap) per data center: of the pairs whose jobs per slot cover `need` (by
    default the jobs due this slot: `state.due`, and in the episode's last slot the expected
    arrivals too, as whatever is left then pays its penalty), the one that earns the most per job
    (`job_values`, or `values` when already known); where none covers it, the best of those that
    serve the most."""
    capacity, value = job_values(cfg, state) if values is None else values
    need = due_this_slot(cfg, state) if need is None else need
    covers = capacity >= need[..., None, None]
    most = capacity == capacity.max(axis=(-2, -1), keepdims=True)
    ok = np.where(covers.any(axis=(-2, -1), keepdims=True), covers, most)
    best = np.argmax(np.where(ok, value, -np.inf).reshape(*value.shape[:-2], -1), axis=-1)
    level, cap = np.unravel_index(best, value.shape[-2:])
    return level, cap


def arbitrage(state: DataCenterState) -> np.ndarray:
    """Battery: charge below the day's median price, discharge above it, idle at it."""
    return price_arbitrage(state.price, state.day_prices)


def price_arbitrage(price: np.ndarray, day_prices: np.ndarray) -> np.ndarray:
    """`arbitrage` at prices (..., K) of days day_prices (..., K, 24); leading axes broadcast, so
    (T, B, K) prices give a batch's decisions for every slot at once."""
    median = np.median(day_prices, axis=-1)
    return np.where(price < median, CHARGE, np.where(price > median, DISCHARGE, IDLE))


def price_extremes(
    price: np.ndarray, day_prices: np.ndarray, charge_quantile: float, discharge_share: float
) -> np.ndarray:
    """Battery at prices (..., K) of days day_prices (..., K, 24): charge at or below the day's
    `charge_quantile` price quantile (0: its cheapest hour), discharge in its dearest
    `discharge_share` of hours, idle between. Leading axes broadcast, as in `price_arbitrage`."""
    low = np.quantile(day_prices, charge_quantile, axis=-1)
    high = np.quantile(day_prices, 1.0 - discharge_share, axis=-1)
    return np.where(price <= low, CHARGE, np.where(price >= high, DISCHARGE, IDLE))


def combined_plan(cfg: DataCenterConfig, state: DataCenterState, battery: np.ndarray | None = None) -> np.ndarray:
    """(..., K, 5) the `combined` heuristic's action per provider: hand-off of what exceeds the
    capacity at the middle step level, the most steps that clear, battery arbitrage (`battery`
    when already known), full power."""
    keep, target = handoff_plan(cfg, state, len(cfg.step_levels) // 2)
    level = most_steps_that_clear(state)
    cap = np.full(keep.shape, full_power(cfg))
    return _plan(keep, target, level, arbitrage(state) if battery is None else battery, cap)


def deadline_plan(cfg: DataCenterConfig, state: DataCenterState, battery: np.ndarray | None = None) -> np.ndarray:
    """(..., K, 5) the `deadline` heuristic's action per provider: keep every job, the best-value
    service of the jobs due (`best_value_service`), battery arbitrage."""
    level, cap = best_value_service(cfg, state)
    keep = np.full(level.shape, keep_all(cfg))
    return _plan(keep, np.zeros_like(keep), level, arbitrage(state) if battery is None else battery, cap)


def value_handoff_plan(
    cfg: DataCenterConfig, state: DataCenterState, battery: np.ndarray | None = None, room_factor: float = 1.0
) -> np.ndarray:
    """(..., K, 5) the `value_handoff` heuristic's action per provider: `deadline_plan`, except that
    a provider hands new jobs to the other provider that earns more per job at its best step level
    and power cap (revenue less its GPUs' energy at its price; fees are transfers between providers,
    left out), as many as that provider's room (`room_factor` x its capacity at the rule's choice,
    less its queue and expected arrivals) takes. Providers choose in index order, each taking up the
    room it fills."""
    k = cfg.n_asps
    others = np.array([[j for j in range(k) if j != i] for i in range(k)])
    capacity, value = job_values(cfg, state)
    handed_share = 1.0 - np.asarray(cfg.keep_levels)
    level, cap = best_value_service(cfg, state, (capacity, value))
    best = value.reshape(*value.shape[:-2], -1).max(axis=-1)  # (..., K): each provider's best value per job
    room = room_factor * capacity[np.arange(k), level, cap] - (state.queue + state.expected_arrivals)
    arrivals = state.expected_arrivals
    keep = np.full(level.shape, keep_all(cfg))
    target = np.zeros_like(keep)
    for i in range(k):
        gain = np.where(room[..., others[i]] > 0, best[..., others[i]] - best[..., i, None], -np.inf)
        j = np.argmax(gain, axis=-1)  # (...,): among the others
        hand = (np.take_along_axis(gain, j[..., None], axis=-1)[..., 0] > 0) & (arrivals[..., i] > 0)
        room_j = np.take_along_axis(room[..., others[i]], j[..., None], axis=-1)[..., 0]
        want = np.minimum(1.0, room_j / np.where(hand, arrivals[..., i], 1.0))
        # the largest share handed off that fits `want`
        share = np.argmax(np.where(handed_share <= want[..., None] + 1e-9, handed_share, -1.0), axis=-1)
        keep[..., i] = np.where(hand, share, keep[..., i])
        target[..., i] = np.where(hand, j, 0)
        room = room - (hand * handed_share[share] * arrivals[..., i])[..., None] * (
            np.arange(k) == others[i][j][..., None]
        )
    return _plan(keep, target, level, arbitrage(state) if battery is None else battery, cap)


def _plan(keep, target, level, battery, cap) -> np.ndarray:
    return np.stack(np.broadcast_arrays(keep, target, level, battery, cap), axis=-1).astype(np.int64)


# Chosen on training days with `benchmarks/datacenter_handoff_tuning.py` (RESULTS.md, "Two knobs on
# value_handoff" and "The battery"): room factor 1.5 earns the most at every battery rule tried. The
# battery: the median rule with a band (idle within band x the day's price spread of the median; best
# band 0.45) never charges on days whose median lies near the cheapest price, where the hindsight plan
# charges at the cheapest hours. Charging at the day's cheapest hour and discharging in its dearest
# 30% earned the most on 20 training days (484.0 USD per day against 481.2 for band 0.45).
ROOM_FACTOR = 1.5
CHARGE_QUANTILE = 0.0
DISCHARGE_SHARE = 0.3


def tuned_handoff_battery(
    price: np.ndarray,
    day_prices: np.ndarray,
    charge_quantile: float = CHARGE_QUANTILE,
    discharge_share: float = DISCHARGE_SHARE,
) -> np.ndarray:
    """`tuned_handoff`'s battery at prices (..., K) of days day_prices (..., K, 24): `price_extremes`."""
    return price_extremes(price, day_prices, charge_quantile, discharge_share)


def tuned_handoff_plan(
    cfg: DataCenterConfig,
    state: DataCenterState,
    battery: np.ndarray | None = None,
    room_factor: float = ROOM_FACTOR,
    charge_quantile: float = CHARGE_QUANTILE,
    discharge_share: float = DISCHARGE_SHARE,
) -> np.ndarray:
    """(..., K, 5) the `tuned_handoff` heuristic's action per provider: `value_handoff_plan` with the
    receivers' room at `room_factor` x their capacity, and the battery charging at the day's
    cheapest prices and discharging at its dearest (`price_extremes`; `battery` when already known)."""
    if battery is None:
        battery = tuned_handoff_battery(state.price, state.day_prices, charge_quantile, discharge_share)
    return value_handoff_plan(cfg, state, battery, room_factor)


def planned_handoff_plan(
    cfg: DataCenterConfig, state: DataCenterState, battery: np.ndarray | None = None
) -> np.ndarray:
    """(..., K, 5) the `planned_handoff` heuristic's action per provider: `tuned_handoff_plan`'s
    hand-offs and service, the battery planned over the rest of the day on the day's prices and the
    recent net load (`battery_plan`; `battery` when already known, else planned from this state)."""
    if battery is None:
        battery = BatteryPlanner(cfg)(state)
    return tuned_handoff_plan(cfg, state, battery)


@functools.lru_cache(maxsize=8)
def _pooled_routes(cfg: DataCenterConfig) -> PooledRoutes:
    return PooledRoutes(cfg, service_values(cfg)[0])


# Each site of the pool serves its jobs due and this share of its planned load: the rest waits a
# slot, at a step level that earns more per job. Chosen on 20 training days (RESULTS.md).
PLANNED_LOAD_SERVED = 0.8


def pooled_handoff_plan(cfg: DataCenterConfig, state: DataCenterState, battery: np.ndarray | None = None) -> np.ndarray:
    """(..., K, 5) the `pooled_handoff` heuristic's action per provider: hand-offs planned for the
    providers' GPUs as one pool (`pooling`); each site at the step level and power cap that earn
    the most per job while serving its jobs due and `PLANNED_LOAD_SERVED` of its planned load
    (`best_value_service`); no hand-offs in the last `handoff_delay_slots` slots; the battery
    planned as `planned_handoff`'s (`battery` when already known)."""
    if battery is None:
        battery = BatteryPlanner(cfg)(state)
    capacity, value = job_values(cfg, state)
    flat = value.reshape(*value.shape[:-2], -1)
    arrivals = np.asarray(state.expected_arrivals, dtype=np.float64)
    keep, target, _, load = _pooled_routes(cfg)(arrivals, flat)
    if state.slot + cfg.handoff_delay_slots >= cfg.episode_slots:
        # a job handed off now would land after the episode's end and pay its penalty unserved
        keep, target, load = np.full_like(keep, keep_all(cfg)), np.zeros_like(target), arrivals
    due = due_this_slot(cfg, state)
    need = np.where(load > 0, np.maximum(due, PLANNED_LOAD_SERVED * load), due)
    level, cap = best_value_service(cfg, state, (capacity, value), need)
    return _plan(keep, target, level, battery, cap)


# The heuristics whose action `observe_lookahead` offers (`DataCenterConfig.lookahead_plan`).
PLANS = {
    "combined": combined_plan,
    "deadline": deadline_plan,
    "value_handoff": value_handoff_plan,
    "tuned_handoff": tuned_handoff_plan,
    "planned_handoff": planned_handoff_plan,
    "pooled_handoff": pooled_handoff_plan,
}
# The battery rule (prices, day prices -> command) of each one that does not take `price_arbitrage`'s ...
PLAN_BATTERY = {"tuned_handoff": tuned_handoff_battery}
# ... and those whose battery a `BatteryPlanner` kept by the env plans (it keeps the hour's plan).
PLANNED = ("planned_handoff", "pooled_handoff")


def plan_one_hot(cfg: DataCenterConfig, state: DataCenterState, battery: np.ndarray | None = None) -> np.ndarray:
    """(..., K, sum(action_nvec)) float32: the plan of `cfg.lookahead_plan` as one one-hot per action
    branch, in branch order (keep level, target, step level, battery, power cap)."""
    return branch_one_hot(PLANS[cfg.lookahead_plan](cfg, state, battery), cfg.action_nvec)


def branch_one_hot(actions: np.ndarray, nvec: tuple[int, ...]) -> np.ndarray:
    """(..., len(nvec)) actions -> (..., sum(nvec)) float32, one one-hot per action branch."""
    rows = actions.reshape(-1, len(nvec)) + np.cumsum((0, *nvec[:-1]))  # columns of the ones
    out = np.zeros((len(rows), sum(nvec)), dtype=np.float32)
    out[np.arange(len(rows))[:, None], rows] = 1.0
    return out.reshape(*actions.shape[:-1], sum(nvec))

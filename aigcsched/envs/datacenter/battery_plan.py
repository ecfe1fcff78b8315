"""A battery planned over the rest of the day: dynamic programming on the day-ahead prices.

Each site's battery earns by buying energy at cheap hours and using it at dear ones, less the
round-trip loss and its wear per kWh discharged, and it can only discharge into the site's load
(`energy`): the loads here (~10-35 kW) are below the battery's power (50 kW), so how fast it can
discharge depends on the load. Given the day's 24 hourly prices (known in advance: day-ahead
market) and a forecast of the site's net load (facility load less renewables), the value of each
state of charge at each remaining slot follows backwards from the end of the day, where charge
left is worth nothing (as in the env). Each slot's command is then the one of highest value at
the battery's actual state of charge.

The forecast: the mean net load of the last `NET_WINDOW_SLOTS` slots (`DataCenterState.net_kw`),
held flat for the rest of the day and refreshed every hour (the plan is recomputed then); before
the first slot, the site's idle load. On 20 training days under `tuned_handoff`'s hand-offs and
service this earns 485.9 USD per day against 484.0 for that heuristic's price rule, and 486.2 with
the day's actual net load known in hindsight (RESULTS.md, "A planned battery").

Values live on a uniform grid of `GRID_POINTS` states of charge per site, linearly interpolated.
Every array has any leading axes of episodes in front of K, so one planner serves
`DataCenterEnv` ((K,) arrays) and `DataCenterVectorEnv` ((B, K)) with the same numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from aigcsched.envs.datacenter.config import BATTERY_ACTIONS, DataCenterConfig

if TYPE_CHECKING:
    from aigcsched.envs.datacenter.env import DataCenterState

DISCHARGE, IDLE, CHARGE = (BATTERY_ACTIONS.index(a) for a in ("discharge", "idle", "charge"))
GRID_POINTS = 161
NET_WINDOW_SLOTS = 48  # 4 h of 5-minute slots: longer windows forecast the day's load better than the last hour


def net_load_kw(net_kwh: np.ndarray, cfg: DataCenterConfig) -> np.ndarray | None:
    """Mean net load (kW) over the last `NET_WINDOW_SLOTS` of the slots so far, from each slot's
    facility energy less renewables net_kwh (..., slots, K); None before the first slot."""
    if net_kwh.shape[-2] == 0:
        return None
    window = net_kwh[..., -NET_WINDOW_SLOTS:, :]
    return window.sum(axis=-2) / window.shape[-2] * (60.0 / cfg.slot_minutes)


class BatteryPlanner:
    """Battery commands (BATTERY_ACTIONS indices) for states of one day, planned as the module
    says. Keeps the plan of the current hour; `__call__` recomputes it at each hour's first slot,
    when the slot goes back (a new episode) or the day's prices change."""

    def __init__(self, cfg: DataCenterConfig):
        self.cfg = cfg
        self._h = cfg.slot_minutes / 60.0
        self._per_hour = 60 // cfg.slot_minutes
        self._eta = float(np.sqrt(cfg.battery_efficiency))
        kwh = np.asarray(cfg.battery_kwh, dtype=np.float64)
        self._kw = np.asarray(cfg.battery_kw, dtype=np.float64)
        self._lo, self._hi = kwh * cfg.battery_soc_min, kwh * cfg.battery_soc_max
        self._step = np.maximum((self._hi - self._lo) / (GRID_POINTS - 1), 1e-12)
        self._grid = self._lo[:, None] + self._step[:, None] * np.arange(GRID_POINTS)  # (K, G)
        self._wear = cfg.battery_wear_usd_per_kwh
        self._kwh = np.maximum(kwh, 1e-12)
        g = np.asarray(cfg.n_gpus, dtype=np.float64)
        self._idle_kw = g * (cfg.host_power_w + np.asarray(cfg.gpu_idle_w)) / 1000.0
        self._key: tuple | None = None  # (hour, prices) of the plan kept
        self._t0 = 0  # its first slot
        self._next_values: np.ndarray | None = None  # (..., K, slots of the hour, G)

    def __call__(self, state: DataCenterState) -> np.ndarray:
        t = state.slot
        hour = t // self._per_hour
        key = (hour, state.day_prices.shape, state.day_prices.tobytes())
        if self._key is None or key != self._key or t < self._t0:
            self._net = self.forecast(state)
            self._t0 = t
            self._next_values = self.values(state.day_prices, self._net, t, self._per_hour - t % self._per_hour)
            self._key = key
        return self.decide(self._next_values[..., t - self._t0, :], state.soc * self._kwh, state.price, self._net)

    def forecast(self, state: DataCenterState) -> np.ndarray:
        """(..., K) net load (kW) for the rest of the day."""
        if state.net_kw is not None:
            return np.asarray(state.net_kw, dtype=np.float64)
        # no slot seen yet: the idle load, below which no load falls (a forecast of the expected
        # arrivals' energy too earned the same on training days: it only sets the first hour)
        return self._idle_kw * state.pue

    def values(self, day_prices: np.ndarray, net_kw: np.ndarray, t0: int, keep: int) -> np.ndarray:
        """(..., K, keep, G): the value (USD) of each grid state of charge at slots t0 + 1 ..
        t0 + keep, from slot t0 to the end of the day at prices day_prices (..., K, 24) and net
        load net_kw (..., K) at every slot, or (..., K, slots) slot by slot (known in hindsight)."""
        per_slot = net_kw.ndim == day_prices.ndim
        s = np.broadcast_to(self._grid, (*day_prices.shape[:-1], GRID_POINTS))
        moves = None if per_slot else self._moves(s, net_kw)
        value = np.zeros(s.shape)
        kept = np.zeros((*s.shape[:-1], keep, GRID_POINTS))  # zero past the end of the day
        for t in range(self.cfg.episode_slots - 1, t0 - 1, -1):
            if t < t0 + keep:
                kept[..., t - t0, :] = value
            bought, delivered, charge_at, discharge_at = self._moves(s, net_kw[..., t]) if per_slot else moves
            price = day_prices[..., (t // self._per_hour) % 24, None] / 1000.0
            value = np.maximum(
                value,
                np.maximum(
                    _at(value, charge_at) - price * bought,
                    _at(value, discharge_at) + (price - self._wear) * delivered,
                ),
            )
        return kept

    def _moves(self, s: np.ndarray, net_kw: np.ndarray) -> tuple:
        """From states of charge s (..., K, n) at net load net_kw (..., K): grid energy bought to
        charge (free out of a renewable surplus), energy discharged, and where each move lands."""
        h, eta = self._h, self._eta
        charged = np.minimum(self._hi[:, None], s + (self._kw * eta * h)[:, None])
        drained = np.maximum(self._lo[:, None], s - np.clip(net_kw, 0.0, self._kw)[..., None] * h / eta)
        net = net_kw[..., None]
        bought = (np.maximum(0.0, net + (charged - s) / (eta * h)) - np.maximum(0.0, net)) * h
        return bought, (s - drained) * eta, self._interpolation(charged), self._interpolation(drained)

    def decide(self, next_values: np.ndarray, soc_kwh: np.ndarray, price: np.ndarray, net_kw: np.ndarray) -> np.ndarray:
        """(..., K) commands at states of charge soc_kwh (kWh), this slot's price and net load,
        with the next slot's values (..., K, G): the highest value; idle on ties."""
        bought, delivered, charge_at, discharge_at = self._moves(soc_kwh[..., None], net_kw)
        p = price[..., None] / 1000.0
        idle = _at(next_values, self._interpolation(soc_kwh[..., None]))
        charge = _at(next_values, charge_at) - p * bought
        discharge = _at(next_values, discharge_at) + (p - self._wear) * delivered
        best = np.maximum(charge, discharge)
        return np.where(best > idle + 1e-9, np.where(charge >= discharge, CHARGE, DISCHARGE), IDLE)[..., 0]

    def _interpolation(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For states of charge x (..., K, n): the lower grid neighbour's index into values of the
        same leading axes (..., K, G) flattened, and the weights of the lower and upper neighbours."""
        u = (x - self._lo[:, None]) / self._step[:, None]
        i = np.clip(np.floor(u), 0, GRID_POINTS - 2).astype(np.int64)
        w = np.clip(u - i, 0.0, 1.0)
        rows = np.arange(x.size // x.shape[-1]).reshape(*x.shape[:-1], 1) * GRID_POINTS
        return rows + i, 1.0 - w, w


def _at(values: np.ndarray, where: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Values (..., K, G) linearly interpolated at `where` (flat index, weights) from `_interpolation`:
    one gather on the flattened values, which the backward pass does twice per slot."""
    i, w_below, w_above = where
    if i.shape[:-1] != values.shape[:-1]:  # flat indices address rows of these leading axes only
        raise ValueError(f"states of charge {i.shape} and values {values.shape} differ in their leading axes")
    flat = values.reshape(-1)
    return flat.take(i) * w_below + flat.take(i + 1) * w_above

"""Energy: each site's power over a slot, balanced against its renewables, battery and the grid.

IT power = GPUs x host power + busy GPUs x capped TDP + idle GPUs x idle power; facility power =
IT x PUE. Renewables feed the site first; the battery charges from surplus or grid and discharges
into the remaining load only; what is left is bought at the slot's price (surplus is curtailed).
Per-site scalars are plain Python, which is faster than numpy for a handful of numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from aigcsched.envs.datacenter.config import BATTERY_ACTIONS, DataCenterConfig

if TYPE_CHECKING:
    from aigcsched.envs.datacenter.inputs import EpisodeInputs

DISCHARGE, CHARGE = BATTERY_ACTIONS.index("discharge"), BATTERY_ACTIONS.index("charge")


class SiteInputs(NamedTuple):
    """One slot's inputs, per site."""

    pue: list[float]
    renewable_kw: list[float]
    price: list[float]  # USD/MWh
    grid_renewable: list[float]  # share of grid supply
    carbon: list[float]  # gCO2/kWh


def per_slot(inputs: EpisodeInputs) -> list[SiteInputs]:
    """An episode's inputs as plain-Python per-slot records."""
    columns = (inputs.pue, inputs.renewable_kw, inputs.price, inputs.grid_renewable, inputs.carbon)
    return [SiteInputs(*slot) for slot in zip(*(c.T.tolist() for c in columns), strict=True)]


class Energy(NamedTuple):
    """Per site over the slot: USD, kWh, kg."""

    cost: tuple[float, ...]
    wear: tuple[float, ...]  # battery degradation
    load_kwh: tuple[float, ...]
    bought_kwh: tuple[float, ...]
    renewable_kwh: tuple[float, ...]
    renewable_used_kwh: tuple[float, ...]
    grid_renewable_kwh: tuple[float, ...]
    carbon_kg: tuple[float, ...]
    charge_kwh: tuple[float, ...]
    discharge_kwh: tuple[float, ...]
    soc: tuple[float, ...]  # state of charge at the end, fraction of capacity


class EnergyBalance:
    def __init__(self, cfg: DataCenterConfig):
        k = cfg.n_asps
        self._h = cfg.slot_minutes / 60.0
        self._eta = float(np.sqrt(cfg.battery_efficiency))  # same loss charging and discharging
        self._gpus = [float(g) for g in cfg.n_gpus]
        self._host_w = [cfg.host_power_w] * k
        self._idle_w = list(cfg.gpu_idle_w)
        self._cap_w = [[c * p for c in cfg.power_cap_levels] for p in cfg.gpu_power_w]
        self._battery_kw = list(cfg.battery_kw)
        self._soc_min_kwh = [b * cfg.battery_soc_min for b in cfg.battery_kwh]
        self._soc_max_kwh = [b * cfg.battery_soc_max for b in cfg.battery_kwh]
        self._battery_kwh = np.maximum(np.asarray(cfg.battery_kwh, dtype=np.float64), 1e-12).tolist()
        self._wear = cfg.battery_wear_usd_per_kwh
        # for balance_batch: the same constants as arrays
        self._arrays = {
            name: np.asarray(getattr(self, name))
            for name in ("_gpus", "_host_w", "_idle_w", "_cap_w", "_battery_kw", "_soc_min_kwh", "_soc_max_kwh")
        }
        self._battery_kwh_arr = np.asarray(self._battery_kwh)

    def balance(self, inputs: SiteInputs, busy: list[float], cap: list, battery: list, soc_kwh: list[float]) -> Energy:
        """The slot's energy at each site, with `busy` GPUs at power cap level `cap` and battery
        command `battery` (BATTERY_ACTIONS index); updates `soc_kwh` in place."""
        h, eta = self._h, self._eta
        pue, ren, price = inputs.pue, inputs.renewable_kw, inputs.price
        rows = []
        for i in range(len(busy)):
            b, gpus = busy[i], self._gpus[i]
            it_kw = (gpus * self._host_w[i] + b * self._cap_w[i][cap[i]] + (gpus - b) * self._idle_w[i]) / 1000
            load = it_kw * pue[i]
            net = load - ren[i]
            soc = soc_kwh[i]
            charge = discharge = 0.0
            if battery[i] == CHARGE:
                charge = max(0.0, min(self._battery_kw[i], (self._soc_max_kwh[i] - soc) / (eta * h)))
            elif battery[i] == DISCHARGE:
                discharge = max(0.0, min(self._battery_kw[i], (soc - self._soc_min_kwh[i]) * eta / h, net))
            soc_kwh[i] = soc = soc + (charge * eta - discharge / eta) * h
            balance = net + charge - discharge
            bought = balance * h if balance > 0 else 0.0
            curtailed = -balance * h if balance < 0 else 0.0
            rows.append(
                (
                    bought * price[i] / 1000.0,
                    discharge * h * self._wear,
                    load * h,
                    bought,
                    ren[i] * h,
                    ren[i] * h - curtailed,
                    bought * inputs.grid_renewable[i],
                    bought * inputs.carbon[i] / 1000.0,
                    charge * h,
                    discharge * h,
                    soc / self._battery_kwh[i],
                )
            )
        return Energy(*zip(*rows, strict=True))

    def balance_batch(
        self, inputs: SiteInputs, busy: np.ndarray, cap: np.ndarray, battery: np.ndarray, soc_kwh: np.ndarray
    ) -> Energy:
        """`balance` for B episodes at once: every argument (B, K) arrays (inputs' fields too),
        `soc_kwh` updated in place. The same operations in the same order as `balance`, so the same
        numbers."""
        h, eta, a = self._h, self._eta, self._arrays
        gpus = a["_gpus"]
        cap_w = a["_cap_w"][np.arange(len(gpus)), cap]
        it_kw = (gpus * a["_host_w"] + busy * cap_w + (gpus - busy) * a["_idle_w"]) / 1000
        load = it_kw * inputs.pue
        net = load - inputs.renewable_kw
        soc = soc_kwh
        charge_kw = np.maximum(0.0, np.minimum(a["_battery_kw"], (a["_soc_max_kwh"] - soc) / (eta * h)))
        discharge_kw = np.maximum(
            0.0, np.minimum(np.minimum(a["_battery_kw"], (soc - a["_soc_min_kwh"]) * eta / h), net)
        )
        charge = np.where(battery == CHARGE, charge_kw, 0.0)
        discharge = np.where(battery == DISCHARGE, discharge_kw, 0.0)
        soc = soc + (charge * eta - discharge / eta) * h
        soc_kwh[:] = soc
        balance = net + charge - discharge
        bought = np.where(balance > 0, balance * h, 0.0)
        curtailed = np.where(balance < 0, -balance * h, 0.0)
        renewable = inputs.renewable_kw * h
        return Energy(
            bought * inputs.price / 1000.0,
            discharge * h * self._wear,
            load * h,
            bought,
            renewable,
            renewable - curtailed,
            bought * inputs.grid_renewable,
            bought * inputs.carbon / 1000.0,
            charge * h,
            discharge * h,
            soc / self._battery_kwh_arr,
        )

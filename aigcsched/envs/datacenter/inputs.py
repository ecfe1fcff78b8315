"""What the providers do not control: the traces a config names, and each episode's per-slot prices,
arrival rates, PUE and on-site renewable power derived from them."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from aigcsched.envs import physics
from aigcsched.envs.data import (
    REGIONS,
    RegionTraces,
    embedded_traces,
    embedded_workload,
    region_traces,
    resolve_data_dir,
    workload_trace,
)
from aigcsched.envs.datacenter.config import DataCenterConfig


def load_traces(cfg: DataCenterConfig) -> tuple[list[RegionTraces], np.ndarray]:
    """(traces of each provider's region, workload profile), hourly over a year, from where
    `data_dir` points (see `resolve_data_dir`)."""
    data_dir = resolve_data_dir(cfg.data_dir, cfg.regions, cfg.year, cfg.workload)
    if data_dir is None:
        return [embedded_traces(r) for r in cfg.regions], embedded_workload()
    traces = [region_traces(r, data_dir, cfg.year) for r in cfg.regions]
    return traces, workload_trace(cfg.workload, data_dir)


class EpisodeInputs(NamedTuple):
    """Per-slot inputs of one episode, (K, T) arrays over providers and slots unless noted (with
    the axes of the days in front for a batch of episodes)."""

    day: int | np.ndarray
    price: np.ndarray  # USD/MWh
    forecast: np.ndarray  # (K, T, F) price at each of forecast_hours ahead
    day_prices: np.ndarray  # (K, 24) the episode's first 24 hourly prices
    rate: np.ndarray  # mean arrivals per slot
    pue: np.ndarray
    renewable_kw: np.ndarray  # on-site PV + wind
    grid_renewable: np.ndarray  # renewable share of grid supply
    carbon: np.ndarray  # gCO2/kWh of grid supply
    local_hour: np.ndarray  # local standard time of day, hours


def episode_inputs(
    cfg: DataCenterConfig, traces: list[RegionTraces], workload: np.ndarray, day: int | np.ndarray
) -> EpisodeInputs:
    """The inputs of an episode starting at 00:00 UTC of `day`; slots past the year wrap around.
    With an array of days, every array gets their axes in front (one episode per day)."""
    slot_h = cfg.slot_minutes / 60.0
    t = np.arange(cfg.episode_slots)
    days = np.asarray(day)[..., None]
    hour_f = days * 24.0 + t * slot_h  # UTC hours since the start of the year
    hour = np.floor(hour_f).astype(np.int64)
    n_hours = len(workload)
    idx = hour % n_hours
    utc_offset = np.array([REGIONS[r].utc_offset_h for r in cfg.regions])
    price = np.stack([x.price[idx] for x in traces], axis=-2)
    fc = np.asarray(cfg.forecast_hours)
    forecast = np.stack([x.price[(hour[..., None] + fc) % n_hours] for x in traces], axis=-3)
    day_prices = np.stack([x.price[(days * 24 + np.arange(24)) % n_hours] for x in traces], axis=-2)
    # workload traces carry no time zone: read as each data center's local time
    local = (hour[..., None, :] + utc_offset[:, None]) % n_hours
    rate = np.asarray(cfg.base_rate)[:, None] * workload[local]
    temperature = np.stack([x.temperature[idx] for x in traces], axis=-2)
    pue = physics.pue(temperature, cfg.pue_min, cfg.pue_free_cooling_c, cfg.pue_slope_per_c)
    return EpisodeInputs(
        day=day,
        price=price,
        forecast=forecast,
        day_prices=day_prices,
        rate=rate,
        pue=pue,
        renewable_kw=renewable_kw(cfg, traces, hour_f),
        grid_renewable=np.stack([x.grid_renewable[idx] for x in traces], axis=-2),
        carbon=np.stack([x.carbon[idx] for x in traces], axis=-2),
        local_hour=(hour_f[..., None, :] + utc_offset[:, None]) % 24.0,
    )


def renewable_kw(cfg: DataCenterConfig, traces: list[RegionTraces], hour_f: np.ndarray) -> np.ndarray:
    """On-site PV + wind power (..., K, T) in the slots starting at `hour_f` (..., T), UTC hours since
    the start of the year: the sun at mid-slot, the weather of the slot's hour."""
    slot_h = cfg.slot_minutes / 60.0
    idx = np.floor(hour_f).astype(np.int64) % len(traces[0].cloud)
    lat = np.array([REGIONS[r].latitude for r in cfg.regions])[:, None]
    lon = np.array([REGIONS[r].longitude for r in cfg.regions])[:, None]
    mid_slot = hour_f[..., None, :] + slot_h / 2.0
    cos_z = physics.solar_cos_zenith(lat, lon, np.floor(mid_slot / 24.0) % 365, mid_slot % 24.0)
    cloud = np.stack([x.cloud[idx] for x in traces], axis=-2)
    ghi = physics.cloudy_ghi(physics.clear_sky_ghi(cos_z), cloud)
    pv = physics.pv_power_kw(ghi, np.asarray(cfg.pv_kwp)[:, None], cfg.pv_performance_ratio)
    wind_ms = np.stack([x.wind_kmh[idx] for x in traces], axis=-2) / 3.6
    hub = physics.hub_wind_speed(wind_ms, cfg.wind_hub_height_m, cfg.wind_shear_exponent)
    wind = physics.wind_power_kw(
        hub, np.asarray(cfg.wind_kw)[:, None], cfg.wind_cut_in_ms, cfg.wind_rated_ms, cfg.wind_cut_out_ms
    )
    return pv + wind

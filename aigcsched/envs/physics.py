"""Physical models of a data center site, vectorized with numpy: PV, wind, cooling overhead (PUE)."""

from __future__ import annotations

import numpy as np


def solar_cos_zenith(latitude_deg, longitude_deg, day_of_year, utc_hour) -> np.ndarray:
    """Cosine of the solar zenith angle (negative at night). Declination after Cooper (1969);
    local solar time from longitude (equation of time ignored: < 17 min)."""
    lat = np.radians(latitude_deg)
    decl = np.radians(23.44) * np.sin(2.0 * np.pi * (284.0 + np.asarray(day_of_year) + 1.0) / 365.0)
    solar_time = np.asarray(utc_hour) + np.asarray(longitude_deg) / 15.0
    hour_angle = np.radians(15.0 * (solar_time - 12.0))
    return np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)


def clear_sky_ghi(cos_zenith) -> np.ndarray:
    """Global horizontal irradiance under a clear sky (W/m2), Haurwitz (1945):
    1098 cos Z exp(-0.057 / cos Z)."""
    cz = np.asarray(cos_zenith, dtype=np.float64)
    safe = np.maximum(cz, 1e-3)
    return np.where(cz > 0.0, 1098.0 * safe * np.exp(-0.057 / safe), 0.0)


def cloudy_ghi(ghi_clear, cloud_fraction) -> np.ndarray:
    """Kasten and Czeplak (1980): GHI = GHI_clear * (1 - 0.75 * (N/8)^3.4), N cloud cover in oktas."""
    return np.asarray(ghi_clear) * (1.0 - 0.75 * np.asarray(cloud_fraction) ** 3.4)


def pv_power_kw(ghi, kwp, performance_ratio) -> np.ndarray:
    """PV output: rated kWp at 1000 W/m2 (standard test conditions) times the performance ratio."""
    return np.asarray(kwp) * np.asarray(ghi) / 1000.0 * performance_ratio


def hub_wind_speed(wind_10m_ms, hub_height_m, shear_exponent) -> np.ndarray:
    """Power-law wind profile v(h) = v10 (h / 10 m)^alpha (alpha = 1/7 over open terrain)."""
    return np.asarray(wind_10m_ms) * (hub_height_m / 10.0) ** shear_exponent


def wind_power_kw(speed_ms, rated_kw, cut_in, rated_speed, cut_out) -> np.ndarray:
    """Generic turbine power curve: 0 below cut-in, cubic up to rated speed, rated up to cut-out."""
    v = np.asarray(speed_ms, dtype=np.float64)
    ramp = (v**3 - cut_in**3) / (rated_speed**3 - cut_in**3)
    frac = np.where(v < cut_in, 0.0, np.where(v < rated_speed, ramp, np.where(v <= cut_out, 1.0, 0.0)))
    return np.asarray(rated_kw) * frac


def pue(temperature_c, pue_min, free_cooling_c, slope_per_c) -> np.ndarray:
    """Power usage effectiveness: pue_min while outside air cools for free, rising linearly with
    the outside temperature above that (chillers run)."""
    return pue_min + slope_per_c * np.maximum(0.0, np.asarray(temperature_c) - free_cooling_c)

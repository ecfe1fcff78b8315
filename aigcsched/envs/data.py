"""Hourly traces for the `datacenter` problem: loaders for the public formats, and embedded profiles.

Every trace is an array over the hours of one year, indexed by UTC hour (8760 values). Sources
(see `PUBLIC_FILES` for where each file lives):
- day-ahead prices (USD/MWh), standardized by HPE's green-dcc: `Datetime (UTC),Datetime (Local),
  Price (USD/MWh)`; negative prices and spikes are kept as they are;
- grid carbon intensity (gCO2/kWh) and renewable share (%), Electricity Maps via green-dcc;
- Open-Meteo hourly weather (local time, `utc_offset_seconds`): temperature, cloud cover, wind;
- cluster CPU load (fraction 0..1, one value per hour), Alibaba and Google traces via HPE's dc-rl.

Without files, `embedded_traces` repeats one typical day per region, calibrated to the 2023 files;
`resolve_data_dir` decides which a scenario reads.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from functools import lru_cache, wraps
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

HOURS_PER_YEAR = 8760


class DataError(ValueError):
    """A trace file is missing or not in the expected format; the message names the file."""


class Region(NamedTuple):
    zone: str  # Electricity Maps zone id, used in file names
    utc_offset_h: int  # standard time; embedded local-hour profiles are shifted by it
    latitude: float  # of the Open-Meteo grid point in the weather file
    longitude: float


REGIONS = {
    "CAISO": Region("US-CAL-CISO", -8, 37.43, -121.95),
    "PJM": Region("US-MIDA-PJM", -5, 39.96, -75.17),
    "ERCOT": Region("US-TEX-ERCO", -6, 32.79, -96.82),
    "NYISO": Region("US-NY-NYIS", -5, 40.74, -74.04),
}
WORKLOADS = ("alibaba", "google")


def _region(name: str) -> Region:
    if name not in REGIONS:
        raise DataError(f"unknown region {name!r}; choose from {', '.join(REGIONS)}")
    return REGIONS[name]


# Public origin of each file, relative to a base URL (raw GitHub), and its name in a data directory.
DEFAULT_BASE_URL = "https://raw.githubusercontent.com"
_GREEN_DCC = "HewlettPackard/green-dcc/main/data"
_DC_RL = "HewlettPackard/dc-rl/main/data/Workload"


def region_files(region: str, year: int = 2023) -> tuple[str, str, str]:
    """Paths in a data directory of a region's (prices, carbon intensity, weather) files."""
    z = _region(region).zone
    return f"electricity_prices/{z}_{year}.csv", f"carbon_intensity/{z}_{year}.csv", f"weather/{z}_{year}.json"


def workload_file(name: str) -> str:
    """Path in a data directory of a workload trace."""
    if name not in WORKLOADS:
        raise DataError(f"unknown workload trace {name!r}; choose from {', '.join(WORKLOADS)}")
    return f"workload/{name}_cpu_hourly_1.csv"


def public_files(year: int = 2023) -> dict[str, str]:
    """{path in a data directory: path under the base URL} for every trace file."""
    files = {}
    for name, r in REGIONS.items():
        z = r.zone
        prices, carbon, weather = region_files(name, year)
        files[prices] = f"{_GREEN_DCC}/electricity_prices/standardized/{z}/{year}/{z}_electricity_prices_{year}.csv"
        files[carbon] = f"{_GREEN_DCC}/carbon_intensity/{z}/{year}/{z}_{year}_hourly.csv"
        files[weather] = f"{_GREEN_DCC}/weather/{z}/{year}.json"
    files[workload_file("alibaba")] = f"{_DC_RL}/Alibaba_CPU_Data_Hourly_1.csv"
    files[workload_file("google")] = f"{_DC_RL}/GoogleClusteData_CPU_Data_Hourly_1.csv"
    return files


PUBLIC_FILES = public_files()


class RegionTraces(NamedTuple):
    """One region's hourly year, by UTC hour."""

    price: np.ndarray  # USD/MWh
    carbon: np.ndarray  # gCO2/kWh, direct
    grid_renewable: np.ndarray  # fraction 0..1 of grid supply
    temperature: np.ndarray  # deg C
    cloud: np.ndarray  # fraction 0..1
    wind_kmh: np.ndarray  # 10 m wind speed


# ---------------------------------------------------------------------------------------------
# Loaders


def _cached_by_file(loader: Callable) -> Callable:
    """Cache a loader's result per file, keyed by path, size and modification time."""

    @lru_cache(maxsize=32)
    def cached(path: Path, stamp: tuple[int, int]):
        return loader(path)

    @wraps(loader)
    def load(path: str | Path):
        path = Path(path)
        try:
            st = path.stat()
        except OSError:
            raise DataError(f"{path}: no such file") from None
        return cached(path, (st.st_size, st.st_mtime_ns))

    return load


def _read_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    import pandas as pd  # only where files are read: `import aigcsched.envs` stays light

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        df = pd.read_csv(path, keep_default_na=False)  # report "n/a" as written, not as NaN
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not a readable CSV ({str(e).splitlines()[0]})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(map(str, df.columns))}")
    return df


def _numeric(df: pd.DataFrame, column: str, path: Path, low: float = -np.inf, high: float = np.inf) -> np.ndarray:
    import pandas as pd

    values = pd.to_numeric(df[column], errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values) | (values < low) | (values > high))
    if bad.size:
        row = int(bad[0])
        bounds = f" in [{low}, {high}]" if np.isfinite(low) or np.isfinite(high) else ""
        raise DataError(
            f"{path}: column {column!r} row {row + 2}: {str(df[column].iloc[row])!r} is not a number"
            f"{bounds} ({bad.size} bad value(s))"
        )
    return values


def _hourly_utc(df: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """Row order by UTC time; checks one row per hour for a whole year."""
    import pandas as pd

    try:
        t = pd.to_datetime(df[column], utc=True, format="ISO8601")
    except (ValueError, TypeError) as e:
        raise DataError(f"{path}: column {column!r} is not a timestamp ({str(e).splitlines()[0]})") from None
    order = np.argsort(t.to_numpy(), kind="stable")
    steps = np.diff(t.to_numpy()[order]).astype("timedelta64[s]").astype(np.int64)
    if len(df) < HOURS_PER_YEAR or np.any(steps != 3600):
        raise DataError(f"{path}: expected >= {HOURS_PER_YEAR} consecutive hourly rows, got {len(df)}")
    return order[:HOURS_PER_YEAR]


@_cached_by_file
def load_prices(path: str | Path) -> np.ndarray:
    """Hourly day-ahead price (USD/MWh) by UTC hour; negative prices and spikes kept."""
    path = Path(path)
    df = _read_csv(path, ["Datetime (UTC)", "Price (USD/MWh)"])
    order = _hourly_utc(df, "Datetime (UTC)", path)
    return _readonly(_numeric(df, "Price (USD/MWh)", path)[order])


CARBON_COLUMN = "Carbon Intensity gCO₂eq/kWh (direct)"
RENEWABLE_COLUMN = "Renewable Percentage"


@_cached_by_file
def load_carbon(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(carbon intensity gCO2/kWh, grid renewable share 0..1) by UTC hour."""
    path = Path(path)
    df = _read_csv(path, ["Datetime (UTC)", CARBON_COLUMN, RENEWABLE_COLUMN])
    order = _hourly_utc(df, "Datetime (UTC)", path)
    carbon = _numeric(df, CARBON_COLUMN, path, 0.0)[order]
    renewable = _numeric(df, RENEWABLE_COLUMN, path, 0.0, 100.0)[order] / 100.0
    return _readonly(carbon), _readonly(renewable)


WEATHER_KEYS = ("temperature_2m", "cloudcover", "windspeed_10m")


@_cached_by_file
def load_weather(path: str | Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(temperature deg C, cloud cover 0..1, wind speed km/h at 10 m) by UTC hour, from an
    Open-Meteo response (hourly values in local time, `utc_offset_seconds` from UTC)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        doc = json.loads(path.read_text())
        hourly, offset_s = doc["hourly"], int(doc["utc_offset_seconds"])
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not JSON ({e})") from None
    except (KeyError, TypeError, ValueError):
        raise DataError(f"{path}: not an Open-Meteo response (needs 'hourly' and 'utc_offset_seconds')") from None
    out = []
    for key, low, high in zip(WEATHER_KEYS, (-90.0, 0.0, 0.0), (70.0, 100.0, 500.0), strict=True):
        if key not in hourly:
            raise DataError(f"{path}: hourly.{key} missing; found {', '.join(hourly)}")
        values = np.asarray(pd.to_numeric(pd.Series(hourly[key]), errors="coerce"), dtype=np.float64)
        if len(values) < HOURS_PER_YEAR:
            raise DataError(f"{path}: hourly.{key} has {len(values)} values, expected >= {HOURS_PER_YEAR}")
        bad = np.flatnonzero(~np.isfinite(values) | (values < low) | (values > high))
        if bad.size:
            raise DataError(f"{path}: hourly.{key}[{bad[0]}] = {hourly[key][bad[0]]!r} is not in [{low}, {high}]")
        # local index i is UTC hour i - offset: shift so that index = UTC hour
        out.append(_readonly(np.roll(values[:HOURS_PER_YEAR], -(offset_s // 3600))))
    temperature, cloud, wind = out
    return temperature, _readonly(cloud / 100.0), wind


@_cached_by_file
def load_workload(path: str | Path) -> np.ndarray:
    """Hourly cluster load (fraction 0..1), first year of the trace, normalized to mean 1.
    The traces carry no time zone; the env reads them as local time of each data center."""
    path = Path(path)
    df = _read_csv(path, ["cpu_load"])
    load = _numeric(df, "cpu_load", path, 0.0, 1.0)
    if len(load) < HOURS_PER_YEAR:
        raise DataError(f"{path}: {len(load)} hourly rows, expected >= {HOURS_PER_YEAR}")
    load = load[:HOURS_PER_YEAR]
    if load.mean() <= 0:
        raise DataError(f"{path}: cpu_load is zero throughout")
    return _readonly(load / load.mean())


def region_traces(region: str, data_dir: str | Path, year: int = 2023) -> RegionTraces:
    """A region's traces from a data directory laid out like `public_files` (e.g. `aigcsched data
    download`'s cache)."""
    d = Path(data_dir)
    prices, carbon_file, weather = region_files(region, year)
    price = load_prices(d / prices)
    carbon, renewable = load_carbon(d / carbon_file)
    temperature, cloud, wind = load_weather(d / weather)
    return RegionTraces(price, carbon, renewable, temperature, cloud, wind)


def workload_trace(name: str, data_dir: str | Path) -> np.ndarray:
    return load_workload(Path(data_dir) / workload_file(name))


# ---------------------------------------------------------------------------------------------
# Which traces a scenario reads

EMBEDDED = "embedded"  # data_dir value that asks for the embedded typical days, whatever is downloaded
_announced: set[str] = set()


def default_data_dir() -> Path:
    """$AIGCSCHED_DATA_DIR, else ~/.cache/aigcsched/data: where `aigcsched data download` puts the traces."""
    env = os.environ.get("AIGCSCHED_DATA_DIR")
    return Path(env) if env else Path.home() / ".cache" / "aigcsched" / "data"


def resolve_data_dir(data_dir: str | Path | None, regions: Sequence[str], year: int, workload: str) -> Path | None:
    """The directory to read traces from, or None for the embedded typical days. `data_dir` None:
    the download cache if it holds every file the scenario needs, else the embedded days (one
    line on stderr, once per process, says which); EMBEDDED: the embedded days; else data_dir."""
    if data_dir is not None:
        return None if data_dir == EMBEDDED else Path(data_dir)
    cache = default_data_dir()
    needed = [f for r in regions for f in region_files(r, year)] + [workload_file(workload)]
    missing = [f for f in needed if not (cache / f).is_file()]
    shown = _shown(cache)
    if not missing:
        _announce(f"datacenter: using the traces in {shown} (data_dir: {EMBEDDED} for the embedded typical days)")
        return cache
    fetch = "`aigcsched data download` fetches them"
    if len(missing) == len(needed):
        where = f"no traces in {shown} ({fetch})"
    else:
        where = f"{len(missing)} of {len(needed)} trace files missing in {shown} ({missing[0]}, ...; {fetch})"
    _announce(f"datacenter: {where}; using the embedded typical days")
    return None


def _shown(path: Path) -> str:
    try:
        return f"~/{path.relative_to(Path.home())}"
    except ValueError:
        return str(path)


def _announce(message: str) -> None:
    # envs are built many times per process (vector envs, evaluation): say it once
    if message not in _announced:
        _announced.add(message)
        print(message, file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# Embedded profiles: one typical day per region, by local standard hour 0..23.
# Values are space-separated, hours 0..23. Each is the hour-of-day mean of the 2023 file of that
# region (prices and grid mix by UTC hour shifted to standard time; weather in the file's own
# local time), rounded.

_PROFILES: dict[str, dict[str, str]] = {
    # CAISO 2023: price mean 61.5, median 53.8, min -19 (149 negative hours), max 1046 USD/MWh.
    # The file's daily shape peaks at 01-03 local and bottoms at 18-21, unlike the usual duck
    # curve; the profile keeps the file's shape.
    "CAISO": {
        "price": "74 91 93 84 76 70 66 62 59 57 57 59 64 65 62 58 52 47 45 44 43 45 48 57",
        "carbon": "232 232 232 232 235 230 207 174 148 137 134 133 131 131 136 152 181 209 228 232 232 233 233 233",
        "grid_renewable": "33 33 33 33 33 35 42 50 56 59 59 60 60 60 59 55 50 45 41 39 38 36 34 34",
        "temperature": "12.6 12.2 11.8 11.5 11.2 11.4 11.1 11.1 11.5 12.6 14.4 16.4 "
        "18.1 19.5 20.4 20.6 20.3 19.5 18 16.4 15.1 14.2 13.6 13.1",
        "cloud": "46 50 52 53 57 59 64 66 64 59 52 46 41 40 41 39 41 39 41 40 39 38 41 45",
        "wind_kmh": "6.8 6.5 6.4 6.3 6.3 6.1 6.4 6.2 5.9 6.1 7 8.6 "
        "10.3 12.3 14.5 16.4 17.5 15.7 15.2 13.1 10.8 9.3 8.1 7.3",
    },
    # PJM 2023: price mean 35.7, median 29.2, min -3.3, max 460 USD/MWh; evening peak.
    "PJM": {
        "price": "41 36 32 28 26 24 22 22 24 28 32 35 37 35 34 37 40 40 42 45 50 52 51 47",
        "carbon": "315 312 310 311 312 316 319 321 321 321 321 322 321 321 321 322 325 329 332 334 335 333 328 321",
        "grid_renewable": "5 5 5 5 5 5 6 7 7 8 8 8 8 9 9 9 8 8 7 7 6 6 5 5",
        "temperature": "11.9 11.6 11.2 10.8 10.5 10.3 10.1 10.3 11.3 12.8 14.3 15.7 "
        "16.9 17.9 18.5 18.8 18.7 18.2 17.1 15.9 14.3 13.7 12.9 12.4",
        "cloud": "51 50 50 50 53 53 53 55 54 57 57 56 59 61 61 63 63 61 57 55 51 53 53 52",
        "wind_kmh": "10.6 10.5 10.4 10.2 10.1 9.9 9.9 9.9 10 10.6 11 11.6 "
        "12.4 13.1 13.8 14.4 14.6 13.9 12.9 11.7 10.8 10.8 10.6 10.7",
    },
    # ERCOT 2023: price mean 55.9, median 22.8, max 4112 USD/MWh; summer-evening scarcity
    # spikes make the 14-19 h means several times the median.
    "ERCOT": {
        "price": "20 18 17 17 19 22 26 26 23 21 22 24 32 51 85 122 141 159 188 157 74 31 24 22",
        "carbon": "300 298 300 305 314 327 334 322 300 294 297 300 301 303 304 306 318 344 361 360 348 334 322 309",
        "grid_renewable": "35 35 34 33 31 30 29 31 36 37 37 36 36 36 36 35 33 28 25 25 27 30 32 34",
        "temperature": "18.9 18.4 18 17.6 17.3 16.9 16.6 16.5 16.7 17.9 19.5 21 "
        "22.5 23.6 24.5 25 25.2 25.1 24.4 22.8 21.6 20.6 19.9 19.3",
        "cloud": "45 43 44 45 48 48 46 46 56 53 54 51 53 52 50 51 51 47 46 46 50 50 47 46",
        "wind_kmh": "14.5 14.2 14.1 14.1 13.9 13.3 12.9 12.6 13 13.5 13.8 14.2 "
        "15.2 15.7 15.9 16 16 15.9 15 12.9 13.3 13.8 14.1 14.4",
    },
    # NYISO 2023: price mean 36.4, median 30.8, min -1, max 447 USD/MWh.
    "NYISO": {
        "price": "46 40 35 33 30 29 28 27 27 29 32 35 37 37 35 35 35 35 36 39 44 48 52 52",
        "carbon": "201 198 196 196 199 204 208 211 213 212 212 211 211 211 212 215 217 219 220 220 218 214 210 205",
        "grid_renewable": "26 26 26 26 26 26 27 27 27 28 28 28 28 28 28 28 28 28 28 28 27 27 26 26",
        "temperature": "11.2 10.8 10.4 10.1 9.8 9.6 9.4 9.7 10.6 12 13.5 14.8 "
        "15.9 16.6 17 17.2 17 16.4 15.2 14.1 13 12.6 12.1 11.6",
        "cloud": "52 52 52 51 52 53 55 55 55 57 59 59 62 64 63 63 61 60 58 54 54 54 56 54",
        "wind_kmh": "11.5 11.5 11.5 11.4 11.3 11.1 11.1 11.2 10.8 11.4 11.9 12.7 "
        "13.8 14.7 15.8 16.7 16.8 15.9 15 13.6 11.6 11.7 11.7 11.6",
    },
}

# Hour-of-day mean of the Google cluster trace (2019, via dc-rl) over its mean: a mild diurnal
# swing (0.93..1.07); its whole year has peak/mean 1.38.
WORKLOAD_PROFILE = (
    "1.07 1.06 0.99 0.96 0.93 0.95 0.93 0.93 0.95 0.95 0.96 0.97 "
    "0.98 1.03 1.02 1.03 1.01 1.03 1.03 1.02 1.05 1.03 1.03 1.04"
)


def embedded_traces(region: str) -> RegionTraces:
    """A region's typical day repeated over the year, by UTC hour."""
    r = _region(region)
    if region not in _PROFILES:
        raise DataError(f"no embedded profile for region {region!r}; give a data directory")
    p = _PROFILES[region]

    def year(values, scale=1.0):
        day = np.array(values.split(), dtype=np.float64) * scale
        # local hour h is UTC hour h - offset
        return _readonly(np.roll(np.tile(day, 365), -r.utc_offset_h))

    return RegionTraces(
        year(p["price"]),
        year(p["carbon"]),
        year(p["grid_renewable"], 0.01),
        year(p["temperature"]),
        year(p["cloud"], 0.01),
        year(p["wind_kmh"]),
    )


def embedded_workload() -> np.ndarray:
    """The typical day repeated over the year, by local hour, mean 1."""
    day = np.array(WORKLOAD_PROFILE.split(), dtype=np.float64)
    return _readonly(np.tile(day / day.mean(), 365))


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a

"""Trace files in the public formats for tests (a year of hourly rows): constant ones, and a
synthetic year of every public file drawn from the 2023 files' statistics (`typical_year`)."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from aigcsched.envs.data import CARBON_COLUMN, REGIONS, RENEWABLE_COLUMN

HOURS = 8760
YEAR = 2023
STATS = Path(__file__).parent / "fixtures" / "trace_stats.json"
MONTH_OF_DAY = np.repeat(np.arange(12), [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def write_traces(
    root: Path,
    regions=("CAISO", "PJM"),
    price=40.0,
    temperature=10.0,
    cloud=100.0,
    wind_kmh=36.0,
    carbon=200.0,
    renewable_pct=50.0,
    cpu_load=0.5,
) -> Path:
    """Constant traces (each value may also be an array of 8760 hourly values) for `regions`."""
    utc = pd.date_range("2023-01-01", periods=HOURS, freq="h", tz="UTC")
    stamp = utc.strftime("%Y-%m-%d %H:%M:%S+00:00")
    for name in regions:
        zone = REGIONS[name].zone
        (root / "electricity_prices").mkdir(parents=True, exist_ok=True)
        pd.DataFrame(
            {
                "Datetime (UTC)": stamp,
                "Datetime (Local)": stamp,
                "Price (USD/MWh)": np.broadcast_to(price, HOURS),
            }
        ).to_csv(root / "electricity_prices" / f"{zone}_2023.csv", index=False)
        (root / "carbon_intensity").mkdir(parents=True, exist_ok=True)
        pd.DataFrame(
            {
                "Datetime (UTC)": utc.strftime("%Y-%m-%d %H:%M:%S"),
                "Zone Id": zone,
                CARBON_COLUMN: np.broadcast_to(carbon, HOURS),
                RENEWABLE_COLUMN: np.broadcast_to(renewable_pct, HOURS),
            }
        ).to_csv(root / "carbon_intensity" / f"{zone}_2023.csv", index=False)
        (root / "weather").mkdir(parents=True, exist_ok=True)
        hourly = {
            "time": list(utc.strftime("%Y-%m-%dT%H:%M")),
            "temperature_2m": np.broadcast_to(temperature, HOURS).tolist(),
            "cloudcover": np.broadcast_to(cloud, HOURS).tolist(),
            "windspeed_10m": np.broadcast_to(wind_kmh, HOURS).tolist(),
        }
        doc = {"utc_offset_seconds": 0, "hourly": hourly}
        (root / "weather" / f"{zone}_2023.json").write_text(json.dumps(doc))
    (root / "workload").mkdir(parents=True, exist_ok=True)
    for trace in ("alibaba", "google"):
        pd.DataFrame({"cpu_load": np.broadcast_to(cpu_load, HOURS)}).to_csv(
            root / "workload" / f"{trace}_cpu_hourly_1.csv"
        )
    return root


@functools.cache
def fixture_traces() -> Path:
    """`typical_year` in a temporary directory, written once per test process (tests only read it)."""
    root = Path(tempfile.mkdtemp(prefix="aigcsched-traces-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return typical_year(root)


def typical_year(root: Path, seed: int = 0) -> Path:
    """Every public trace file, laid out and formatted as `aigcsched data download` writes them, with
    values drawn from fixtures/trace_stats.json: in each (month, hour) cell, shifted lognormal
    values with the cell's mean (exactly), standard deviation and minimum, so that prices keep
    their negative hours and spikes; clipped to the column's maximum."""
    for local, spec in json.loads(STATS.read_text())["files"].items():
        path = root / local
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng([seed, zlib.crc32(local.encode())])
        if local.endswith(".json"):
            _write_weather(path, spec, rng)
        else:
            _write_csv(path, spec, rng)
    return root


def _draw(column: dict, n: int, rng: np.random.Generator) -> np.ndarray:
    i = np.arange(n)
    cell = MONTH_OF_DAY[(i // 24) % 365] * 24 + i % 24
    low = np.asarray(column["min"])
    excess = np.asarray(column["mean"]) - low  # mean over the minimum, per cell
    s2 = np.log1p((np.asarray(column["std"]) / np.maximum(excess, 1e-12)) ** 2)
    y = np.exp(np.sqrt(s2)[cell] * rng.standard_normal(n) - s2[cell] / 2)
    y *= (excess / (np.bincount(cell, y, minlength=288) / np.bincount(cell, minlength=288)))[cell]
    values = np.minimum(low[cell] + y, column["max"]).round(column["decimals"])
    return values.astype(np.int64) if column["decimals"] == 0 else values


def _write_csv(path: Path, spec: dict, rng: np.random.Generator) -> None:
    n = spec["rows"]
    utc = pd.date_range(f"{YEAR}-01-01", periods=n, freq="h", tz="UTC")
    columns, index = {}, None
    for name, column in spec["columns"].items():
        if "index_start" in column:
            index = pd.RangeIndex(column["index_start"], column["index_start"] + n)
        elif column.get("time") == "utc":
            columns[name] = utc.strftime("%Y-%m-%d %H:%M:%S+00:00")
        elif column.get("time") == "utc_naive":
            columns[name] = utc.strftime("%Y-%m-%d %H:%M:%S")
        elif column.get("time") == "local":
            columns[name] = [t.isoformat(sep=" ") for t in utc.tz_convert(column["timezone"])]
        elif "value" in column:
            columns[name] = [column["value"]] * n
        else:
            columns[name] = _draw(column, n, rng)
    pd.DataFrame(columns, index=index).to_csv(path, index=index is not None)


def _write_weather(path: Path, spec: dict, rng: np.random.Generator) -> None:
    n = spec["rows"]
    hourly = {}
    for name, column in spec["hourly"].items():
        if column.get("time") == "local_naive":
            hourly[name] = list(pd.date_range(f"{YEAR}-01-01", periods=n, freq="h").strftime("%Y-%m-%dT%H:%M"))
        else:
            hourly[name] = _draw(column, n, rng).tolist()
    path.write_text(json.dumps({**spec["meta"], "hourly": hourly}, indent=4))

"""Write small trace files in the public formats, for tests (a year of hourly rows)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from aigcsched.envs.data import CARBON_COLUMN, REGIONS, RENEWABLE_COLUMN

HOURS = 8760
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


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

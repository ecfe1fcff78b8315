import json

import numpy as np
import pandas as pd
import pytest
from trace_files import SHARED_DATA, write_traces

from aigcsched.envs import data, physics
from aigcsched.envs.data import DataError


def test_loaders_read_the_shared_traces():
    caiso = data.region_traces("CAISO", SHARED_DATA)
    ercot = data.region_traces("ERCOT", SHARED_DATA)
    for trace in caiso:
        assert trace.shape == (8760,) and np.isfinite(trace).all()
    assert (caiso.price < 0).sum() == 149  # negative prices are kept (data README)
    assert ercot.price.max() > 4000  # and so are spikes
    assert 0 <= caiso.grid_renewable.min() and caiso.grid_renewable.max() <= 1
    assert 0 <= caiso.cloud.min() and caiso.cloud.max() <= 1
    # weather is local time in the file; by UTC hour, California is warmest around 22-23 UTC
    by_hour = caiso.temperature.reshape(365, 24).mean(axis=0)
    assert by_hour.argmax() in (21, 22, 23, 0)
    for name in data.WORKLOADS:
        load = data.workload_trace(name, SHARED_DATA)
        assert load.shape == (8760,) and load.mean() == pytest.approx(1.0)


def test_embedded_profiles_are_calibrated_to_the_files():
    for region in data.REGIONS:
        files, embedded = data.region_traces(region, SHARED_DATA), data.embedded_traces(region)
        assert embedded.price.mean() == pytest.approx(files.price.mean(), rel=0.01)
        assert embedded.temperature.mean() == pytest.approx(files.temperature.mean(), abs=0.1)
        # the same hour of day is cheapest / dearest
        day_files = files.price.reshape(365, 24).mean(axis=0)
        assert embedded.price[:24].argmax() == day_files.argmax()
    assert data.embedded_workload().mean() == pytest.approx(1.0)


def test_public_files_cover_every_region_and_kind():
    paths = data.PUBLIC_FILES
    assert len(paths) == 4 * 3 + 2
    assert paths["electricity_prices/US-TEX-ERCO_2023.csv"].endswith(
        "standardized/US-TEX-ERCO/2023/US-TEX-ERCO_electricity_prices_2023.csv"
    )
    assert all((SHARED_DATA / p).is_file() for p in paths)  # the shared copy has the same layout


def _price_file(path, **columns):
    utc = pd.date_range("2023-01-01", periods=8760, freq="h", tz="UTC").strftime("%Y-%m-%d %H:%M:%S+00:00")
    df = pd.DataFrame({"Datetime (UTC)": utc, "Price (USD/MWh)": 30.0, **columns})
    df.to_csv(path, index=False)
    return df


def test_malformed_prices_are_rejected_clearly(tmp_path):
    bad = tmp_path / "p.csv"
    df = _price_file(bad).astype({"Price (USD/MWh)": object})
    df.loc[5, "Price (USD/MWh)"] = "n/a"
    df.to_csv(bad, index=False)
    with pytest.raises(DataError, match=r"p.csv: column 'Price \(USD/MWh\)' row 7: 'n/a' is not a number"):
        data.load_prices(bad)
    df.drop(columns="Price (USD/MWh)").to_csv(tmp_path / "q.csv", index=False)
    with pytest.raises(DataError, match=r"q.csv: missing column\(s\) Price \(USD/MWh\)"):
        data.load_prices(tmp_path / "q.csv")
    df.iloc[:100].to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(DataError, match="expected >= 8760 consecutive hourly rows, got 100"):
        data.load_prices(tmp_path / "short.csv")
    with pytest.raises(DataError, match="no such file"):
        data.load_prices(tmp_path / "missing.csv")


def test_malformed_weather_carbon_and_workload_are_rejected_clearly(tmp_path):
    root = write_traces(tmp_path, regions=("PJM",))
    weather = root / "weather" / "US-MIDA-PJM_2023.json"
    doc = json.loads(weather.read_text())
    doc["hourly"]["cloudcover"][10] = 180
    weather.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"hourly.cloudcover\[10\] = 180 is not in \[0.0, 100.0\]"):
        data.load_weather(weather)
    weather.write_text("{not json")
    with pytest.raises(DataError, match="not JSON"):
        data.load_weather(weather)
    weather.write_text(json.dumps({"hourly": {}}))
    with pytest.raises(DataError, match="not an Open-Meteo response"):
        data.load_weather(weather)
    carbon = root / "carbon_intensity" / "US-MIDA-PJM_2023.csv"
    df = pd.read_csv(carbon)
    df.loc[3, data.RENEWABLE_COLUMN] = 140
    df.to_csv(carbon, index=False)
    with pytest.raises(DataError, match="'Renewable Percentage' row 5: '140.0' is not a number in"):
        data.load_carbon(carbon)
    workload = root / "workload" / "google_cpu_hourly_1.csv"
    workload.write_text("x,y\n1,2\n")
    with pytest.raises(DataError, match="missing column"):
        data.load_workload(workload)
    with pytest.raises(DataError, match="unknown region 'MARS'"):
        data.region_traces("MARS", root)


def test_env_reports_a_bad_data_dir_clearly(tmp_path):
    from aigcsched.envs import DataCenterEnv

    with pytest.raises(DataError, match="US-CAL-CISO_2023.csv: no such file"):
        DataCenterEnv(data_dir=str(tmp_path))


def test_pv_wind_and_pue_models():
    noon = physics.solar_cos_zenith(0.0, 0.0, 80, 12.0)  # equator, equinox, solar noon
    assert noon == pytest.approx(1.0, abs=0.01)
    assert physics.solar_cos_zenith(40.0, 0.0, 172, 0.0) < 0  # midnight
    ghi = physics.clear_sky_ghi(1.0)
    assert ghi == pytest.approx(1098 * np.exp(-0.057))
    assert physics.cloudy_ghi(ghi, 1.0) == pytest.approx(0.25 * ghi)
    assert physics.pv_power_kw(1000.0, 10.0, 0.8) == pytest.approx(8.0)
    speeds = np.array([2.0, 3.0, 12.0, 20.0, 26.0])
    assert physics.wind_power_kw(speeds, 100.0, 3.0, 12.0, 25.0).tolist() == [0.0, 0.0, 100.0, 100.0, 0.0]
    assert physics.hub_wind_speed(5.0, 80.0, 1 / 7) == pytest.approx(5.0 * 8 ** (1 / 7))
    assert physics.pue(np.array([10.0, 28.0]), 1.1, 18.0, 0.01).tolist() == pytest.approx([1.1, 1.2])

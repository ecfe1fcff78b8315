import json
import shutil

import numpy as np
import pandas as pd
import pytest
from trace_files import fixture_traces, write_traces

from aigcsched.envs import DataCenterEnv, data, physics
from aigcsched.envs.data import DataError


def test_loaders_read_the_public_formats():
    root = fixture_traces()
    caiso = data.region_traces("CAISO", root)
    ercot = data.region_traces("ERCOT", root)
    for trace in caiso:
        assert trace.shape == (8760,) and np.isfinite(trace).all()
    written = pd.read_csv(root / "electricity_prices" / "US-CAL-CISO_2023.csv")["Price (USD/MWh)"]
    assert 100 < (caiso.price < 0).sum() == (written < 0).sum()  # negative prices are kept (149 h in 2023)
    assert ercot.price.max() > 4000  # and so are spikes
    assert 0 <= caiso.grid_renewable.min() and caiso.grid_renewable.max() <= 1
    assert 0 <= caiso.cloud.min() and caiso.cloud.max() <= 1
    # weather is local time in the file; by UTC hour, California is warmest around 22-23 UTC
    by_hour = caiso.temperature.reshape(365, 24).mean(axis=0)
    assert by_hour.argmax() in (21, 22, 23, 0)
    for name in data.WORKLOADS:
        load = data.workload_trace(name, root)
        assert load.shape == (8760,) and load.mean() == pytest.approx(1.0)


def test_embedded_profiles_are_calibrated_to_the_files():
    # the fixture keeps each (month, hour) mean of the 2023 files
    for region in data.REGIONS:
        files, embedded = data.region_traces(region, fixture_traces()), data.embedded_traces(region)
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
    assert all((fixture_traces() / p).is_file() for p in paths)  # the test fixture has the same layout


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
    with pytest.raises(DataError, match="US-CAL-CISO_2023.csv: no such file"):
        DataCenterEnv(data_dir=str(tmp_path))


@pytest.fixture
def announced(monkeypatch):
    """A fresh process's view: nothing said yet about where traces come from."""
    monkeypatch.setattr(data, "_announced", set())


def test_unset_data_dir_reads_the_download_cache_else_the_embedded_days(tmp_path, monkeypatch, capsys, announced):
    def prices(**config):
        env = DataCenterEnv(day=100, episode_slots=24, **config)
        env.reset(seed=0)
        while env.agents:
            env.step({a: np.zeros(5, dtype=int) for a in env.agents})
        return env.ledger["price"]

    embedded = prices(data_dir="embedded")
    assert capsys.readouterr().err == ""  # asked for: nothing to say
    monkeypatch.setenv("AIGCSCHED_DATA_DIR", str(tmp_path))  # empty
    np.testing.assert_array_equal(prices(), embedded)
    np.testing.assert_array_equal(prices(), embedded)
    assert capsys.readouterr().err == (  # one line, once
        f"datacenter: no traces in {tmp_path} (`aigcsched data download` fetches them); "
        "using the embedded typical days\n"
    )

    monkeypatch.setenv("AIGCSCHED_DATA_DIR", str(fixture_traces()))
    np.testing.assert_array_equal(prices(), prices(data_dir=str(fixture_traces())))
    assert (
        capsys.readouterr().err
        == f"datacenter: using the traces in {fixture_traces()} (data_dir: embedded for the embedded typical days)\n"
    )
    np.testing.assert_array_equal(prices(data_dir="embedded"), embedded)  # pinned, whatever is downloaded


def test_an_incomplete_download_cache_is_named_and_not_read(tmp_path, monkeypatch, capsys, announced):
    for local in data.PUBLIC_FILES:
        if local != "weather/US-TEX-ERCO_2023.json":
            (tmp_path / local).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(fixture_traces() / local, tmp_path / local)
    monkeypatch.setenv("AIGCSCHED_DATA_DIR", str(tmp_path))
    assert data.resolve_data_dir(None, ("CAISO", "PJM"), 2023, "google") == tmp_path  # all they need
    assert data.resolve_data_dir(None, ("CAISO", "PJM", "ERCOT"), 2023, "google") is None
    assert capsys.readouterr().err.splitlines()[1] == (
        f"datacenter: 1 of 10 trace files missing in {tmp_path} (weather/US-TEX-ERCO_2023.json, ...; "
        "`aigcsched data download` fetches them); using the embedded typical days"
    )
    assert data.resolve_data_dir(str(tmp_path), ("ERCOT", "PJM"), 2023, "google") == tmp_path  # given: as it is
    with pytest.raises(DataError, match="US-TEX-ERCO_2023.json: no such file"):
        DataCenterEnv(data_dir=str(tmp_path))


def test_the_download_cache_is_in_the_home_cache_unless_set(tmp_path, monkeypatch, capsys, announced):
    monkeypatch.delenv("AIGCSCHED_DATA_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.default_data_dir() == tmp_path / ".cache" / "aigcsched" / "data"
    assert data.resolve_data_dir(None, ("CAISO", "PJM"), 2023, "google") is None
    assert capsys.readouterr().err.startswith("datacenter: no traces in ~/.cache/aigcsched/data (`aigcsched data")


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

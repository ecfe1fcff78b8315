"""The `datacenter` endpoint: each provider's slot state in (queues, prices, battery, weather),
each provider's action out, in named fields.

A body is the state `DataCenterEnv` shows its agents before a slot: the observations are built by
the env's own `Observations` (and look-ahead plan) from it, and `DataCenterState` for the
heuristics. A provider's constants (GPUs, model speed, power, battery size: its `site`) are the
scenario's: a registered model's training scenario; for a heuristic, the sites the body gives (any
provider count), else the default scenario's three. The deadline classes and price forecasts are
the scenario's (the default one for a heuristic).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aigcsched.algorithms.datacenter_heuristics import DATACENTER_HEURISTICS, make_datacenter_heuristic
from aigcsched.envs import physics
from aigcsched.envs.data import REGIONS
from aigcsched.envs.datacenter import BATTERY_ACTIONS, DataCenterConfig, DataCenterState
from aigcsched.envs.datacenter.config import make_config
from aigcsched.envs.datacenter.deadlines import due_places, jobs_due
from aigcsched.envs.datacenter.env import per_job_at_full_power
from aigcsched.envs.datacenter.inputs import EpisodeInputs
from aigcsched.envs.datacenter.lookahead import PLANNED, PLANS, plan_one_hot
from aigcsched.envs.datacenter.observation import Observations
from aigcsched.platform.errors import ConfigError
from aigcsched.platform.problems.serving import STRICT, BodyError, Decided, Ident, ProblemServing, finite, unique_ids

MAX_PROVIDERS = 16
MAX_JOBS = 10**9
MAX_GPUS = 1e7
MAX_KW = 1e7
# Wholesale prices: ERCOT's offer cap is 5,000 USD/MWh; negative prices pay the buyer.
Price = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-1e4, le=1e5)]
Jobs = Annotated[int, Field(strict=True, ge=0, le=MAX_JOBS)]
HOURS_PER_DAY = 24


def _example(pid: str, queue: list[int], busy: float, price: float, hour: float, last: int, expected: float) -> dict:
    day = [round(price * f, 1) for f in (0.8,) * 7 + (1.1,) * 10 + (1.5,) * 4 + (0.9,) * 3]  # price: below the median
    return {
        "id": pid,
        "queue": {"by_class": queue, "late": 0},
        "busy_gpus": busy,
        "battery_soc": 0.5,
        "prices": {
            "now_usd_mwh": price,
            "ahead_usd_mwh": [round(price * f, 1) for f in (1.1, 1.3, 1.5)],
            "day_usd_mwh": day,
        },
        "weather": {"temperature_c": 24.0, "renewable_kw": 14.2},
        "local_hour": hour,
        "arrivals": {"last_slot": last, "expected": expected},
    }


EXAMPLE = {
    "slot_of_day": 120,  # 10:00 in the day of day_usd_mwh
    "providers": [
        _example("caiso", [1200, 400, 150], 16.5, 38.5, 10.0, 2650, 2700.0),
        _example("pjm", [700, 240, 90], 19.0, 52.0, 13.0, 1400, 1450.0),
        _example("ercot", [1600, 520, 300], 32.0, 61.0, 12.0, 1500, 1480.0),
    ],
}


class ProviderQueue(BaseModel):
    """Jobs waiting at the provider's data center."""

    model_config = STRICT
    by_class: list[Jobs] = Field(
        min_length=1, max_length=64, description="jobs waiting, not yet late, per deadline class (scenario order)"
    )
    late: Jobs = Field(0, description="jobs waiting past their deadline")


class ProviderPrices(BaseModel):
    """The provider's grid region's day-ahead prices, USD/MWh."""

    model_config = STRICT
    now_usd_mwh: Price = Field(description="this slot's price")
    ahead_usd_mwh: list[Price] = Field(
        max_length=64, description="price at each of the scenario's forecast hours ahead (default 1, 2, 4 h)"
    )
    day_usd_mwh: list[Price] = Field(
        min_length=HOURS_PER_DAY, max_length=HOURS_PER_DAY, description="the day's 24 hourly prices"
    )


class ProviderWeather(BaseModel):
    model_config = STRICT
    temperature_c: float = finite(ge=-90, le=70, description="outside temperature (sets the PUE)")
    renewable_kw: float = finite(ge=0, le=MAX_KW, description="on-site PV + wind power now")


class ProviderArrivals(BaseModel):
    model_config = STRICT
    last_slot: Jobs = Field(description="jobs that arrived at the provider in the last slot")
    expected: float = finite(ge=0, le=MAX_JOBS, description="mean jobs expected this slot")


class ProviderSite(BaseModel):
    """The provider's data center: the constants a slot's decision depends on (the scenario's
    per-provider entries of the same names)."""

    model_config = ConfigDict(**STRICT, frozen=True)  # frozen: hashable, a scenario's cache key
    n_gpus: int = Field(strict=True, ge=1, le=10**6, description="GPUs in the data center")
    sec_per_step: float = finite(ge=1e-4, le=100, description="GPU seconds per inference step of its model")
    gpu_power_w: float = finite(ge=1, le=1e4, description="power of a busy GPU, W")
    gpu_idle_w: float = finite(ge=0, le=1e4, description="power of an idle GPU, W (at most gpu_power_w)")
    quality_max: float = finite(gt=0, le=1, description="its model's quality ceiling (e.g. GenEval score)")
    # bounded so that the quality sigmoid exp(-(steps - mid) / scale) stays finite
    quality_mid_steps: float = finite(ge=0, le=200, description="inference steps at half the quality ceiling")
    quality_scale_steps: float = finite(ge=0.5, le=100, description="width of the quality curve, steps")
    battery_kwh: float = finite(ge=0, le=MAX_KW, description="battery capacity, kWh (0: none)")

    @model_validator(mode="after")
    def _check(self) -> ProviderSite:
        if self.gpu_idle_w > self.gpu_power_w:
            raise ValueError("gpu_idle_w must not exceed gpu_power_w")
        return self


SITE_FIELDS = tuple(ProviderSite.model_fields)


class Provider(BaseModel):
    """An AIGC service provider's data center before the slot."""

    model_config = STRICT
    id: Ident
    queue: ProviderQueue
    busy_gpus: float = finite(ge=0, le=MAX_GPUS, description="GPUs busy over the last slot (GPU-equivalents)")
    battery_soc: float = finite(ge=0, le=1, description="battery state of charge, share of capacity")
    prices: ProviderPrices
    weather: ProviderWeather
    local_hour: float = finite(ge=0, lt=HOURS_PER_DAY, description="local time of day, hours")
    arrivals: ProviderArrivals
    net_load_kw: float | None = finite(
        None,
        ge=-MAX_KW,
        le=MAX_KW,
        description="its facility load less on-site renewables, kW, mean over the last 4 hours (48 slots): what "
        "planned_handoff's and pooled_handoff's battery plans the rest of the day on (omitted for every provider: "
        "the idle load)",
    )
    site: ProviderSite | None = Field(
        None,
        description="its data center's constants; a heuristic needs them for every provider or for none (the "
        "default scenario's 3 providers), a registered model only checks them against its training scenario",
    )


class DataCenterDecideRequest(BaseModel):
    model_config = ConfigDict(**STRICT, json_schema_extra={"examples": [EXAMPLE]})
    providers: list[Provider] = Field(min_length=2, max_length=MAX_PROVIDERS)
    slot_of_day: int | None = Field(
        None,
        strict=True,
        ge=0,
        description="this slot's index in the day that the providers' day_usd_mwh cover (0: its first slot, 5 "
        "minutes by default): planned_handoff, pooled_handoff and a model observing their plan plan the rest of that "
        "day from it",
    )

    @model_validator(mode="after")
    def _check(self) -> DataCenterDecideRequest:
        unique_ids(self.providers, "provider")
        given = [p.net_load_kw is not None for p in self.providers]
        if any(given) and not all(given):
            missing = ", ".join(repr(p.id) for p, g in zip(self.providers, given, strict=True) if not g)
            raise ValueError(f"provider(s) {missing} have no net_load_kw: give it for every provider, or for none")
        return self


class ProviderAction(BaseModel):
    id: str
    keep_share: float = Field(ge=0, le=1, description="share of this slot's new jobs the provider keeps")
    handoff_to: str | None = Field(description="the provider that gets the rest; null when all are kept")
    steps: int = Field(ge=1, description="inference steps of the jobs its data center runs this slot")
    battery: Literal["discharge", "idle", "charge"] = Field(description="battery command, at full power")
    power_cap: float = Field(ge=0, le=1, description="GPU power cap, share of TDP")


class DataCenterDecision(Decided):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "providers": [
                        {
                            "id": "caiso",
                            "keep_share": 1.0,
                            "handoff_to": None,
                            "steps": 50,
                            "battery": "discharge",
                            "power_cap": 1.0,
                        },
                        {
                            "id": "ercot",
                            "keep_share": 0.75,
                            "handoff_to": "pjm",
                            "steps": 30,
                            "battery": "charge",
                            "power_cap": 1.0,
                        },
                    ],
                    "policy": "heuristic:combined",
                    "model_version": None,
                }
            ]
        }
    )
    providers: list[ProviderAction]


@lru_cache(maxsize=8)
def _constants(cfg: DataCenterConfig) -> tuple[Observations, np.ndarray, np.ndarray, np.ndarray]:
    """The scenario's observation builder (for one slot), capacity and kWh per job at full power,
    battery sizes."""
    capacity, kwh_per_job = per_job_at_full_power(cfg)
    battery = np.maximum(np.asarray(cfg.battery_kwh, dtype=np.float64), 1e-12)  # as the env divides
    return Observations(cfg.model_copy(update={"episode_slots": 1})), capacity, kwh_per_job, battery


DEFAULT_SCENARIO = DataCenterConfig()


def site_of(cfg: DataCenterConfig, k: int) -> ProviderSite:
    """Provider k's site in scenario `cfg`."""
    return ProviderSite(**{name: getattr(cfg, name)[k] for name in SITE_FIELDS})


@lru_cache(maxsize=64)
def site_scenario(sites: tuple[ProviderSite, ...]) -> DataCenterConfig:
    """The default scenario with these providers. Region, workload scale and on-site generation
    only shape the traces of a simulated day; a body brings its slot's prices, arrivals and
    renewable power itself."""
    k = len(sites)
    return make_config(
        DEFAULT_SCENARIO,
        {
            "regions": (next(iter(REGIONS)),) * k,
            "models": ("site",) * k,
            "base_rate": (0.0,) * k,
            "pv_kwp": (0.0,) * k,
            "wind_kw": (0.0,) * k,
            "battery_kw": (0.0,) * k,
            **{name: tuple(getattr(s, name) for s in sites) for name in SITE_FIELDS},
        },
    )


def scenario_of(body: DataCenterDecideRequest) -> DataCenterConfig:
    """A heuristic's scenario: the body's sites, or the default scenario if it gives none."""
    providers = body.providers
    missing = [p.id for p in providers if p.site is None]
    if len(missing) == len(providers):
        if len(providers) != DEFAULT_SCENARIO.n_asps:
            raise BodyError(
                f"the default scenario has {DEFAULT_SCENARIO.n_asps} providers, the body {len(providers)}: give "
                f"each provider its site (GPUs, model speed, power, battery) to decide for another count"
            )
        return DEFAULT_SCENARIO
    if missing:
        names = ", ".join(map(repr, missing))
        raise BodyError(f"provider(s) {names} have no site: give every provider its site, or none")
    return site_scenario(tuple(p.site for p in providers))


def check_sites(cfg: DataCenterConfig, body: DataCenterDecideRequest) -> None:
    """A model decides for the sites it was trained on: the body's sites, where given, must be those."""
    for k, p in enumerate(body.providers[: cfg.n_asps]):
        if p.site is None:
            continue
        trained = site_of(cfg, k)
        for name in SITE_FIELDS:
            if getattr(p.site, name) != getattr(trained, name):
                raise BodyError(
                    f"provider {p.id!r}: site.{name} is {getattr(p.site, name)}, the policy was trained with "
                    f"{getattr(trained, name)} (omit site to use the training scenario's)"
                )


def check_body(cfg: DataCenterConfig, body: DataCenterDecideRequest) -> None:
    k, c, f = cfg.n_asps, len(cfg.deadline_slots), len(cfg.forecast_hours)
    if len(body.providers) != k:
        raise BodyError(f"the scenario has {k} providers, got {len(body.providers)}")
    if body.slot_of_day is not None and body.slot_of_day >= cfg.episode_slots:
        raise BodyError(f"slot_of_day is {body.slot_of_day}, the scenario's day has {cfg.episode_slots} slots")
    for p in body.providers:
        if len(p.queue.by_class) != c:
            raise BodyError(f"provider {p.id!r}: queue.by_class needs {c} counts (one per deadline class)")
        if len(p.prices.ahead_usd_mwh) != f:
            raise BodyError(
                f"provider {p.id!r}: prices.ahead_usd_mwh needs {f} prices (at {list(cfg.forecast_hours)} h ahead)"
            )


def observe(cfg: DataCenterConfig, body: DataCenterDecideRequest) -> tuple[np.ndarray, DataCenterState]:
    """Every provider's observation (K, obs_size) and the heuristics' state, as the env has them
    before a slot in the state the body describes."""
    check_body(cfg, body)
    builder, capacity, kwh_per_job, battery = _constants(cfg)
    ps = body.providers
    k, c = cfg.n_asps, len(cfg.deadline_slots)

    def column(values) -> np.ndarray:  # (K, 1): one slot of per-slot inputs
        return np.array(values, dtype=np.float64)[:, None]

    price = np.array([p.prices.now_usd_mwh for p in ps])
    pue = physics.pue(
        np.array([p.weather.temperature_c for p in ps]), cfg.pue_min, cfg.pue_free_cooling_c, cfg.pue_slope_per_c
    )
    inputs = EpisodeInputs(
        day=0,
        price=price[:, None],
        forecast=np.array([p.prices.ahead_usd_mwh for p in ps], dtype=np.float64)[:, None, :],
        day_prices=np.array([p.prices.day_usd_mwh for p in ps], dtype=np.float64),
        rate=column([p.arrivals.expected for p in ps]),
        pue=pue[:, None],
        renewable_kw=column([p.weather.renewable_kw for p in ps]),
        grid_renewable=np.zeros((k, 1)),
        carbon=np.zeros((k, 1)),
        local_hour=column([p.local_hour for p in ps]),
    )
    # the env's queue layout [executor, bucket, class, origin]: late jobs in bucket 0, the others
    # in any later bucket (observations and state count them per class)
    q = np.zeros((k, max(cfg.deadline_slots) + 1, c, k), dtype=np.int64)
    q[:, 1, :, 0] = [p.queue.by_class for p in ps]
    q[:, 0, 0, 0] = [p.queue.late for p in ps]
    soc = np.array([p.battery_soc for p in ps])
    obs = builder.at_slot(
        builder.known_in_advance(inputs)[0],
        q,
        [p.busy_gpus for p in ps],
        (soc * battery).tolist(),
        [p.arrivals.last_slot for p in ps],
    )
    state = DataCenterState(
        slot=body.slot_of_day or 0,
        queue=q.sum(axis=(1, 2, 3)),
        # the body gives no ages: in bucket 1, every queued job counts as due (the safe side)
        due=jobs_due(q.sum(axis=-1).reshape(k, -1), due_places(cfg).ravel()),
        expected_arrivals=inputs.rate[:, 0].copy(),
        capacity=capacity.copy(),
        kwh_per_job=kwh_per_job * pue[:, None],
        pue=pue,
        price=price,
        day_prices=inputs.day_prices,
        soc=soc,
        handoff_fee=cfg.handoff_fee,
        net_kw=None if ps[0].net_load_kw is None else np.array([p.net_load_kw for p in ps]),
    )
    if cfg.observe_lookahead:
        obs[:, obs.shape[1] - sum(cfg.action_nvec) :] = plan_one_hot(cfg, state)
    return obs, state


class DataCenterServing(ProblemServing):
    problem = "datacenter"
    agent_noun = "providers"
    request_model = DataCenterDecideRequest
    decision_model = DataCenterDecision
    summary = (
        "What each provider keeps, hands over, how many steps it runs and how it uses its battery. The "
        "providers' constants (GPUs, model speed, power, battery size) are a model's training scenario; a "
        "heuristic takes them from each provider's `site`, or uses the default scenario's 3 providers."
    )
    heuristics = tuple(name for name in DATACENTER_HEURISTICS if name != "random")

    def heuristic(self, name: str) -> str:
        """The heuristic's name: `decide` builds it for the scenario each body describes."""
        if name not in self.heuristics:
            raise ConfigError(f"unknown datacenter policy {name!r} to serve; choose from {', '.join(self.heuristics)}")
        return name

    def agent_count(self, body: DataCenterDecideRequest) -> int:
        return len(body.providers)

    def model_agent_count(self, cfg: DataCenterConfig) -> int:
        return cfg.n_asps

    def decide(self, policy, cfg: DataCenterConfig | None, body: DataCenterDecideRequest) -> dict:
        if cfg is None:  # a heuristic: the body's scenario
            planned = policy in PLANNED
            cfg = scenario_of(body)
            policy = _heuristic(policy, cfg)
        else:
            planned = cfg.observe_lookahead and cfg.lookahead_plan in PLANNED
            check_sites(cfg, body)
        if planned and body.slot_of_day is None:
            raise BodyError("this policy plans the battery for the rest of the day: give slot_of_day")
        obs, state = observe(cfg, body)
        agents = [f"asp_{i}" for i in range(cfg.n_asps)]
        actions = policy(dict(zip(agents, obs, strict=True)), state)
        ids = [p.id for p in body.providers]
        out = []
        for i, agent in enumerate(agents):
            keep, target, level, battery, cap = (int(v) for v in np.asarray(actions[agent]).reshape(5))
            others = [pid for j, pid in enumerate(ids) if j != i]  # hand-off targets in index order
            keep_share = float(cfg.keep_levels[keep])
            out.append(
                {
                    "id": ids[i],
                    "keep_share": keep_share,
                    "handoff_to": others[target] if keep_share < 1.0 else None,
                    "steps": int(cfg.step_levels[level]),
                    "battery": BATTERY_ACTIONS[battery],
                    "power_cap": float(cfg.power_cap_levels[cap]),
                }
            )
        return {"providers": out}


@lru_cache(maxsize=64)
def _heuristic(name: str, cfg: DataCenterConfig):
    if name in PLANNED:  # planned afresh from each body: nothing kept between calls
        agents = [f"asp_{i}" for i in range(cfg.n_asps)]
        return lambda obs, state: dict(zip(agents, PLANS[name](cfg, state), strict=True))
    return make_datacenter_heuristic(name, cfg)


DATACENTER_SERVING = DataCenterServing()

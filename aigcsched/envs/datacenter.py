"""Joint energy management and AIGC workload scheduling across data centers (the `datacenter` problem).

After "Joint Energy Management and Coordinated AIGC Workload Scheduling for Distributed Data
Centers: A Diffusion-Aided Reward Shaping Approach": K AIGC service providers (ASPs), each with
its own text-to-image model in its own data center and grid region, may hand jobs to each other,
choose inference steps, and run on-site PV, wind and a battery under hourly electricity prices.
Every constant is a field of `DataCenterConfig`, with its source in a comment.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aigcsched.envs import physics
from aigcsched.envs.data import (
    REGIONS,
    WORKLOADS,
    embedded_traces,
    embedded_workload,
    region_traces,
    workload_trace,
)

BATTERY_ACTIONS = ("discharge", "idle", "charge")  # action index -> battery command -1, 0, +1
REWARD_MODES = ("dense", "sparse", "team")
HELDOUT_WEEK_EVERY = 5  # every fifth week of the year is held out (see split_days)
# Per-ASP fields: one entry per provider, in the order of `regions`.
PER_ASP_FIELDS = (
    "models",
    "n_gpus",
    "sec_per_step",
    "gpu_power_w",
    "gpu_idle_w",
    "quality_max",
    "quality_mid_steps",
    "quality_scale_steps",
    "base_rate",
    "pv_kwp",
    "wind_kw",
    "battery_kwh",
    "battery_kw",
)
PER_CLASS_FIELDS = ("deadline_slots", "class_mix", "late_penalty")
# What the env records per slot and provider in `ledger` (arrays of shape (slots, K)).
LEDGER_FIELDS = (
    "utility",  # USD: revenue - penalty - energy_cost - degradation - fees_paid + fees_received
    "revenue",  # USD, for this provider's customers' jobs served anywhere
    "penalty",  # USD, deadline penalties of this provider's customers' jobs
    "energy_cost",  # USD, energy bought by this data center
    "degradation",  # USD, battery wear
    "fees_paid",
    "fees_received",
    "arrivals",  # jobs arriving at this provider
    "handed_out",  # of those, handed to another provider
    "served",  # this provider's customers' jobs finished (anywhere)
    "executed",  # jobs run on this data center's GPUs
    "violations",  # this provider's customers' jobs that missed their deadline
    "quality_sum",  # sum of quality over `served`
    "load_kwh",  # facility energy (IT x PUE)
    "bought_kwh",  # from the grid
    "renewable_kwh",  # on-site PV + wind produced
    "renewable_used_kwh",  # of it, used (directly or into the battery)
    "grid_renewable_kwh",  # renewable part of the energy bought (grid mix)
    "carbon_kg",  # of the energy bought
    "charge_kwh",  # into the battery (from the bus)
    "discharge_kwh",  # out of the battery (to the bus)
    "soc",  # battery state of charge (fraction of capacity) at the end of the slot
    "queue",  # jobs waiting at this data center at the end of the slot
    "price",  # USD/MWh in the slot
)


class DataCenterConfig(BaseModel):
    """The `datacenter` scenario: three ASPs in CAISO, PJM and ERCOT by default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- time and data
    slot_minutes: int = Field(5, ge=1, le=60, description="decision period; 60 must be a multiple")
    episode_slots: int = Field(288, ge=1, description="slots per episode (288 x 5 min = one day)")
    day: int | None = Field(
        None, ge=0, le=364, description="day of the year the episode starts (UTC); None: drawn at reset"
    )
    day_split: Literal["all", "train", "heldout"] = Field(
        "all", description="days drawn at reset: all, training days only, or held-out days only (see split_days)"
    )
    data_dir: str | None = Field(
        None,
        description="trace directory (layout of `aigcsched data download`); None: embedded typical days",
    )
    year: int = Field(2023, description="year of the trace files in data_dir")
    workload: str = Field("google", description="workload trace in data_dir: alibaba or google")

    # --- providers (one entry each)
    regions: tuple[str, ...] = Field(("CAISO", "PJM", "ERCOT"), description="grid region of each ASP")
    models: tuple[str, ...] = Field(("SD1.5", "SDXL", "SD3.5-Large"), description="model family (label)")
    n_gpus: tuple[int, ...] = Field((32, 32, 32), description="GPUs G per data center")
    # SD1.5 512px on A100: ~17 steps/s (about 3 s for 50 steps, see DESIGN.md);
    # SDXL 1024px on H100, bf16 + SDPA: 3.3 s for 30 steps (PyTorch blog "Accelerating Generative
    # AI Part III", 2023); SD3.5-Large (8B MMDiT) 1024px on H100: ~0.23 s/step, estimated from
    # SDXL by its ~2x larger denoiser.
    sec_per_step: tuple[float, ...] = Field((0.059, 0.11, 0.23), description="GPU seconds per step")
    # A100 SXM TDP 400 W, H100 SXM 700 W (NVIDIA data sheets); idle ~55 / ~75 W (nvidia-smi readings
    # commonly reported).
    gpu_power_w: tuple[float, ...] = Field((400.0, 700.0, 700.0), description="GPU power when busy")
    gpu_idle_w: tuple[float, ...] = Field((55.0, 75.0, 75.0), description="GPU power when idle")
    # DGX A100: 6.5 kW max for 8 x 400 W GPUs; DGX H100 10.2 kW for 8 x 700 W: ~300-500 W per GPU
    # of CPUs, memory, NICs and fans at full load, less on average.
    host_power_w: float = Field(250.0, ge=0.0, description="non-GPU IT power per GPU, constant")
    # Quality Q(s) = q_max / (1 + exp(-(s - mid) / scale)). q_max: GenEval overall score (SD1.5 0.43,
    # SDXL 0.55: Ghosh et al. 2023; SD3.5-Large 0.71: Stability AI); the steps curve saturates by
    # ~20-30 steps as FID vs steps does for DPM-Solver++ (Lu et al. 2022) and rectified flow.
    quality_max: tuple[float, ...] = Field((0.43, 0.55, 0.71), description="quality ceiling per model")
    quality_mid_steps: tuple[float, ...] = Field((8.0, 10.0, 10.0), description="steps at half quality")
    quality_scale_steps: tuple[float, ...] = Field((3.0, 3.5, 4.0), description="sigmoid width in steps")
    # Capacity at 30 steps: 32 GPUs x 300 s / (30 x s/step) = 5424, 2909, 1391 jobs per slot. The
    # SD1.5 and SDXL sites are ~50% busy at 30 steps on average, the SD3.5 site ~100%: it must cut
    # steps or hand jobs off.
    base_rate: tuple[float, ...] = Field(
        (2700.0, 1450.0, 1400.0), description="mean jobs per slot; x hourly workload profile"
    )
    pv_kwp: tuple[float, ...] = Field((30.0, 20.0, 25.0), description="on-site PV, kW peak")
    wind_kw: tuple[float, ...] = Field((10.0, 15.0, 20.0), description="on-site wind turbine, rated kW")
    # About 2-4 h of the site's average load (~25-40 kW), at 0.5C.
    battery_kwh: tuple[float, ...] = Field((100.0, 100.0, 100.0), description="battery capacity")
    battery_kw: tuple[float, ...] = Field((50.0, 50.0, 50.0), description="battery power limit")

    # --- decisions
    step_levels: tuple[int, ...] = Field((10, 20, 30, 40, 50), description="inference steps to choose from")
    keep_levels: tuple[float, ...] = Field(
        (1.0, 0.75, 0.5, 0.25, 0.0), description="share of new jobs kept (the rest is handed over)"
    )
    # Capping an A100 at 250 of 400 W slows LLM inference by ~7% (Samsi et al., "From Words to
    # Watts", HPEC 2023): speed ~ cap^0.15.
    power_cap_levels: tuple[float, ...] = Field((1.0, 0.8, 0.6), description="GPU power cap, share of TDP")
    cap_speed_exponent: float = Field(0.15, ge=0.0, description="throughput ~ cap ** exponent")

    # --- jobs and money
    deadline_slots: tuple[int, ...] = Field(
        (2, 4, 12), description="deadline class: finish within this many slots of arrival"
    )
    class_mix: tuple[float, ...] = Field((0.5, 0.3, 0.2), description="share of arrivals per deadline class")
    # Money per job is the margin over non-energy costs (list prices of 0.002-0.065 USD/image are
    # mostly GPU amortization), scaled so that energy is a real share of it: at 50 USD/MWh an
    # image costs ~0.00005-0.0003 USD of energy.
    revenue_per_quality: float = Field(0.0006, ge=0.0, description="USD per image = this x quality")
    late_penalty: tuple[float, ...] = Field(
        (0.0004, 0.0003, 0.0002), description="USD per job missing its deadline, per class"
    )
    handoff_fee: float = Field(0.0001, ge=0.0, description="USD per handed-over job, sender -> receiver")
    # Hand-offs are agreed once per slot; the job joins the receiver's queue at its next slot.
    handoff_delay_slots: int = Field(1, ge=0, description="slots a handed-over job spends in transit")

    # --- site physics
    # Economizer (free) cooling up to ~18 C outside; hyperscale PUE ~1.1 (Google fleet 2023: 1.10),
    # rising with chiller use to ~1.3-1.4 in hot hours.
    pue_min: float = Field(1.1, ge=1.0, description="PUE with free cooling")
    pue_free_cooling_c: float = Field(18.0, description="outside temperature up to which cooling is free")
    pue_slope_per_c: float = Field(0.012, ge=0.0, description="PUE increase per deg C above that")
    pv_performance_ratio: float = Field(0.8, gt=0.0, le=1.0, description="PV losses (typical 0.75-0.85)")
    wind_hub_height_m: float = Field(30.0, gt=0.0, description="turbine hub height (small turbine)")
    wind_shear_exponent: float = Field(1 / 7, ge=0.0, description="power-law profile, open terrain")
    wind_cut_in_ms: float = Field(3.0, gt=0.0)
    wind_rated_ms: float = Field(12.0, gt=0.0)
    wind_cut_out_ms: float = Field(25.0, gt=0.0)
    # Li-ion round trip 85-90% (NREL ATB); wear ~0.03 USD per kWh discharged (150 USD/kWh pack,
    # ~5000 cycles).
    battery_efficiency: float = Field(0.9, gt=0.0, le=1.0, description="round-trip efficiency")
    battery_soc_min: float = Field(0.1, ge=0.0, le=1.0, description="lowest state of charge allowed")
    battery_soc_max: float = Field(0.9, ge=0.0, le=1.0, description="highest state of charge allowed")
    battery_soc_init: float = Field(0.5, ge=0.0, le=1.0, description="state of charge at reset")
    battery_wear_usd_per_kwh: float = Field(0.03, ge=0.0, description="degradation cost per kWh discharged")

    # --- observation and reward
    forecast_hours: tuple[int, ...] = Field((1, 2, 4), description="price forecast offsets in the observation")
    # One policy shared by all providers needs to know whose data center it acts for.
    agent_id_in_obs: bool = Field(False, description="append a one-hot of the agent's index to its observation")
    reward_mode: Literal["dense", "sparse", "team"] = Field(
        "dense",
        description="dense: utility per slot; sparse: the episode's utility at its end; team: system's",
    )

    @model_validator(mode="after")
    def _check(self) -> DataCenterConfig:
        k = len(self.regions)
        if k < 2:
            raise ValueError(f"regions needs >= 2 providers, got {k}")
        unknown = [r for r in self.regions if r not in REGIONS]
        if unknown:
            raise ValueError(f"unknown region(s) {', '.join(unknown)}; choose from {', '.join(REGIONS)}")
        for name in PER_ASP_FIELDS:
            if len(getattr(self, name)) != k:
                raise ValueError(f"{name} needs one entry per region ({k}), got {len(getattr(self, name))}")
        for name in ("n_gpus", "sec_per_step", "gpu_power_w", "quality_max", "quality_scale_steps"):
            if any(v <= 0 for v in getattr(self, name)):
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("gpu_idle_w", "base_rate", "pv_kwp", "wind_kw", "battery_kwh", "battery_kw"):
            if any(v < 0 for v in getattr(self, name)):
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if any(i > p for i, p in zip(self.gpu_idle_w, self.gpu_power_w, strict=True)):
            raise ValueError("gpu_idle_w must not exceed gpu_power_w")
        c = len(self.deadline_slots)
        for name in PER_CLASS_FIELDS:
            if len(getattr(self, name)) != c or c == 0:
                raise ValueError(f"{name} needs one entry per deadline class ({c}), got {getattr(self, name)}")
        if any(d < 1 for d in self.deadline_slots):
            raise ValueError(f"deadline_slots must be >= 1, got {self.deadline_slots}")
        if any(m < 0 for m in self.class_mix) or abs(sum(self.class_mix) - 1.0) > 1e-6:
            raise ValueError(f"class_mix must be >= 0 and sum to 1, got {self.class_mix}")
        if any(p < 0 for p in self.late_penalty):
            raise ValueError(f"late_penalty must be >= 0, got {self.late_penalty}")
        if self.handoff_delay_slots >= min(self.deadline_slots):
            raise ValueError(
                f"handoff_delay_slots ({self.handoff_delay_slots}) must be < the shortest deadline "
                f"({min(self.deadline_slots)} slots)"
            )
        if not self.step_levels or any(s < 1 for s in self.step_levels):
            raise ValueError(f"step_levels must be a non-empty list of steps >= 1, got {self.step_levels}")
        if not self.keep_levels or any(not 0 <= v <= 1 for v in self.keep_levels):
            raise ValueError(f"keep_levels must be shares in [0, 1], got {self.keep_levels}")
        if not self.power_cap_levels or any(not 0 < v <= 1 for v in self.power_cap_levels):
            raise ValueError(f"power_cap_levels must be in (0, 1], got {self.power_cap_levels}")
        if 60 % self.slot_minutes:
            raise ValueError(f"slot_minutes must divide 60, got {self.slot_minutes}")
        if not self.battery_soc_min <= self.battery_soc_init <= self.battery_soc_max:
            raise ValueError("battery state of charge must satisfy soc_min <= soc_init <= soc_max")
        if not self.wind_cut_in_ms < self.wind_rated_ms <= self.wind_cut_out_ms:
            raise ValueError("wind speeds must satisfy cut_in < rated <= cut_out")
        if any(f < 0 for f in self.forecast_hours):
            raise ValueError(f"forecast_hours must be >= 0, got {self.forecast_hours}")
        if self.workload not in WORKLOADS:
            raise ValueError(f"workload must be one of {', '.join(WORKLOADS)}, got {self.workload!r}")
        return self

    @property
    def n_asps(self) -> int:
        return len(self.regions)

    @property
    def obs_size(self) -> int:
        extra = self.n_asps if self.agent_id_in_obs else 0
        return len(self.deadline_slots) + 8 + len(self.forecast_hours) + 2 * (self.n_asps - 1) + extra

    def quality(self) -> np.ndarray:
        """Q[k, level]: quality of provider k's model at each step level."""
        s = np.asarray(self.step_levels, dtype=np.float64)
        mid = np.asarray(self.quality_mid_steps)[:, None]
        scale = np.asarray(self.quality_scale_steps)[:, None]
        return np.asarray(self.quality_max)[:, None] / (1.0 + np.exp(-(s - mid) / scale))

    def seconds_per_job(self) -> np.ndarray:
        """[k, level, cap]: GPU seconds one job takes at each step level and power cap."""
        s = np.asarray(self.step_levels, dtype=np.float64)
        speed = np.asarray(self.power_cap_levels) ** self.cap_speed_exponent
        return np.asarray(self.sec_per_step)[:, None, None] * s[None, :, None] / speed[None, None, :]


def split_days(split: str) -> np.ndarray:
    """Days of the year an episode may start on. Held out: every fifth week (days 7w..7w+6 for
    w = 4, 9, .., 49; 70 days over all seasons); whole weeks, so that a held-out day's neighbours,
    which share its weather and prices, are mostly held out too. Train: the other 295 days."""
    days = np.arange(365)
    heldout = (days // 7) % HELDOUT_WEEK_EVERY == HELDOUT_WEEK_EVERY - 1
    if split == "all":
        return days
    if split == "heldout":
        return days[heldout]
    if split == "train":
        return days[~heldout]
    raise ValueError(f"day split must be all, train or heldout, got {split!r}")


class DataCenterState(NamedTuple):
    """What a coordinator with full knowledge sees before a slot (for heuristics). Arrays over
    providers k; prices in USD/MWh."""

    slot: int
    queue: np.ndarray  # (K,) jobs waiting at each data center (late ones included)
    expected_arrivals: np.ndarray  # (K,) mean arrivals at each provider this slot
    capacity: np.ndarray  # (K, S) jobs per slot at each step level, full power
    kwh_per_job: np.ndarray  # (K, S) facility energy per job at each step level, at this slot's PUE
    price: np.ndarray  # (K,) this slot's price
    day_prices: np.ndarray  # (K, 24) the episode's first 24 hourly prices (day-ahead market)
    soc: np.ndarray  # (K,) battery state of charge, fraction of capacity
    handoff_fee: float


class DataCenterEnv(ParallelEnv):
    """K AIGC providers, each a data center in its own grid region, as a PettingZoo ParallelEnv.

    Jobs: each slot, provider k receives Poisson(base_rate_k x workload(hour)) text-to-image jobs,
    split over deadline classes by `class_mix`; a job of class c must finish within
    `deadline_slots[c]` slots of its arrival (the arrival slot counts as one). Jobs run first come
    first served on the executing data center's G GPUs (late ones first, ties by tighter class),
    queue across slots, and are never dropped: a late job pays its penalty once and is still
    served; jobs left at the episode's end pay their penalty then (unless they already did).

    Agents: "asp_0".."asp_{K-1}", one per provider, all active throughout.

    Action (per agent): MultiDiscrete([len(keep_levels), K-1, len(step_levels), 3,
    len(power_cap_levels)]) = (share of this slot's new jobs kept, which other provider gets the
    rest (the others in index order), inference steps of the jobs this data center runs this slot,
    battery discharge / idle / charge at full power, GPU power cap). A handed-over job reaches the
    receiver after `handoff_delay_slots`, is generated by the receiver's model at the receiver's
    steps, pays the receiver `handoff_fee`, and earns the sender its revenue and penalties.

    Energy: IT power = G x host + busy x cap x TDP + idle GPUs x idle power; facility = IT x PUE(outside
    temperature). PV (clear sky x cloud cover) and wind (turbine curve) feed the site first; the
    battery charges from surplus or grid and discharges into the remaining load only; bought
    energy = load - renewables - discharge + charge, never negative (surplus is curtailed), paid
    at the region's hourly price (negative prices pay the buyer).

    Reward: utility = revenue (revenue_per_quality x quality per served job) - deadline penalties -
    energy cost - battery wear - fees paid + fees received. `dense`: each slot's utility; `sparse`:
    0 until the last slot, then the episode's utility; `team`: every agent gets the sum over
    agents of the slot's utility.

    Observation (per agent, float32): own queue per deadline class, own late backlog (both over the
    data center's jobs per slot at the middle step level), busy GPU share, battery state of
    charge, price now and at each of `forecast_hours` (USD/MWh / 100; day-ahead prices, known in
    advance), on-site renewable power (over peak IT load), sin and cos of the local time of day,
    last slot's arrivals (over capacity), the other providers' queues (over their capacity) and
    prices (/ 100).

    With `agent_id_in_obs`, a one-hot of the agent's index follows (for one shared policy).

    Start: day drawn from the seed among the days of `day_split` unless `day` is set, then the
    day's arrivals (they do not depend on actions); queues empty; batteries at soc_init.
    End: terminated after `episode_slots` slots; never truncated.

    Arguments: `config` (DataCenterConfig or dict) and/or its fields as keyword arguments.
    `ledger` holds per-slot, per-provider records (see LEDGER_FIELDS) of the current episode.
    """

    metadata = {"render_modes": [], "name": "datacenter_v0", "is_parallelizable": True}

    def __init__(self, config: DataCenterConfig | dict | None = None, render_mode: str | None = None, **overrides: Any):
        self.cfg = cfg = make_config(config, overrides)
        self.render_mode = render_mode
        k = cfg.n_asps
        self.possible_agents = [f"asp_{i}" for i in range(k)]
        self.agents: list[str] = []
        self._obs_space = spaces.Box(-np.inf, np.inf, shape=(cfg.obs_size,), dtype=np.float32)
        self._act_space = spaces.MultiDiscrete(
            [
                len(cfg.keep_levels),
                k - 1,
                len(cfg.step_levels),
                len(BATTERY_ACTIONS),
                len(cfg.power_cap_levels),
            ]
        )
        self.observation_spaces = {a: self._obs_space for a in self.possible_agents}
        self.action_spaces = {a: self._act_space for a in self.possible_agents}
        self._load_traces()
        self._constants()
        self._rng = np.random.default_rng()
        self._rows: list[list[float]] = []
        self._ledger_cache: tuple[int, dict] | None = None

    # --- PettingZoo API

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None):
        cfg = self.cfg
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        day = cfg.day if cfg.day is not None else int(self._rng.choice(self._days))
        self._episode_inputs(day)
        k, a, c = cfg.n_asps, self._age_buckets, len(cfg.deadline_slots)
        # jobs waiting, [executor, bucket, class, origin]: bucket 0 holds late jobs (their penalty
        # paid), bucket 1 + a the jobs of age A - 1 - a slots (oldest first, the serving order)
        self._q = np.zeros((k, a + 1, c, k), dtype=np.int64)
        self._transit = np.zeros((max(cfg.handoff_delay_slots, 1), k, c, k), dtype=np.int64)
        # arrivals do not depend on actions: drawn for the whole episode at once
        self._arrivals_l = self._rng.poisson(self._lam).tolist()  # [slot][origin][class]
        self._carry = [0.0] * k  # fraction of a job already processed at each data center
        self._soc = [b * cfg.battery_soc_init for b in cfg.battery_kwh]  # kWh
        self._busy = [0.0] * k  # GPUs busy in the last slot (GPU-equivalents)
        self._last_arrivals = [0] * k
        self._utility_sum = np.zeros(k)
        self._t = 0
        self._rows: list[list[float]] = []
        self._ledger_cache: tuple[int, dict] | None = None
        self.agents = list(self.possible_agents)
        obs = self._observe()
        return {agent: obs[i] for i, agent in enumerate(self.agents)}, {agent: {} for agent in self.agents}

    def step(self, actions: dict[str, Any]):
        if not self.agents:
            raise RuntimeError("call reset() before step(), and again after the episode ended")
        agents = self.agents
        try:
            act = np.array([actions[a] for a in agents], dtype=np.int64).reshape(len(agents), 5)
        except KeyError as e:
            raise ValueError(f"actions missing for agent {e.args[0]}") from None
        utility = self._advance(act)
        self._utility_sum += utility
        self._t += 1
        done = self._t >= self.cfg.episode_slots
        mode = self.cfg.reward_mode
        if mode == "dense":
            reward = utility.tolist()
        elif mode == "team":
            reward = [float(utility.sum())] * len(agents)
        else:  # sparse: the day's settled utility at its end
            reward = self._utility_sum.tolist() if done else [0.0] * len(agents)
        obs = self._observe()
        observations = {a: obs[i] for i, a in enumerate(agents)}
        rewards = dict(zip(agents, reward, strict=True))
        terminations = dict.fromkeys(agents, done)
        truncations = dict.fromkeys(agents, False)
        infos = {a: {} for a in agents}
        if done:
            self.agents = []
        return observations, rewards, terminations, truncations, infos

    @property
    def ledger(self) -> dict[str, np.ndarray]:
        """The episode so far: {field: (slots, K) array} for each of LEDGER_FIELDS."""
        t = len(self._rows)
        if self._ledger_cache is None or self._ledger_cache[0] != t:
            k = self.cfg.n_asps
            rows = np.array(self._rows, dtype=np.float64).reshape(t, len(LEDGER_FIELDS), k)
            self._ledger_cache = (t, {name: rows[:, i] for i, name in enumerate(LEDGER_FIELDS)})
        return self._ledger_cache[1]

    def state(self) -> DataCenterState:
        """Full-knowledge view before the next slot (for heuristics)."""
        cfg, t = self.cfg, min(self._t, self.cfg.episode_slots - 1)
        spj = self._sec_per_job[:, :, self._full_power]
        it_kw_per_job = (np.asarray(cfg.gpu_power_w)[:, None] + self._host_w[:, None]) / 1000.0
        return DataCenterState(
            slot=self._t,
            queue=self._q.sum(axis=(1, 2, 3)),
            expected_arrivals=self._rate[:, t].copy(),
            capacity=self._gpu_s[:, None] / spj,
            kwh_per_job=it_kw_per_job * spj / 3600.0 * self._pue[:, t, None],
            price=self._price[:, t].copy(),
            day_prices=self._day_prices.copy(),
            soc=np.array(self._soc) / np.maximum(self._battery_kwh, 1e-12),
            handoff_fee=cfg.handoff_fee,
        )

    def queued_jobs(self) -> int:
        """Jobs not yet served: waiting at a data center or in transit."""
        return int(self._q.sum() + self._transit.sum())

    # --- set-up

    def _load_traces(self) -> None:
        cfg = self.cfg
        if cfg.data_dir is None:
            self._traces = [embedded_traces(r) for r in cfg.regions]
            workload = embedded_workload()
        else:
            self._traces = [region_traces(r, cfg.data_dir, cfg.year) for r in cfg.regions]
            workload = workload_trace(cfg.workload, cfg.data_dir)
        self._workload = workload

    def _constants(self) -> None:
        cfg = self.cfg
        k = cfg.n_asps
        self._slot_s = cfg.slot_minutes * 60.0
        self._slot_h = cfg.slot_minutes / 60.0
        self._age_buckets = max(cfg.deadline_slots)
        self._n_classes = len(cfg.deadline_slots)
        self._classes = np.arange(self._n_classes)
        # bucket of the jobs of age deadline - 1 (bucket 0: late, bucket 1 + a: age A - 1 - a)
        self._deadline_row = 1 + self._age_buckets - np.asarray(cfg.deadline_slots)
        self._late_penalty = np.asarray(cfg.late_penalty)
        self._mix = np.asarray(cfg.class_mix)
        self._gpus = np.asarray(cfg.n_gpus, dtype=np.float64)
        self._gpu_s = self._gpus * self._slot_s  # GPU seconds per slot
        self._host_w = np.full(k, cfg.host_power_w)
        self._sec_per_job = cfg.seconds_per_job()  # (K, S, P)
        self._full_power = int(np.argmax(cfg.power_cap_levels))
        self._quality = cfg.quality()  # (K, S)
        self._revenue = cfg.revenue_per_quality * self._quality
        self._handoff_share = 1.0 - np.asarray(cfg.keep_levels)
        self._battery_kwh = np.asarray(cfg.battery_kwh, dtype=np.float64)
        self._battery_kwh_safe = np.maximum(self._battery_kwh, 1e-12)
        self._eta = float(np.sqrt(cfg.battery_efficiency))  # same loss charging and discharging
        self._others = np.array([[j for j in range(k) if j != i] for i in range(k)])
        # plain-Python copies for the per-site loops
        self._sec_per_job_l = self._sec_per_job.tolist()
        self._gpu_s_l = self._gpu_s.tolist()
        self._revenue_l = self._revenue.tolist()
        self._quality_l = self._quality.tolist()
        self._penalty_and_count = np.stack([self._late_penalty, np.ones(self._n_classes)])  # (2, C)
        self._handoff_share_l = self._handoff_share.tolist()
        self._others_l = self._others.tolist()
        self._gpus_l = [float(g) for g in cfg.n_gpus]
        self._host_w_l = [cfg.host_power_w] * k
        self._idle_w_l = list(cfg.gpu_idle_w)
        self._cap_w_l = [[c * p for c in cfg.power_cap_levels] for p in cfg.gpu_power_w]
        self._battery_kw_l = list(cfg.battery_kw)
        self._soc_min_kwh = [b * cfg.battery_soc_min for b in cfg.battery_kwh]
        self._soc_max_kwh = [b * cfg.battery_soc_max for b in cfg.battery_kwh]
        self._battery_kwh_safe_l = self._battery_kwh_safe.tolist()
        # normalizers of the observation
        mid = len(cfg.step_levels) // 2
        self._obs_jobs = np.maximum(self._gpu_s / self._sec_per_job[:, mid, self._full_power], 1.0)
        peak_it_kw = self._gpus * (np.asarray(cfg.gpu_power_w) + cfg.host_power_w) / 1000.0
        self._obs_kw = np.maximum(peak_it_kw, 1e-9)
        self._obs_jobs_l = self._obs_jobs.tolist()
        self._utc_offset = np.array([REGIONS[r].utc_offset_h for r in cfg.regions])
        # observation columns: queue per class, late, busy, soc | price, forecast, renewables,
        # time of day (sin, cos) | arrivals | others' queues | others' prices
        self._col_static = self._n_classes + 3
        self._col_arrivals = self._col_static + 1 + len(cfg.forecast_hours) + 3
        self._days = split_days(cfg.day_split)

    def _episode_inputs(self, day: int) -> None:
        """Per-slot prices, rates, PUE and renewables of the episode, (K, T) arrays."""
        cfg = self.cfg
        t = np.arange(cfg.episode_slots)
        hour_f = day * 24.0 + t * self._slot_h  # UTC hours since the start of the year
        hour = np.floor(hour_f).astype(np.int64)
        n_hours = len(self._workload)
        idx = hour % n_hours
        tr = self._traces
        self._price = np.stack([x.price[idx] for x in tr])
        fc = np.asarray(cfg.forecast_hours)
        self._forecast = np.stack([x.price[(hour[:, None] + fc) % n_hours] for x in tr])  # (K, T, F)
        self._day_prices = np.stack([x.price[(day * 24 + np.arange(24)) % n_hours] for x in tr])
        local = (hour[None, :] + self._utc_offset[:, None]) % n_hours
        self._rate = np.asarray(cfg.base_rate)[:, None] * self._workload[local]
        temperature = np.stack([x.temperature[idx] for x in tr])
        self._pue = physics.pue(temperature, cfg.pue_min, cfg.pue_free_cooling_c, cfg.pue_slope_per_c)
        lat = np.array([REGIONS[r].latitude for r in cfg.regions])[:, None]
        lon = np.array([REGIONS[r].longitude for r in cfg.regions])[:, None]
        mid_slot = hour_f + self._slot_h / 2.0
        cos_z = physics.solar_cos_zenith(lat, lon, np.floor(mid_slot / 24.0) % 365, mid_slot % 24.0)
        cloud = np.stack([x.cloud[idx] for x in tr])
        ghi = physics.cloudy_ghi(physics.clear_sky_ghi(cos_z), cloud)
        pv = physics.pv_power_kw(ghi, np.asarray(cfg.pv_kwp)[:, None], cfg.pv_performance_ratio)
        wind_ms = np.stack([x.wind_kmh[idx] for x in tr]) / 3.6
        hub = physics.hub_wind_speed(wind_ms, cfg.wind_hub_height_m, cfg.wind_shear_exponent)
        wind = physics.wind_power_kw(
            hub, np.asarray(cfg.wind_kw)[:, None], cfg.wind_cut_in_ms, cfg.wind_rated_ms, cfg.wind_cut_out_ms
        )
        self._renewable_kw = pv + wind
        self._grid_renewable = np.stack([x.grid_renewable[idx] for x in tr])
        self._carbon = np.stack([x.carbon[idx] for x in tr])
        local_hour = (hour_f[None, :] + self._utc_offset[:, None]) % 24.0
        self._lam = (self._rate.T[:, :, None] * self._mix).copy()  # (T, K, C) mean arrivals
        # plain-Python (T, K) lists for the per-site energy loop
        self._pue_l = self._pue.T.tolist()
        self._renewable_l = self._renewable_kw.T.tolist()
        self._price_l = self._price.T.tolist()
        self._grid_renewable_l = self._grid_renewable.T.tolist()
        self._carbon_l = self._carbon.T.tolist()
        # the observation columns known in advance, (T, K, obs_size)
        k, n = self.cfg.n_asps, cfg.episode_slots
        static = np.zeros((n, k, cfg.obs_size), dtype=np.float32)
        c0, c1 = self._col_static, self._col_arrivals
        static[:, :, c0] = self._price.T / 100.0
        static[:, :, c0 + 1 : c1 - 3] = self._forecast.transpose(1, 0, 2) / 100.0
        static[:, :, c1 - 3] = (self._renewable_kw / self._obs_kw[:, None]).T
        static[:, :, c1 - 2] = np.sin(2 * np.pi * local_hour / 24).T
        static[:, :, c1 - 1] = np.cos(2 * np.pi * local_hour / 24).T
        static[:, :, c1 + k : c1 + 2 * k - 1] = (self._price.T / 100.0)[:, self._others]
        if cfg.agent_id_in_obs:
            static[:, :, c1 + 2 * k - 1 :] = np.eye(k, dtype=np.float32)
        self._obs_static = static
        self.day = day

    # --- one slot

    def _advance(self, act: np.ndarray) -> np.ndarray:
        """Simulate one slot under actions (K, 5); record it in the ledger; return utility (K,).
        Queues are counted with numpy; per-site scalars are plain Python, which is faster than
        numpy for a handful of numbers."""
        cfg, t = self.cfg, self._t
        k = cfg.n_asps
        q = self._q  # [executor, bucket, class, origin]; bucket 0: late, 1: oldest .. A: newest
        newest = self._age_buckets
        keep_i, target_i, level_i, battery_i, cap_i = act.T.tolist()

        # arrivals (drawn at reset) and hand-offs, as nested lists: a handful of numbers
        arrivals = self._arrivals_l[t]  # [origin][class]
        share = [self._handoff_share_l[j] for j in keep_i]
        handed = [[int(n * share[i] + 0.5) for n in row] for i, row in enumerate(arrivals)]
        dest = [self._others_l[i][target_i[i]] for i in range(k)]
        n_classes = self._n_classes
        newest_bucket = [[[0] * k for _ in range(n_classes)] for _ in range(k)]  # [exec][class][origin]
        sent = [[[0] * k for _ in range(n_classes)] for _ in range(k)]
        for i in range(k):
            row, gone, to = arrivals[i], handed[i], dest[i]
            for c in range(n_classes):
                newest_bucket[i][c][i] = row[c] - gone[c]
                sent[to][c][i] = gone[c]
        delay = cfg.handoff_delay_slots
        if delay:
            ring = self._transit[t % delay]
            q[:, newest - delay] += ring  # jobs sent `delay` slots ago land, aged by their transit
            ring[:] = sent
            q[:, newest] = newest_bucket
        else:
            q[:, newest] = np.add(newest_bucket, sent)

        # service: first come first served, late jobs first
        sec = [self._sec_per_job_l[i][level_i[i]][cap_i[i]] for i in range(k)]
        carry = self._carry
        capacity = [self._gpu_s_l[i] / sec[i] + carry[i] for i in range(k)]
        flat = q.reshape(k, -1)
        reached = np.minimum(np.cumsum(flat, axis=1), np.array([[int(c)] for c in capacity]))
        served_flat = reached.copy()
        served_flat[:, 1:] -= reached[:, :-1]
        flat -= served_flat
        executed = reached[:, -1].tolist()
        remaining = flat.sum(axis=1).tolist()
        served_eo = served_flat.reshape(k, -1, k).sum(axis=1)  # [exec, origin]
        busy = []
        for i in range(k):
            if remaining[i] > 0:  # jobs remain: the GPUs were busy all slot
                busy.append(self._gpus_l[i])
                carry[i] = capacity[i] - int(capacity[i])
            else:
                busy.append(min(max(executed[i] - carry[i], 0.0) * sec[i] / self._slot_s, self._gpus_l[i]))
                carry[i] = 0.0
        self._busy = busy
        per_job = [
            [self._revenue_l[i][level_i[i]] for i in range(k)],
            [self._quality_l[i][level_i[i]] for i in range(k)],
            [1.0] * k,
        ]
        revenue, quality_sum, served = (np.array(per_job) @ served_eo).tolist()

        # deadlines: jobs of class c still waiting at age deadline-1 are late from now on
        rows, cls = self._deadline_row, self._classes
        missed = q[:, rows, cls, :]  # (exec, C, origin)
        q[:, 0] += missed
        q[:, rows, cls, :] = 0
        missed_oc = missed.sum(axis=0)  # (C, origin)
        q[:, 1:-1] = q[:, 2:]  # one slot older; the oldest bucket is empty here
        q[:, -1] = 0
        if t == cfg.episode_slots - 1:  # settle: unserved jobs not yet late pay their penalty now
            pending = q[:, 1:].sum(axis=1) + self._transit.sum(axis=0)  # (exec, C, origin)
            missed_oc = missed_oc + pending.sum(axis=0)
            q[:, 0] += pending
            q[:, 1:] = 0
            self._transit[:] = 0
        penalty, violations = (self._penalty_and_count @ missed_oc).tolist()  # per origin

        arrived = [sum(row) for row in arrivals]
        self._last_arrivals = arrived
        n_handed = [sum(row) for row in handed]
        fees = [n * cfg.handoff_fee for n in n_handed]
        fees_received = [0.0] * k
        for i in range(k):
            fees_received[dest[i]] += fees[i]

        # energy balance per site (kW over the slot, kWh, USD)
        h, eta, soc_all = self._slot_h, self._eta, self._soc
        pue, ren, price = self._pue_l[t], self._renewable_l[t], self._price_l[t]
        grid_ren, carbon = self._grid_renewable_l[t], self._carbon_l[t]
        energy = []
        for i in range(k):
            b, gpus = busy[i], self._gpus_l[i]
            it_kw = (gpus * self._host_w_l[i] + b * self._cap_w_l[i][cap_i[i]] + (gpus - b) * self._idle_w_l[i]) / 1000
            load = it_kw * pue[i]
            net = load - ren[i]
            soc = soc_all[i]
            charge = discharge = 0.0
            if battery_i[i] == 2:
                charge = max(0.0, min(self._battery_kw_l[i], (self._soc_max_kwh[i] - soc) / (eta * h)))
            elif battery_i[i] == 0:
                discharge = max(0.0, min(self._battery_kw_l[i], (soc - self._soc_min_kwh[i]) * eta / h, net))
            soc_all[i] = soc = soc + (charge * eta - discharge / eta) * h
            balance = net + charge - discharge
            bought = balance * h if balance > 0 else 0.0
            curtailed = -balance * h if balance < 0 else 0.0
            cost = bought * price[i] / 1000.0
            wear = discharge * h * cfg.battery_wear_usd_per_kwh
            utility = revenue[i] - penalty[i] - cost - wear - fees[i] + fees_received[i]
            energy.append(
                (
                    utility,
                    cost,
                    wear,
                    load * h,
                    bought,
                    ren[i] * h,
                    ren[i] * h - curtailed,
                    bought * grid_ren[i],
                    bought * carbon[i] / 1000.0,
                    charge * h,
                    discharge * h,
                    soc / self._battery_kwh_safe_l[i],
                )
            )
        (utility, cost, wear, load_kwh, bought_kwh, ren_kwh, ren_used, grid_ren_kwh, carbon_kg,
         charge_kwh, discharge_kwh, soc_frac) = zip(*energy, strict=True)  # fmt: skip
        queue = remaining if t < cfg.episode_slots - 1 else q.reshape(k, -1).sum(axis=1).tolist()
        self._rows.append(
            [
                *utility, *revenue, *penalty, *cost, *wear, *fees, *fees_received, *arrived, *n_handed,
                *served, *executed, *violations, *quality_sum, *load_kwh, *bought_kwh, *ren_kwh,
                *ren_used, *grid_ren_kwh, *carbon_kg, *charge_kwh, *discharge_kwh, *soc_frac, *queue,
                *price,
            ]
        )  # fmt: skip
        return np.array(utility)

    def _observe(self) -> np.ndarray:
        """Observations of all agents, (K, obs_size) float32: per-episode columns precomputed,
        the queue, GPU and battery columns filled in here."""
        t = min(self._t, self.cfg.episode_slots - 1)
        k, c, col = self.cfg.n_asps, self._n_classes, self._col_arrivals
        obs = self._obs_static[t].copy()
        q = self._q
        by_class = q[:, 1:].sum(axis=(1, 3)).tolist()
        late = q[:, 0].sum(axis=(1, 2)).tolist()
        norm, gpus, kwh = self._obs_jobs_l, self._gpus_l, self._battery_kwh_safe_l
        rows, total = [], []
        for i in range(k):
            queue = [n / norm[i] for n in by_class[i]] + [late[i] / norm[i]]
            total.append(sum(queue))
            rows.append(queue + [self._busy[i] / gpus[i], self._soc[i] / kwh[i]])
        obs[:, : c + 3] = rows
        obs[:, col : col + k] = [
            [self._last_arrivals[i] / norm[i]] + [total[j] for j in self._others_l[i]] for i in range(k)
        ]
        return obs


def make_config(config: DataCenterConfig | dict | None, overrides: dict) -> DataCenterConfig:
    """A DataCenterConfig from a config (object or dict) plus keyword overrides, validated."""
    if isinstance(config, DataCenterConfig) and not overrides:
        return config
    base = config.model_dump() if isinstance(config, DataCenterConfig) else dict(config or {})
    return DataCenterConfig(**{**base, **overrides})

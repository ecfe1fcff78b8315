"""The `datacenter` scenario: every constant of the problem as a validated field, with its source."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aigcsched.envs.data import REGIONS, WORKLOADS

BATTERY_ACTIONS = ("discharge", "idle", "charge")  # action index -> battery command -1, 0, +1
ACTION_BRANCHES = ("keep", "target", "level", "battery", "cap")  # an agent's action, in `action_nvec`'s order
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
        description="trace directory (layout of `aigcsched data download`); 'embedded': the embedded typical "
        "days; None: the download cache ($AIGCSCHED_DATA_DIR, else ~/.cache/aigcsched/data) if it holds "
        "the traces, else the embedded typical days",
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
    wind_cut_in_ms: float = Field(3.0, gt=0.0, description="hub wind speed at which the turbine starts, m/s")
    wind_rated_ms: float = Field(12.0, gt=0.0, description="hub wind speed of rated power, m/s")
    wind_cut_out_ms: float = Field(25.0, gt=0.0, description="hub wind speed above which the turbine stops, m/s")
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
    # Prior logits for a residual policy: the heuristic's plan as look-ahead features.
    observe_lookahead: bool = Field(
        False,
        description="append a heuristic's action (`lookahead_plan`), one-hot per action branch, to each observation",
    )
    lookahead_plan: Literal[
        "combined", "deadline", "value_handoff", "tuned_handoff", "planned_handoff", "pooled_handoff"
    ] = Field("combined", description="the heuristic whose action `observe_lookahead` appends")
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
    def action_nvec(self) -> tuple[int, ...]:
        """Choices per branch of an agent's action (`ACTION_BRANCHES`): keep level, target, step level,
        battery, power cap."""
        return (
            len(self.keep_levels),
            self.n_asps - 1,
            len(self.step_levels),
            len(BATTERY_ACTIONS),
            len(self.power_cap_levels),
        )

    @property
    def obs_size(self) -> int:
        extra = self.n_asps if self.agent_id_in_obs else 0
        extra += sum(self.action_nvec) if self.observe_lookahead else 0
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


def make_config(config: DataCenterConfig | dict | None, overrides: dict) -> DataCenterConfig:
    """A DataCenterConfig from a config (object or dict) plus keyword overrides, validated."""
    if isinstance(config, DataCenterConfig) and not overrides:
        return config
    base = config.model_dump() if isinstance(config, DataCenterConfig) else dict(config or {})
    return DataCenterConfig(**{**base, **overrides})

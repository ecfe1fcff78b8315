"""Online text-to-image request scheduling on heterogeneous edge GPUs (the `edge` problem).

Feng, Zheng, Xu, "Online AI-Generated Content Request Scheduling with Deep Reinforcement
Learning" (referred to below as "the paper"). Every constant of the paper is a field of
`EdgeConfig` with the paper's value as default.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from pydantic import BaseModel, ConfigDict, Field, model_validator

# Penalty kinds, by code: g(t) for tardiness t >= 0 (paper, Sec. III).
PENALTY_KINDS = ("linear", "quadratic", "sqrt")
# Tardiness below this many seconds is float round-off, not lateness.
LATE_TOLERANCE_S = 1e-9


class EdgeConfig(BaseModel):
    """The `edge` scenario. Defaults are the paper's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_servers: int = Field(10, ge=1, description="edge GPU servers J")
    n_strong: int = Field(6, ge=0, description="strong servers; indexed first (0..n_strong-1)")
    strong_capability: tuple[float, float] = Field(
        (12.0, 18.0), description="strong server inference steps/s, uniform range (V100/A100 class)"
    )
    weak_capability: tuple[float, float] = Field(
        (6.0, 10.0), description="weak server inference steps/s, uniform range (RTX 3060 class)"
    )
    n_requests: int = Field(2000, ge=1, description="requests per episode")
    mean_interarrival_s: float = Field(15.0, description="mean of the exponential inter-arrival time")
    due_window_s: tuple[float, float] = Field((2.0, 20.0), description="due time = arrival + uniform(low, high)")
    penalty_kinds: tuple[str, ...] = Field(
        PENALTY_KINDS, description="tardiness penalties g, each request draws one uniformly"
    )
    tardiness_weight: float = Field(1.5, ge=0.0, description="w in reward = Q(steps) - w * g(tardiness)")
    max_steps: int = Field(200, description="largest inference step count")
    quality_base: float = Field(30.0, description="Q(s) = base + range / (1 + exp(-(slope * s - mid)))")
    quality_range: float = Field(35.0, description="quality gained between few steps and the ceiling")
    quality_slope: float = Field(0.1, description="steepness of the quality curve per inference step")
    quality_mid: float = Field(9.0, description="midpoint of the curve: Q rises fastest at s = mid / slope")
    penalty_probe_s: float = Field(5.0, ge=0.0, description="o_p = g(probe): tells the agent the penalty kind")
    observe_capabilities: bool = Field(False, description="append each server's capability to the observation")

    @model_validator(mode="after")
    def _check(self) -> EdgeConfig:
        if self.n_strong > self.n_servers:
            raise ValueError(f"n_strong ({self.n_strong}) must be <= n_servers ({self.n_servers})")
        for name in ("strong_capability", "weak_capability"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must satisfy 0 < low <= high, got ({low}, {high})")
        if not self.mean_interarrival_s > 0:
            raise ValueError(f"mean_interarrival_s must be > 0, got {self.mean_interarrival_s}")
        low, high = self.due_window_s
        if not 0 <= low <= high:
            raise ValueError(f"due_window_s must satisfy 0 <= low <= high (non-empty), got ({low}, {high})")
        if self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps}")
        if not self.penalty_kinds or any(k not in PENALTY_KINDS for k in self.penalty_kinds):
            raise ValueError(f"penalty_kinds must be a non-empty subset of {PENALTY_KINDS}, got {self.penalty_kinds}")
        return self

    @property
    def obs_size(self) -> int:
        return self.n_servers * (2 if self.observe_capabilities else 1) + 2

    def quality_table(self) -> np.ndarray:
        """Q(s) for s = 0..max_steps (index 0 unused), float64."""
        s = np.arange(self.max_steps + 1, dtype=np.float64)
        return self.quality_base + self.quality_range / (1.0 + np.exp(-(self.quality_slope * s - self.quality_mid)))

    def probe_penalties(self) -> np.ndarray:
        """o_p for each penalty code."""
        return penalty(np.full(len(PENALTY_KINDS), self.penalty_probe_s), np.arange(len(PENALTY_KINDS)))


def penalty(tardiness: np.ndarray, kind: np.ndarray) -> np.ndarray:
    """g_kind(tardiness), elementwise; kind holds codes into PENALTY_KINDS."""
    t = np.asarray(tardiness, dtype=np.float64)
    return np.where(kind == 0, t, np.where(kind == 1, t * t, np.sqrt(t)))


def penalty_scalar(tardiness: float, kind: int) -> float:
    if kind == 0:
        return tardiness
    if kind == 1:
        return tardiness * tardiness
    return math.sqrt(tardiness)


class Instance(NamedTuple):
    """One fully drawn episode: what the scheduler would know in hindsight."""

    capability: np.ndarray  # (J,) inference steps per second
    arrival: np.ndarray  # (n,) seconds
    due: np.ndarray  # (n,) seconds
    penalty: np.ndarray  # (n,) codes into PENALTY_KINDS


def draw_instance(rng: np.random.Generator, cfg: EdgeConfig) -> Instance:
    """Capabilities and the whole request stream of one episode, in a fixed draw order
    (the single and the batched env share it, so equal seeds give equal episodes)."""
    n_weak = cfg.n_servers - cfg.n_strong
    capability = np.concatenate(
        [
            rng.uniform(*cfg.strong_capability, size=cfg.n_strong),
            rng.uniform(*cfg.weak_capability, size=n_weak),
        ]
    )
    arrival = np.cumsum(rng.exponential(cfg.mean_interarrival_s, size=cfg.n_requests))
    due = arrival + rng.uniform(*cfg.due_window_s, size=cfg.n_requests)
    allowed = np.array([PENALTY_KINDS.index(k) for k in cfg.penalty_kinds])
    kinds = allowed[rng.integers(0, len(allowed), size=cfg.n_requests)]
    return Instance(capability, arrival, due, kinds)


def check_instance(instance: Instance, cfg: EdgeConfig) -> Instance:
    """A given instance as arrays, checked against the config's sizes."""
    inst = Instance(*(np.asarray(a) for a in instance))
    if inst.capability.shape != (cfg.n_servers,) or np.any(inst.capability <= 0):
        raise ValueError(f"instance needs {cfg.n_servers} positive capabilities, got {inst.capability}")
    n = cfg.n_requests
    if not inst.arrival.shape == inst.due.shape == inst.penalty.shape == (n,):
        raise ValueError(f"instance needs {n} arrivals, due times and penalty codes")
    if np.any(np.diff(inst.arrival) < 0) or np.any(inst.due < inst.arrival):
        raise ValueError("instance arrivals must be sorted and no due time may precede its arrival")
    return inst


class SchedulingState(NamedTuple):
    """What a scheduler with full knowledge of its servers sees when a request arrives.
    Leading batch dimensions are allowed (heuristics are vectorized over them)."""

    busy_for: np.ndarray  # (..., J) seconds until each server is free
    capability: np.ndarray  # (..., J) inference steps per second
    due_in: np.ndarray  # (...,) seconds from arrival to due time
    penalty: np.ndarray  # (...,) penalty code


def observation_from_state(state: SchedulingState, cfg: EdgeConfig) -> np.ndarray:
    """The env's observation (float32) for a scheduling state; batch dimensions are kept."""
    busy = np.asarray(state.busy_for, dtype=np.float64)
    parts = [busy]
    if cfg.observe_capabilities:
        parts.append(np.broadcast_to(state.capability, busy.shape))
    probe = cfg.probe_penalties()[np.asarray(state.penalty)]
    parts += [np.asarray(state.due_in, dtype=np.float64)[..., None], np.asarray(probe)[..., None]]
    return np.concatenate(parts, axis=-1).astype(np.float32)


class EdgeEnv(gym.Env):
    """Schedule a stream of text-to-image requests on J heterogeneous edge GPU servers.

    Each server runs one request at a time, first come first served, without preemption; a
    request on server j with s inference steps takes s / c_j seconds (c_j its capability in
    steps/s, drawn per episode). One step of the env = one arriving request.

    Observation (float32, paper's state): (m_1..m_J, o_t, o_p): m_j seconds until server j is
    free, o_t = due - arrival of the request to place, o_p = g(probe) of its penalty kind.
    With `observe_capabilities`, c_1..c_J follow m. After the last request o_t = o_p = 0.

    Action: MultiDiscrete([J, max_steps]): (server index, steps - 1).

    Reward: Q(steps) - w * g(max(0, finish - due)), with Q the paper's sigmoid quality curve.

    Start: capabilities and all arrivals are drawn from the seed at reset; servers are idle.
    `reset(options={"instance": Instance(...)})` plays a given instance instead.
    Episode end: terminated after `n_requests` requests; never truncated.

    Info: quality, tardiness (s) and late of the request just placed.

    Arguments: `config` (EdgeConfig or dict) and/or EdgeConfig fields as keyword arguments.
    """

    metadata = {"render_modes": []}

    def __init__(self, config: EdgeConfig | dict | None = None, render_mode: str | None = None, **overrides: Any):
        self.cfg = make_config(config, overrides)
        self.render_mode = render_mode
        cfg = self.cfg
        self.observation_space = spaces.Box(0.0, np.inf, shape=(cfg.obs_size,), dtype=np.float32)
        self.action_space = spaces.MultiDiscrete([cfg.n_servers, cfg.max_steps])
        self._quality = cfg.quality_table().tolist()
        self._probe = cfg.probe_penalties().tolist()
        self.instance: Instance | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        given = (options or {}).get("instance")
        if given is not None:
            self.instance = inst = check_instance(given, self.cfg)
        else:
            self.instance = inst = draw_instance(self.np_random, self.cfg)
        self._cap = inst.capability.tolist()
        self._arrival = inst.arrival.tolist()
        self._due = inst.due.tolist()
        self._kind = inst.penalty.tolist()
        self._free = [0.0] * self.cfg.n_servers
        self._t = 0
        return self._obs(), {}

    def step(self, action):
        if self.instance is None or self._t >= self.cfg.n_requests:
            raise RuntimeError("call reset() before step(), and again after the episode ended")
        server, steps = int(action[0]), int(action[1]) + 1
        t = self._t
        free = self._free
        arrival = self._arrival[t]
        start = free[server] if free[server] > arrival else arrival
        finish = start + steps / self._cap[server]
        free[server] = finish
        tardiness = finish - self._due[t]
        if tardiness <= LATE_TOLERANCE_S:
            tardiness = 0.0
        quality = self._quality[steps]
        reward = quality - self.cfg.tardiness_weight * penalty_scalar(tardiness, self._kind[t])
        self._t = t + 1
        terminated = self._t >= self.cfg.n_requests
        info = {"quality": quality, "tardiness": tardiness, "late": tardiness > 0.0}
        return self._obs(), reward, terminated, False, info

    def _obs(self) -> np.ndarray:
        t = self._t
        if t < self.cfg.n_requests:
            now = self._arrival[t]
            request = [self._due[t] - now, self._probe[self._kind[t]]]
        else:
            now = self._arrival[-1]
            request = [0.0, 0.0]
        busy = [f - now if f > now else 0.0 for f in self._free]
        if self.cfg.observe_capabilities:
            busy += self._cap
        return np.array(busy + request, dtype=np.float32)

    def state(self) -> SchedulingState:
        """Full-knowledge view of the request about to be placed (for heuristics)."""
        t = self._t
        now = self._arrival[t]
        busy = np.maximum(np.array(self._free) - now, 0.0)
        return SchedulingState(busy, self.instance.capability, np.float64(self._due[t] - now), np.int64(self._kind[t]))


def make_config(config: EdgeConfig | dict | None, overrides: dict) -> EdgeConfig:
    """An EdgeConfig from a config (object or dict) plus keyword overrides, validated."""
    if isinstance(config, EdgeConfig) and not overrides:
        return config
    base = config.model_dump() if isinstance(config, EdgeConfig) else dict(config or {})
    return EdgeConfig(**{**base, **overrides})

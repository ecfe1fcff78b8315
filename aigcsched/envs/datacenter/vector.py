"""`DataCenterVectorEnv`: the `datacenter` problem batched, B episodes (days) stepped together with
numpy; each slot runs the batched form of every phase over (B, K) arrays."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from aigcsched.envs.datacenter.battery_plan import BatteryPlanner, net_load_kw
from aigcsched.envs.datacenter.config import DataCenterConfig, make_config, split_days
from aigcsched.envs.datacenter.deadlines import jobs_due
from aigcsched.envs.datacenter.energy import SiteInputs
from aigcsched.envs.datacenter.env import (
    DataCenterState,
    agent_rewards,
    agent_spaces,
    per_job_at_full_power,
    slot_phases,
)
from aigcsched.envs.datacenter.inputs import episode_inputs, load_traces, renewable_kw
from aigcsched.envs.datacenter.ledger import BatchLedger
from aigcsched.envs.datacenter.lookahead import PLAN_BATTERY, PLANNED, plan_one_hot, price_arbitrage
from aigcsched.envs.datacenter.queues import QueueLayout


class DataCenterVectorEnv:
    """B episodes of `DataCenterEnv` in one set of arrays: same agents, spaces, rewards and ledger.

    reset(seed) seeds episode i with seed + i, which then draws exactly what
    `DataCenterEnv(cfg).reset(seed=seed + i)` draws, so it replays that env's episode step for step;
    reset() without a seed starts each episode's next day from its own random stream. Every episode
    lasts `episode_slots`, so all end together; there is no autoreset: call reset() again.

    Arrays: observations (B, K, obs_size) float32, actions (B, K, 5) ints (one agent's action as in
    `DataCenterEnv`), rewards (B, K), terminated and truncated (B,). `ledger`: {field: (B, slots, K)}.
    `global_state()`: (B, state_size) float32 for a centralized critic (see `state_size`).
    `state()`: `DataCenterEnv.state()` of every episode, as one DataCenterState of (B, K) arrays.
    """

    metadata = {"render_modes": [], "name": "datacenter_vector_v0"}

    def __init__(self, num_envs: int = 1, config: DataCenterConfig | dict | None = None, **overrides: Any):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.cfg = cfg = make_config(config, overrides)
        self.num_envs = num_envs
        self.n_agents = k = cfg.n_asps
        self.possible_agents = [f"asp_{i}" for i in range(k)]
        self.single_observation_space, self.single_action_space = agent_spaces(cfg)
        self._traces, self._workload = load_traces(cfg)
        self._days = split_days(cfg.day_split)
        self._arrivals, self._service, self._deadlines, self._energy, self._observations = slot_phases(cfg)
        self._layout = QueueLayout(cfg)
        self._queue_size = self._layout.size
        self._capacity, self._kwh_per_job = per_job_at_full_power(cfg)  # for state()
        self._battery_kwh = np.maximum(np.asarray(cfg.battery_kwh, dtype=np.float64), 1e-12)
        self._rngs = [np.random.default_rng() for _ in range(num_envs)]
        self._t = 0
        self._running = False

    @property
    def state_size(self) -> int:
        """Columns of `global_state()`: K blocks of `Observations.state_block`, then one."""
        return self.n_agents * self._observations.state_block + 1

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        cfg, b, k = self.cfg, self.num_envs, self.n_agents
        if seed is not None:
            self._rngs = [np.random.default_rng(seed + i) for i in range(b)]
        # each episode's draws, in DataCenterEnv.reset's order: the day, then its arrivals
        days = [cfg.day if cfg.day is not None else int(rng.choice(self._days)) for rng in self._rngs]
        self.days = np.array(days, dtype=np.int64)
        inputs = episode_inputs(cfg, self._traces, self._workload, self.days)  # (B, K, T) arrays
        arrivals = [self._arrivals.draw(rng, rate) for rng, rate in zip(self._rngs, inputs.rate, strict=True)]
        # slot first, so that a slot's (B, K) inputs are one block
        self._episode_arrivals = np.stack(arrivals, axis=1)  # (T, B, origin, class)
        site = (inputs.pue, inputs.renewable_kw, inputs.price, inputs.grid_renewable, inputs.carbon)
        self._site = np.ascontiguousarray(np.stack(site).transpose(3, 0, 1, 2))  # (T, field, B, K)
        self._obs_static = self._observations.known_in_advance(inputs)  # (T, B, K, obs_size)
        self._rate = np.ascontiguousarray(inputs.rate.transpose(2, 0, 1))  # (T, B, K), for state()
        self._day_prices = inputs.day_prices  # (B, K, 24)
        self._net_kwh = np.zeros((b, cfg.episode_slots, k))  # per slot: load less renewables
        planned = cfg.observe_lookahead and cfg.lookahead_plan in PLANNED
        self._battery_planner = BatteryPlanner(cfg) if planned else None
        if cfg.observe_lookahead and not planned:  # a battery of prices alone: every slot's, once
            rule = PLAN_BATTERY.get(cfg.lookahead_plan, price_arbitrage)
            self._battery_plan = rule(self._site[:, 2], self._day_prices)  # (T, B, K)
        self._renewable_ahead = None  # computed by the first global_state()
        # jobs waiting, (episode, executor, place): see QueueLayout; in transit as in DataCenterEnv.reset
        self._q = np.zeros((b, k, self._queue_size), dtype=np.int64)
        self._transit = np.zeros((b, max(cfg.handoff_delay_slots, 1), k, len(cfg.deadline_slots), k), dtype=np.int64)
        self._carry = np.zeros((b, k))
        self._soc = np.tile(np.asarray(cfg.battery_kwh, dtype=np.float64) * cfg.battery_soc_init, (b, 1))
        self._busy = np.zeros((b, k))
        self._last_arrivals = np.zeros((b, k), dtype=np.int64)
        self._utility_sum = np.zeros((b, k))
        self._t = 0
        self._ledger = BatchLedger(b, cfg.episode_slots, k)
        self._running = True
        self._obs = self._observe()
        return self._obs, {"day": self.days.copy()}

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        if not self._running:
            raise RuntimeError("call reset() before step(), and again after the episodes ended")
        act = np.asarray(actions, dtype=np.int64)
        if act.shape != (self.num_envs, self.n_agents, 5):
            raise ValueError(f"actions must have shape {(self.num_envs, self.n_agents, 5)}, got {act.shape}")
        utility = self._advance(act)
        self._utility_sum += utility
        self._t += 1
        done = self._t >= self.cfg.episode_slots
        reward = agent_rewards(self.cfg.reward_mode, utility, self._utility_sum, done)
        self._running = not done
        self._obs = self._observe()
        terminated = np.full(self.num_envs, done)
        return self._obs, reward, terminated, np.zeros(self.num_envs, dtype=bool), {}

    @property
    def ledger(self) -> dict[str, np.ndarray]:
        """The episodes so far: {field: (B, slots, K) array} for each of LEDGER_FIELDS."""
        return self._ledger.arrays()

    def global_state(self) -> np.ndarray:
        """(B, state_size) float32: what a centralized critic may see before the next slot. Per
        provider k, columns k x block .. (k + 1) x block - 1 (block = C + 2F + 9 for C deadline
        classes and F forecast hours), normalized as in the observation: queue per deadline class
        (C), late backlog, busy GPU share, battery state of charge, price now and at each forecast
        hour (1 + F), on-site renewable power, sin and cos of local time, last slot's arrivals, then
        jobs in transit to k, on-site renewable power at each forecast hour (F). Last column: the
        share of the episode's slots elapsed."""
        if self._renewable_ahead is None:
            self._renewable_ahead = self._renewable_forecast()
        t = min(self._t, self.cfg.episode_slots - 1)
        elapsed = self._t / self.cfg.episode_slots
        return self._observations.global_state(self._obs, self._transit, self._renewable_ahead[t], elapsed)

    def state(self) -> DataCenterState:
        """Full-knowledge view of every episode before the next slot (for heuristics):
        `DataCenterEnv.state()`'s fields with the axis of episodes in front, (B, K) and (B, K, S)."""
        t = min(self._t, self.cfg.episode_slots - 1)
        site = self._site[t]
        waiting, delay = self._q, self.cfg.handoff_delay_slots
        if delay:  # with the jobs that land before this slot's service
            waiting = waiting.copy()
            ring = self._transit[:, self._t % delay]  # (B, exec, class, origin)
            waiting[..., self._layout.landing.ravel()] += ring.reshape(*ring.shape[:2], -1)
        kwh_per_job = self._kwh_per_job * site[0][..., None]  # x PUE
        return DataCenterState(
            slot=self._t,
            queue=self._q.sum(axis=-1),
            due=jobs_due(waiting, self._layout.late_or_due, last=self._t == self.cfg.episode_slots - 1),
            expected_arrivals=self._rate[t].copy(),
            capacity=np.broadcast_to(self._capacity, kwh_per_job.shape).copy(),
            kwh_per_job=kwh_per_job,
            pue=site[0].copy(),
            price=site[2].copy(),
            day_prices=self._day_prices.copy(),
            soc=self._soc / self._battery_kwh,
            handoff_fee=self.cfg.handoff_fee,
            net_kw=net_load_kw(self._net_kwh[:, : self._t], self.cfg),
        )

    def _renewable_forecast(self) -> np.ndarray:
        """(T, B, K, F) on-site renewable power f hours ahead: that of the slot f hours later, on a
        grid of slots that runs past the episode's end."""
        cfg = self.cfg
        offsets = np.asarray(cfg.forecast_hours, dtype=np.int64) * (60 // cfg.slot_minutes)
        slots = np.arange(cfg.episode_slots + offsets.max())
        grid = renewable_kw(cfg, self._traces, self.days[:, None] * 24.0 + slots * (cfg.slot_minutes / 60.0))
        ahead = np.arange(cfg.episode_slots)[:, None] + offsets  # (T, F)
        return grid[..., ahead].transpose(2, 0, 1, 3)

    def fork(self, index: int, n: int, rng: np.random.Generator | None = None, futures: int = 1) -> DataCenterVectorEnv:
        """n copies of episode `index` as it stands now (same day, queues, batteries and records so
        far), for planners that simulate what may follow. With `rng`, the copies know no more of the
        future than a provider does: the arrivals from the current slot on are redrawn, `futures`
        draws, copy i getting draw i % futures (copies that share a draw compare actions on the same
        future), and the weather of later slots (PUE, on-site renewables, the grid's renewable share
        and carbon) stays as it is now; prices are day-ahead, known. Without, the future is the
        episode's own."""
        if not self._running:
            raise RuntimeError("fork() needs a running episode: call reset() first")
        if not 0 <= index < self.num_envs or n < 1 or futures < 1:
            raise ValueError(
                f"fork needs 0 <= index < {self.num_envs}, n >= 1 and futures >= 1, got {index}, {n}, {futures}"
            )
        out = copy.copy(self)
        out.num_envs = n
        pick = np.zeros(n, dtype=np.int64) + index
        for name in ("_q", "_transit", "_carry", "_soc", "_busy", "_last_arrivals", "_utility_sum", "_net_kwh"):
            setattr(out, name, getattr(self, name)[pick])
        out.days, out._day_prices = self.days[pick], self._day_prices[pick]
        for name in ("_episode_arrivals", "_rate", "_obs_static"):  # slot first
            setattr(out, name, getattr(self, name)[:, pick])
        out._site = self._site[:, :, pick]
        if hasattr(self, "_battery_plan"):
            out._battery_plan = self._battery_plan[:, pick]
        if self._battery_planner:
            out._battery_planner = BatteryPlanner(self.cfg)
        out._ledger = self._ledger.fork(index, n)
        out._obs = self._obs[pick]
        if rng is not None:
            now = self._t  # < episode_slots while running
            draws = np.stack([self._arrivals.draw(rng, self._rate[now:, index].T) for _ in range(futures)], axis=1)
            out._episode_arrivals[now:] = draws[:, np.arange(n) % futures]
            weather = [i for i, f in enumerate(SiteInputs._fields) if f != "price"]
            out._site[now + 1 :, weather] = out._site[now, weather]
            col = self._observations.renewable_column
            out._obs_static[now + 1 :, ..., col] = out._obs_static[now, ..., col]
            renewable = out._site[:, SiteInputs._fields.index("renewable_kw"), :, :, None]
            out._renewable_ahead = np.repeat(renewable, len(self.cfg.forecast_hours), axis=-1)  # as now
        elif self._renewable_ahead is not None:
            out._renewable_ahead = self._renewable_ahead[:, pick]
        out._rngs = [np.random.default_rng(rng.integers(2**63) if rng else None) for _ in range(n)]
        return out

    def queued_jobs(self) -> np.ndarray:
        """(B,) jobs not yet served: waiting at a data center or in transit."""
        b = self.num_envs
        return self._q.reshape(b, -1).sum(axis=1) + self._transit.reshape(b, -1).sum(axis=1)

    # --- one slot

    def _advance(self, act: np.ndarray) -> np.ndarray:
        """Simulate one slot of every episode under actions (B, K, 5); record it; return utility (B, K)."""
        t, last = self._t, self._t == self.cfg.episode_slots - 1
        q, transit = self._q, self._transit
        keep, target, level, battery, cap = np.moveaxis(act, -1, 0)
        arrived = self._arrivals.route_batch(q, transit, self._episode_arrivals[t], keep, target, t)
        served = self._service.serve_batch(q, level, cap, self._carry)
        penalty, violations = np.moveaxis(self._deadlines.age_batch(q, transit, settle=last), -2, 0)
        site = SiteInputs(*self._site[t])
        energy = self._energy.balance_batch(site, served.busy, cap, battery, self._soc)
        self._net_kwh[:, t] = energy.load_kwh - energy.renewable_kwh
        self._busy = served.busy
        self._last_arrivals = arrived.arrivals
        queue = q.sum(axis=-1) if last else served.remaining
        return self._ledger.record(arrived, served, penalty, violations, energy, queue, site.price)

    def _observe(self) -> np.ndarray:
        """Observations of all agents, (B, K, obs_size) float32."""
        static = self._obs_static[min(self._t, self.cfg.episode_slots - 1)]
        obs = self._observations.at_slot_batch(static, self._q, self._busy, self._soc, self._last_arrivals)
        if self.cfg.observe_lookahead:  # the plan for the state the agents now decide on
            state = self.state()
            if self._battery_planner:
                battery = self._battery_planner(state)
            else:
                battery = self._battery_plan[min(self._t, self.cfg.episode_slots - 1)]
            obs[..., obs.shape[-1] - sum(self.cfg.action_nvec) :] = plan_one_hot(self.cfg, state, battery)
        return obs

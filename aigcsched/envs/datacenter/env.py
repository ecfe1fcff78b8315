"""`DataCenterEnv`: the `datacenter` problem as a PettingZoo ParallelEnv; a step runs the slot's
phases in order (arrivals and hand-offs, service, deadlines, energy) and books them in the ledger."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from aigcsched.envs.datacenter.arrivals import Arrivals
from aigcsched.envs.datacenter.battery_plan import BatteryPlanner, net_load_kw
from aigcsched.envs.datacenter.config import DataCenterConfig, make_config, split_days
from aigcsched.envs.datacenter.deadlines import Deadlines, due_places, jobs_due
from aigcsched.envs.datacenter.energy import EnergyBalance, per_slot
from aigcsched.envs.datacenter.inputs import EpisodeInputs, episode_inputs, load_traces
from aigcsched.envs.datacenter.ledger import Ledger
from aigcsched.envs.datacenter.lookahead import PLANNED, plan_one_hot
from aigcsched.envs.datacenter.observation import Observations
from aigcsched.envs.datacenter.service import Service


class DataCenterState(NamedTuple):
    """What a coordinator with full knowledge sees before a slot (for heuristics). Arrays over
    providers k (from `DataCenterVectorEnv.state()`, with the axis of episodes in front); prices in
    USD/MWh."""

    slot: int
    queue: np.ndarray  # (K,) jobs waiting at each data center (late ones included)
    # (K,) of them and of the hand-offs landing this slot, the ones to serve this slot lest any pay its
    # penalty (`deadlines.jobs_due`)
    due: np.ndarray
    expected_arrivals: np.ndarray  # (K,) mean arrivals at each provider this slot
    capacity: np.ndarray  # (K, S) jobs per slot at each step level, full power
    kwh_per_job: np.ndarray  # (K, S) facility energy per job at each step level, at this slot's PUE
    pue: np.ndarray  # (K,) this slot's PUE
    price: np.ndarray  # (K,) this slot's price
    day_prices: np.ndarray  # (K, 24) the episode's first 24 hourly prices (day-ahead market)
    soc: np.ndarray  # (K,) battery state of charge, fraction of capacity
    handoff_fee: float
    # (K,) mean net load (facility load less renewables, kW) of the last slots (`battery_plan`);
    # None before the first slot
    net_kw: np.ndarray | None = None


def agent_spaces(cfg: DataCenterConfig) -> tuple[spaces.Box, spaces.MultiDiscrete]:
    """One agent's (observation space, action space); every agent has the same."""
    obs = spaces.Box(-np.inf, np.inf, shape=(cfg.obs_size,), dtype=np.float32)
    return obs, spaces.MultiDiscrete(list(cfg.action_nvec))


def per_job_at_full_power(cfg: DataCenterConfig) -> tuple[np.ndarray, np.ndarray]:
    """(capacity, kWh per job at PUE 1), (K, S) each, at each step level and full power: the
    constant parts of `DataCenterState`'s capacity and kwh_per_job."""
    k = cfg.n_asps
    sec_per_job = cfg.seconds_per_job()[:, :, int(np.argmax(cfg.power_cap_levels))]
    gpu_s = np.asarray(cfg.n_gpus, dtype=np.float64) * (cfg.slot_minutes * 60.0)
    it_kw_per_job = (np.asarray(cfg.gpu_power_w)[:, None] + np.full(k, cfg.host_power_w)[:, None]) / 1000.0
    return gpu_s[:, None] / sec_per_job, it_kw_per_job * sec_per_job / 3600.0


def slot_phases(cfg: DataCenterConfig) -> tuple[Arrivals, Service, Deadlines, EnergyBalance, Observations]:
    """The slot's phases, each with its constants, in the order a slot runs them."""
    return Arrivals(cfg), Service(cfg), Deadlines(cfg), EnergyBalance(cfg), Observations(cfg)


def agent_rewards(mode: str, utility: np.ndarray, utility_sum: np.ndarray, done: bool) -> np.ndarray:
    """Each agent's reward (..., K) by `reward_mode`, from the slot's utility and the episode's so far."""
    if mode == "dense":
        return utility
    if mode == "team":  # every agent gets the sum over agents
        return np.repeat(utility.sum(axis=-1, keepdims=True), utility.shape[-1], axis=-1)
    return utility_sum.copy() if done else np.zeros_like(utility)  # sparse: the day's utility at its end


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

    With `agent_id_in_obs`, a one-hot of the agent's index follows (for one shared policy). With
    `observe_lookahead`, the last sum(nvec) entries are the action of the heuristic named by
    `lookahead_plan` (default `combined`) for the agent in this state, a one-hot per action branch
    in branch order (see `lookahead`).

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
        self._obs_space, self._act_space = agent_spaces(cfg)
        self.observation_spaces = {a: self._obs_space for a in self.possible_agents}
        self.action_spaces = {a: self._act_space for a in self.possible_agents}
        self._traces, self._workload = load_traces(cfg)
        self._days = split_days(cfg.day_split)
        self._arrivals, self._service, self._deadlines, self._energy, self._observations = slot_phases(cfg)
        self._capacity, self._kwh_per_job = per_job_at_full_power(cfg)  # for state()
        self._due_places = due_places(cfg).ravel()  # for state()
        self._battery_kwh = np.maximum(np.asarray(cfg.battery_kwh, dtype=np.float64), 1e-12)
        self._rng = np.random.default_rng()
        self._ledger = Ledger(k)

    # --- PettingZoo API

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    def reset(self, seed: int | None = None, options: dict | None = None):
        cfg = self.cfg
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.day = cfg.day if cfg.day is not None else int(self._rng.choice(self._days))
        self._inputs = episode_inputs(cfg, self._traces, self._workload, self.day)
        self._site_inputs = per_slot(self._inputs)
        self._obs_static = self._observations.known_in_advance(self._inputs)
        k, c = cfg.n_asps, len(cfg.deadline_slots)
        # jobs waiting, [executor, bucket, class, origin]: bucket 0 holds late jobs (their penalty
        # paid), bucket 1 + a the jobs of age A - 1 - a slots (oldest first, the serving order)
        self._q = np.zeros((k, max(cfg.deadline_slots) + 1, c, k), dtype=np.int64)
        self._transit = np.zeros((max(cfg.handoff_delay_slots, 1), k, c, k), dtype=np.int64)
        self._episode_arrivals = self._arrivals.draw(self._rng, self._inputs.rate).tolist()  # [slot][origin][class]
        self._carry = [0.0] * k  # fraction of a job already processed at each data center
        self._soc = [b * cfg.battery_soc_init for b in cfg.battery_kwh]  # kWh
        self._busy = [0.0] * k  # GPUs busy in the last slot (GPU-equivalents)
        self._last_arrivals = [0] * k
        self._utility_sum = np.zeros(k)
        self._t = 0
        self._ledger = Ledger(k)
        self._net_kwh = np.zeros((cfg.episode_slots, k))  # per slot: load less renewables
        planned = cfg.observe_lookahead and cfg.lookahead_plan in PLANNED
        self._battery_planner = BatteryPlanner(cfg) if planned else None
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
        reward = agent_rewards(self.cfg.reward_mode, utility, self._utility_sum, done).tolist()
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
        return self._ledger.arrays()

    def state(self) -> DataCenterState:
        """Full-knowledge view before the next slot (for heuristics)."""
        cfg, t = self.cfg, min(self._t, self.cfg.episode_slots - 1)
        inp = self._inputs
        waiting = self._q.sum(axis=-1)  # (exec, bucket, class), serving order
        if cfg.handoff_delay_slots:  # with the jobs that land before this slot's service
            waiting[:, max(cfg.deadline_slots) - cfg.handoff_delay_slots] += self._transit[
                self._t % cfg.handoff_delay_slots
            ].sum(axis=-1)
        return DataCenterState(
            slot=self._t,
            queue=self._q.sum(axis=(1, 2, 3)),
            due=jobs_due(waiting.reshape(len(waiting), -1), self._due_places, last=self._t == cfg.episode_slots - 1),
            expected_arrivals=inp.rate[:, t].copy(),
            capacity=self._capacity.copy(),
            kwh_per_job=self._kwh_per_job * inp.pue[:, t, None],
            pue=inp.pue[:, t].copy(),
            price=inp.price[:, t].copy(),
            day_prices=inp.day_prices.copy(),
            soc=np.array(self._soc) / self._battery_kwh,
            handoff_fee=cfg.handoff_fee,
            net_kw=net_load_kw(self._net_kwh[: self._t], cfg),
        )

    def hindsight(self) -> tuple[EpisodeInputs, np.ndarray]:
        """The whole episode's inputs and arrivals (slot, origin, class), drawn at reset: what an
        offline planner with perfect foresight knows (`aigcsched.algorithms.datacenter_optimum`)."""
        if not hasattr(self, "_inputs"):
            raise RuntimeError("call reset() before hindsight()")
        return self._inputs, np.array(self._episode_arrivals, dtype=np.int64)

    def service_queue(self, keep: list[int], target: list[int]) -> np.ndarray:
        """The queues (executor, bucket, class, origin) that the next slot's service would see with
        these keep levels and hand-off targets (this slot's arrivals and landing hand-offs added);
        a copy, the env is unchanged. For planners that size a slot's service to its queue."""
        q, transit = self._q.copy(), self._transit.copy()
        self._arrivals.route(q, transit, self._episode_arrivals[self._t], list(keep), list(target), self._t)
        return q

    def queued_jobs(self) -> int:
        """Jobs not yet served: waiting at a data center or in transit."""
        return int(self._q.sum() + self._transit.sum())

    # --- one slot

    def _advance(self, act: np.ndarray) -> np.ndarray:
        """Simulate one slot under actions (K, 5); record it in the ledger; return utility (K,)."""
        t, last = self._t, self._t == self.cfg.episode_slots - 1
        q, transit = self._q, self._transit
        keep, target, level, battery, cap = act.T.tolist()
        arrived = self._arrivals.route(q, transit, self._episode_arrivals[t], keep, target, t)
        served = self._service.serve(q, level, cap, self._carry)
        penalty, violations = self._deadlines.age(q, transit, settle=last)
        site = self._site_inputs[t]
        energy = self._energy.balance(site, served.busy, cap, battery, self._soc)
        self._net_kwh[t] = np.subtract(energy.load_kwh, energy.renewable_kwh)
        self._busy = served.busy
        self._last_arrivals = arrived.arrivals
        queue = q.reshape(len(q), -1).sum(axis=1).tolist() if last else served.remaining
        return self._ledger.record(arrived, served, penalty, violations, energy, queue, site.price)

    def _observe(self) -> np.ndarray:
        """Observations of all agents, (K, obs_size) float32."""
        static = self._obs_static[min(self._t, self.cfg.episode_slots - 1)]
        obs = self._observations.at_slot(static, self._q, self._busy, self._soc, self._last_arrivals)
        if self.cfg.observe_lookahead:  # the plan for the state the agents now decide on
            state = self.state()
            battery = self._battery_planner(state) if self._battery_planner else None
            obs[:, obs.shape[1] - sum(self.cfg.action_nvec) :] = plan_one_hot(self.cfg, state, battery)
        return obs

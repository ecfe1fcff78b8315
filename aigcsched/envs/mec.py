"""AIGC task offloading with multi-server selection and workload split in collaborative edge
networks (the `mec` problem).

After C. Xu et al., "Diffusion-based Task Scheduling for Efficient AI-Generated Content in Edge
Networks" (DDRL-ATS / DDRL-AMSA) and its extension LAD-TS ("Accelerating AIGC Services with
Latent Action Diffusion Scheduling in Edge Networks", arXiv:2412.18212). Every constant is a
field of `MECConfig`, with its source in a comment; where the papers leave a value open, the
comment says it is this project's choice.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any, Literal, NamedTuple

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv
from pydantic import BaseModel, ConfigDict, Field, model_validator

ACTION_MODES = ("subset", "weights")
SPLIT_RULES = ("capacity", "finish_together")


class MECConfig(BaseModel):
    """The `mec` scenario: base stations with one edge server each, on a wired core network."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # DDRL-ATS / LAD-TS evaluate 5 and 20 edge servers, one per base station.
    n_servers: int = Field(5, ge=2, description="base stations, each with one edge server (and one agent)")
    # The papers draw server computing capacities from 10-50 GHz; work here is in denoising steps,
    # so capacities are 10-50 denoising steps/s, drawn per episode.
    capacity_steps_per_s: tuple[float, float] = Field(
        (10.0, 50.0), description="edge server capacity, uniform range, denoising steps/s"
    )
    # Wired core links between base stations of 400-500 Mbps (DDRL-ATS / LAD-TS set-ups), drawn
    # per episode and pair, symmetric.
    link_mbps: tuple[float, float] = Field((400.0, 500.0), description="core link rate between two stations")
    # Task input data of 2-5 Mbit (DDRL-ATS / LAD-TS set-ups).
    task_mbit: tuple[float, float] = Field((2.0, 5.0), description="task input size, uniform range, Mbit")
    # Work per task: 20-60 denoising steps (typical sampler settings of Stable Diffusion, this
    # project's choice); with the arrival probability below the servers are ~80% busy on average.
    task_steps: tuple[int, int] = Field((20, 60), description="task work, uniform integer range, denoising steps")
    arrival_prob: float = Field(0.6, ge=0.0, le=1.0, description="chance that a task arrives at a station per slot")
    slot_s: float = Field(1.0, gt=0.0, description="time slot length, seconds (one decision per slot)")
    episode_slots: int = Field(100, ge=1, description="slots per episode")
    action_mode: Literal["subset", "weights"] = Field(
        "subset",
        description="subset: Discrete, a server subset of size <= max_split with a split rule; "
        "weights: MultiDiscrete, a weight level per server, shares proportional to the weights",
    )
    max_split: int = Field(2, ge=1, description="largest server subset in the subset action")
    split_rules: tuple[str, ...] = Field(
        SPLIT_RULES, description="rules offered with each subset: capacity-proportional, finish-together"
    )
    weight_levels: int = Field(4, ge=2, description="weight levels 0..L-1 per server in the weights action")
    reward_mode: Literal["own", "team", "sparse", "marginal"] = Field(
        "own",
        description="own: minus the delay of the station's own task; team: minus all delays of the slot; "
        "sparse: minus the station's summed delays, paid once at the end of the episode; marginal: own, plus "
        "minus the seconds the station's bookings add to the other stations' tasks, as those tasks are booked "
        "(a difference reward: its episode sum is the team's delay with the station against without its tasks)",
    )
    observe_lookahead: bool = Field(
        False,
        description="subset mode: append per action how much later (s, as <= 0) than the best action the "
        "station's task would finish on the current queues",
    )
    observe_booked_work: bool = Field(
        False,
        description="subset mode: append, per action and server (action-major), the seconds of processing the "
        "action would book on that server for the station's task (split on the look-ahead's queues); before the "
        "look-ahead block",
    )
    # Stations deciding at once cannot see each other's tasks; expecting the ones booked before them
    # to load the servers myopic would pick keeps them from piling onto the same fast servers.
    lookahead_anticipation: float = Field(
        0.0,
        ge=0.0,
        description="stations deciding at once: compute the look-ahead on the queues a station expects, each "
        "station booked before it in the slot adding a task of this many times the mean expected one "
        "(arrival_prob x the mean task) where myopic would put it (`MECEnv.expected_queues`); 0: current queues. "
        "Unused without observe_lookahead and when deciding in turn (the queues then hold the earlier bookings)",
    )
    decision: Literal["simultaneous", "in_turn"] = Field(
        "simultaneous",
        description="simultaneous: all stations decide at once on the queues of the slot's start; in_turn: one "
        "station per step (bs_0 first, a slot is K steps), each on the queues as booked by the stations before it",
    )

    @model_validator(mode="after")
    def _check(self) -> MECConfig:
        for name in ("capacity_steps_per_s", "link_mbps", "task_mbit", "task_steps"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must satisfy 0 < low <= high, got ({low}, {high})")
        if self.max_split > self.n_servers:
            raise ValueError(f"max_split ({self.max_split}) must be <= n_servers ({self.n_servers})")
        if not self.split_rules or any(r not in SPLIT_RULES for r in self.split_rules):
            raise ValueError(f"split_rules must be a non-empty subset of {SPLIT_RULES}, got {self.split_rules}")
        if self.observe_lookahead and self.action_mode != "subset":
            raise ValueError("observe_lookahead needs action_mode 'subset' (one entry per Discrete action)")
        if self.observe_booked_work and self.action_mode != "subset":
            raise ValueError("observe_booked_work needs action_mode 'subset' (entries per Discrete action)")
        if self.decision == "in_turn" and self.reward_mode in ("sparse", "marginal"):
            # a turn's reward goes to the station on turn; the episode's sum belongs to no single turn,
            # and one trajectory of turns already returns the later stations' delays
            raise ValueError(f"decision 'in_turn' takes reward_mode 'own' or 'team', not {self.reward_mode!r}")
        return self

    @property
    def anticipation(self) -> float:
        """The load the look-ahead expects of the earlier stations: `lookahead_anticipation` where it applies."""
        applies = self.observe_lookahead and self.decision == "simultaneous"
        return self.lookahead_anticipation if applies else 0.0

    def subsets(self) -> list[tuple[int, ...]]:
        """Server subsets of the subset action, by size then lexicographically."""
        return [c for k in range(1, self.max_split + 1) for c in itertools.combinations(range(self.n_servers), k)]


class MECInstance(NamedTuple):
    """One drawn episode."""

    capacity: np.ndarray  # (N,) denoising steps/s
    link_mbps: np.ndarray  # (N, N) symmetric, diagonal unused
    has_task: np.ndarray  # (slots, N) bool
    task_mbit: np.ndarray  # (slots, N)
    task_steps: np.ndarray  # (slots, N) int


def draw_instance(rng: np.random.Generator, cfg: MECConfig) -> MECInstance:
    n, slots = cfg.n_servers, cfg.episode_slots
    capacity = rng.uniform(*cfg.capacity_steps_per_s, size=n)
    upper = np.triu(rng.uniform(*cfg.link_mbps, size=(n, n)), 1)
    links = upper + upper.T
    np.fill_diagonal(links, np.inf)  # the own server needs no core transfer
    has_task = rng.random((slots, n)) < cfg.arrival_prob
    mbit = rng.uniform(*cfg.task_mbit, size=(slots, n))
    steps = rng.integers(cfg.task_steps[0], cfg.task_steps[1] + 1, size=(slots, n))
    return MECInstance(capacity, links, has_task, mbit, steps)


def finish_together_shares(
    free_at: np.ndarray, tx_s_per_share: np.ndarray, proc_s_per_share: np.ndarray, now: float
) -> np.ndarray:
    """Shares x (sum 1) over the given servers such that all parts finish at the same time T.

    Part j finishes at max(now + a_j x_j, f_j) + b_j x_j (a_j: transfer, b_j: processing seconds
    of the whole task); the largest x_j done by T is max(0, min((T - f_j) / b_j, (T - now) / (a_j + b_j))).
    Their sum is piecewise linear and non-decreasing in T, with kinks only at T = f_j, T = now and
    where the two terms cross, so T is found exactly between the kinks around sum = 1."""
    f, a, b = (np.asarray(v, dtype=np.float64) for v in (free_at, tx_s_per_share, proc_s_per_share))

    def done_by(T: np.ndarray) -> np.ndarray:
        T = np.asarray(T)[..., None]
        return np.maximum(0.0, np.minimum((T - f) / b, (T - now) / (a + b)))

    high = max(f.max(), now) + (a + b).min()  # one server alone finishes the whole task by `high`
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = np.where(a > 0, (f * (a + b) - now * b) / a, np.inf)
    kinks = np.concatenate([[now, high], f, cross])
    kinks = np.unique(kinks[np.isfinite(kinks) & (kinks >= now) & (kinks <= high)])
    total = done_by(kinks).sum(axis=-1)
    i = int(np.argmax(total >= 1.0)) or len(kinks) - 1  # total(now) = 0 < 1 <= total(high), up to rounding
    T = kinks[i - 1] + (1.0 - total[i - 1]) * (kinks[i] - kinks[i - 1]) / (total[i] - total[i - 1])
    x = done_by(T)
    return x / x.sum()


class MECEnv(ParallelEnv):
    """Offload AIGC tasks among the edge servers of N base stations joined by a wired core network.

    Each base station (agent `bs_i`) has one edge server (capacity c_i denoising steps/s) with a
    first-come-first-served queue. In each slot a task (D Mbit of input, W denoising steps of work)
    arrives at a station with probability `arrival_prob`; the station chooses which servers get
    which share x_j of it (sum x_j = 1). Part j is sent over the core link i -> j (D x_j / r_ij s,
    none for the own server), waits for server j to be free, and takes W x_j / c_j s. The task's
    delay is from its arrival until its last part finishes. Tasks of one slot join the queues in
    station order (bs_0 first).

    Observation (float32, per agent): has_task, D / 5 Mbit, W / 60 steps, every server's backlog
    (seconds until free), every capacity / 50, the own station's link rates / 500 Mbps (1 for
    itself), one-hot station index; with `observe_lookahead`, last one entry per subset action a:
    -(finish(a) - min finish), finish(a) the seconds until the station's task would finish split
    as a means on the current queues (see `action_finishes`), so <= 0 and 0 at the best action
    (all 0 without a task); with `lookahead_anticipation` a > 0, on the queues the station expects
    (`expected_queues(a)`), so its best action is `anticipating_myopic`'s.

    Action: `subset` mode: Discrete(#subsets x #rules): server subset s (all subsets of size
    1..max_split, see `MECConfig.subsets`) and split rule r (`capacity`: x_j ~ c_j;
    `finish_together`: all parts finish at once given queues and links), index s * #rules + r.
    `weights` mode: MultiDiscrete([L] * N): x_j ~ weight level j (all zeros: the own server).
    Ignored in slots without a task.

    Reward: minus the delay (s) of the agent's own task this slot (0 without one), or in `team`
    mode minus the total delay of all tasks of the slot, for every agent; in `sparse` mode 0 until
    the last slot, which pays minus the summed delays of all the agent's tasks of the episode.
    In `marginal` mode, own plus minus the delay the agent's bookings add to other stations' tasks
    booked this step: `pushed` (N, K) holds how much later each server is free because of each
    station's bookings so far (exact for FIFO queues with the other bookings as they were), and a
    task's added delay is its finish less its finish on the queues without that station's work.
    Summed over an episode, station k's rewards are minus the team's total delay plus the team's
    total delay had k booked nothing (the others' shares kept): a difference reward, which scores a
    station by what it costs the others too, not by its own delay alone.

    Start: capacities, links and all tasks are drawn from the seed at reset; queues are empty.
    `reset(options={"instance": MECInstance(...)})` plays a given instance; `options={"backlog_s": b}`
    starts the queues with servers busy for b_j seconds (one slot of a live system, as served).
    Episode end: truncated after `episode_slots` slots (a time limit); never terminated.

    Info per agent: delay, transfer, queueing and processing seconds of its task (the max over
    parts for the last three), parts, has_task.

    Deciding in turn (`decision: in_turn`): a slot takes K steps, one per station in booking order
    (bs_0 first; `turn_agent`); each step books only the task of the station on turn, on the queues
    as booked by the stations before it in the slot, and the clock moves on after the last turn. So
    the observation's backlog already holds the slot's earlier bookings, and the look-ahead block is
    the station on turn's (zeros for the others): its best action is what `sequential_myopic`
    picks. The other stations' actions are ignored; has_task in the info, the reward (own) and the
    tally are the station on turn's task's, this step's alone (team: every agent gets minus its delay).

    Arguments: `config` (MECConfig or dict) and/or MECConfig fields as keyword arguments.
    """

    metadata = {"render_modes": [], "name": "mec_v0", "is_parallelizable": True}

    def __init__(self, config: MECConfig | dict | None = None, render_mode: str | None = None, **overrides: Any):
        base = config.model_dump() if isinstance(config, MECConfig) else dict(config or {})
        self.cfg = cfg = MECConfig(**{**base, **overrides})
        self.render_mode = render_mode
        n = cfg.n_servers
        self.possible_agents = [f"bs_{i}" for i in range(n)]
        self.agents: list[str] = []
        self._subsets = cfg.subsets()
        n_actions = len(self._subsets) * len(cfg.split_rules)
        if cfg.action_mode == "subset":
            self._act_space = spaces.Discrete(n_actions)
        else:
            self._act_space = spaces.MultiDiscrete([cfg.weight_levels] * n)
        work = n_actions * n if cfg.observe_booked_work else 0
        low = np.zeros(3 + 4 * n + work + (n_actions if cfg.observe_lookahead else 0), dtype=np.float32)
        low[3 + 4 * n + work :] = -np.inf  # the look-ahead block is <= 0
        self._obs_space = spaces.Box(low, np.inf, dtype=np.float32)
        self.instance: MECInstance | None = None
        self.np_random = np.random.default_rng()

    def observation_space(self, agent: str) -> spaces.Box:
        return self._obs_space

    def action_space(self, agent: str) -> spaces.Space:
        return self._act_space

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.np_random = np.random.default_rng(seed)
        given = (options or {}).get("instance")
        self.instance = self._check_instance(given) if given is not None else draw_instance(self.np_random, self.cfg)
        self.agents = list(self.possible_agents)
        self.slot = 0
        self.turn = 0  # the station on turn (in_turn decisions; always 0 when all decide at once)
        self.free_at = np.zeros(self.cfg.n_servers)  # absolute time each server's queue empties
        backlog = (options or {}).get("backlog_s")
        if backlog is not None:
            backlog = np.asarray(backlog, dtype=np.float64)
            if backlog.shape != (self.cfg.n_servers,) or not np.all((backlog >= 0) & np.isfinite(backlog)):
                raise ValueError(f"backlog_s needs {self.cfg.n_servers} finite values >= 0, got {backlog}")
            self.free_at = backlog.copy()
        # seconds each station's bookings (column) push each server's (row) free-at (reward_mode marginal)
        self.pushed = np.zeros((self.cfg.n_servers, self.cfg.n_servers))
        self._added = np.zeros(self.cfg.n_servers)  # delay each station's bookings added this step
        self.assigned_steps = np.zeros(self.cfg.n_servers)  # work given to each server so far
        self.arrived_steps = 0.0
        # per agent over the episode so far: tasks, summed delay (s), summed parts
        self.tally = {a: {"tasks": 0, "delay_s": 0.0, "parts": 0} for a in self.agents}
        return self._observations(), {a: {} for a in self.agents}

    def _check_instance(self, inst: MECInstance) -> MECInstance:
        inst = MECInstance(*(np.asarray(v) for v in inst))
        n, slots = self.cfg.n_servers, self.cfg.episode_slots
        if inst.capacity.shape != (n,) or np.any(inst.capacity <= 0):
            raise ValueError(f"instance needs {n} positive capacities, got {inst.capacity}")
        if inst.link_mbps.shape != (n, n) or np.any(inst.link_mbps <= 0):
            raise ValueError(f"instance needs an ({n}, {n}) matrix of positive link rates")
        if not inst.has_task.shape == inst.task_mbit.shape == inst.task_steps.shape == (slots, n):
            raise ValueError(f"instance needs task arrays of shape ({slots}, {n})")
        return inst

    @property
    def now(self) -> float:
        return self.slot * self.cfg.slot_s

    @property
    def in_turn(self) -> bool:
        return self.cfg.decision == "in_turn"

    @property
    def turn_agent(self) -> str | None:
        """The station that decides this step when stations decide in turn (None: all at once)."""
        return self.possible_agents[self.turn] if self.in_turn else None

    def decides(self, i: int) -> bool:
        """Whether station i's task (if any) is booked by this step."""
        return not self.in_turn or i == self.turn

    def _observations(self) -> dict[str, np.ndarray]:
        inst, n = self.instance, self.cfg.n_servers
        slot = min(self.slot, self.cfg.episode_slots - 1)
        backlog = np.maximum(self.free_at - self.now, 0.0)
        shared = np.concatenate([backlog, inst.capacity / 50.0])
        out = {}
        anticipation = self.cfg.anticipation
        expected = self.expected_queues(anticipation) if anticipation and self.slot < self.cfg.episode_slots else None
        for i, agent in enumerate(self.agents):
            task = self.slot < self.cfg.episode_slots and inst.has_task[slot, i]
            head = [1.0, inst.task_mbit[slot, i] / 5.0, inst.task_steps[slot, i] / 60.0] if task else [0.0, 0.0, 0.0]
            links = np.minimum(inst.link_mbps[i] / 500.0, 1.0)  # own server (inf) shows as 1
            parts = [head, shared, links, np.eye(n)[i]]
            queues = None if expected is None else expected[i]
            deciding = task and self.decides(i)
            if self.cfg.observe_booked_work:
                parts.append(self.booked_work(i, queues).ravel() if deciding else np.zeros(self._act_space.n * n))
            if self.cfg.observe_lookahead:
                parts.append(self.lookahead(i, queues) if deciding else np.zeros(self._act_space.n))
            out[agent] = np.concatenate(parts).astype(np.float32)
        return out

    def action_finishes(self, i: int) -> np.ndarray:
        """Seconds from now until station i's current task would finish, on the current queues, split
        as each subset action means (server subset s and rule r, in action order s * #rules + r)."""
        cfg = self.cfg
        return np.array([self.finish_after(i, self.split(i, s, r)) for s in self._subsets for r in cfg.split_rules])

    def lookahead(self, i: int, queues: np.ndarray | None = None) -> np.ndarray:
        """min finish - finish per subset action: <= 0, first 0 (np.argmax) at the myopic action; on
        `queues` (free-at times per server) instead of the current ones when given."""
        with self._on_queues(queues):
            finish = self.action_finishes(i)
        return finish.min() - finish  # = -(finish - min) exactly, without -0.0

    def booked_work(self, i: int, queues: np.ndarray | None = None) -> np.ndarray:
        """(A, N): the seconds of processing each subset action (in action order) would book on each
        server for station i's current task, split on the current queues (or `queues`)."""
        proc = self.part_costs(i)[1]
        with self._on_queues(queues):
            return np.array([proc * self.split(i, s, r) for s in self._subsets for r in self.cfg.split_rules])

    @contextlib.contextmanager
    def _on_queues(self, queues: np.ndarray | None):
        """Free-at times `queues` in place of the current ones for a while (None: the current ones)."""
        if queues is None:
            yield
            return
        current, self.free_at = self.free_at, queues
        try:
            yield
        finally:
            self.free_at = current

    def expected_queues(self, load: float) -> np.ndarray:
        """(K, N) free-at times: row i the queues station i expects when it cannot see the others'
        tasks of this slot: each station booked before it (bs_0 first) adds a task of `load` x the
        mean expected one (arrival_prob x the mean task's Mbit and steps) where myopic would put it,
        whether or not it has a task. Row 0 is the current queues. Nothing is booked."""
        cfg, inst, slot = self.cfg, self.instance, self.slot
        scale = load * cfg.arrival_prob
        guess = inst._replace(
            task_mbit=inst.task_mbit.astype(np.float64), task_steps=inst.task_steps.astype(np.float64)
        )
        guess.task_mbit[slot], guess.task_steps[slot] = scale * sum(cfg.task_mbit) / 2, scale * sum(cfg.task_steps) / 2
        current = self.free_at
        rows = np.empty((cfg.n_servers, cfg.n_servers))
        self.instance, self.free_at = guess, current.copy()
        try:
            for i in range(cfg.n_servers):
                rows[i] = self.free_at
                if i + 1 < cfg.n_servers:
                    subset, rule = divmod(int(np.argmin(self.action_finishes(i))), len(cfg.split_rules))
                    self._place(i, self.split(i, self._subsets[subset], cfg.split_rules[rule]))
        finally:
            self.instance, self.free_at = inst, current
        return rows

    def finish_after(self, i: int, x: np.ndarray) -> float:
        """Seconds from now until station i's task, split by shares x, would finish on the current queues."""
        return float(np.max(self.part_times(i, x)[2][x > 0]) - self.now)

    def shares(self, agent: str, action: Any) -> np.ndarray:
        """The split (N shares summing to 1) an action means for `agent`'s current task."""
        i, cfg = self.possible_agents.index(agent), self.cfg
        x = np.zeros(cfg.n_servers)
        if cfg.action_mode == "weights":
            w = np.asarray(action, dtype=np.float64)
            if w.sum() <= 0:
                x[i] = 1.0
                return x
            return w / w.sum()
        subset_idx, rule_idx = divmod(int(action), len(cfg.split_rules))
        return self.split(i, self._subsets[subset_idx], cfg.split_rules[rule_idx])

    def split(self, i: int, subset: tuple[int, ...], rule: str) -> np.ndarray:
        """The N shares of station i's current task over `subset` by a split rule."""
        x, subset = np.zeros(self.cfg.n_servers), list(subset)
        if rule == "capacity":
            c = self.instance.capacity[subset]
            x[subset] = c / c.sum()
        else:
            a, b = self.part_costs(i)
            x[subset] = finish_together_shares(self.free_at[subset], a[subset], b[subset], self.now)
        return x

    def part_costs(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Transfer and processing seconds, per server, of station i's whole current task."""
        inst, slot = self.instance, self.slot
        tx = inst.task_mbit[slot, i] / inst.link_mbps[i]  # inf link -> 0 s
        proc = inst.task_steps[slot, i] / inst.capacity
        return tx, proc

    def step(self, actions: dict[str, Any]):
        # stations without a task this slot, or not on turn, ignore their action
        has_task = self.instance.has_task[self.slot]
        books = [a for i, a in enumerate(self.possible_agents) if has_task[i] and self.decides(i)]
        return self.step_shares({a: self.shares(a, actions[a]) for a in books})

    def step_shares(self, shares: dict[str, np.ndarray]):
        """Step with explicit splits (what heuristics use): agent -> N non-negative shares summing to 1,
        for each station with a task (in_turn: the station on turn only)."""
        cfg, inst = self.cfg, self.instance
        infos, delays = {}, {}
        self._added = np.zeros(cfg.n_servers)
        for i, agent in enumerate(self.agents):
            info = {"has_task": bool(inst.has_task[self.slot, i]) and self.decides(i)}
            if info["has_task"]:
                x = np.asarray(shares[agent], dtype=np.float64)
                if x.shape != (cfg.n_servers,) or np.any(x < 0) or not np.isclose(x.sum(), 1.0):
                    raise ValueError(f"{agent}: shares must be {cfg.n_servers} non-negative values summing to 1")
                info.update(self._place(i, x))
                delays[agent] = info["delay"]
                tally = self.tally[agent]
                tally["tasks"], tally["delay_s"], tally["parts"] = (
                    tally["tasks"] + 1,
                    tally["delay_s"] + info["delay"],
                    tally["parts"] + info["parts"],
                )
            infos[agent] = info
        total = sum(delays.values())
        self.turn += self.in_turn
        if self.turn == cfg.n_servers or not self.in_turn:
            self.slot, self.turn = self.slot + 1, 0
        done = self.slot >= cfg.episode_slots
        if cfg.reward_mode == "team":
            rewards = {a: -total for a in self.agents}
        elif cfg.reward_mode == "sparse":
            rewards = {a: -self.tally[a]["delay_s"] if done else 0.0 for a in self.agents}
        elif cfg.reward_mode == "marginal":
            rewards = {a: -(delays.get(a, 0.0) + self._added[k]) for k, a in enumerate(self.agents)}
        else:
            rewards = {a: -delays.get(a, 0.0) for a in self.agents}
        terminations = {a: False for a in self.agents}
        truncations = {a: done for a in self.agents}
        obs = self._observations()
        if done:
            self.agents = []
        return obs, rewards, terminations, truncations, infos

    def part_times(self, i: int, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """When share x_j of station i's task would arrive at, start on and finish on each server j,
        on the current queues (nothing is booked)."""
        tx, proc = self.part_costs(i)
        arrive = self.now + tx * x
        start = np.maximum(arrive, self.free_at)
        return arrive, start, start + proc * x

    def place(self, i: int, x: np.ndarray) -> dict:
        """Book station i's current task split by x on the queues now, exactly as `step_shares` books
        each station with a task (in station order, bs_0 first); its info. No checks, tally or slot
        advance: for trying bookings out on a `copy.deepcopy` of the env (stations deciding in turn)."""
        return self._place(i, x)

    def _place(self, i: int, x: np.ndarray) -> dict:
        """Queue station i's task on the servers with x_j > 0; its delay and parts."""
        now, inst = self.now, self.instance
        parts = np.flatnonzero(x > 0)
        arrive, start, end = (t[parts] for t in self.part_times(i, x))
        processing = self.part_costs(i)[1][parts] * x[parts]
        if self.cfg.reward_mode == "marginal":
            self._push(i, parts, arrive, end, processing)
        self.free_at[parts] = end
        worst = {
            "transfer": float(np.max(arrive - now, initial=0.0)),
            "queueing": float(np.max(start - arrive, initial=0.0)),
            "processing": float(np.max(processing, initial=0.0)),
        }
        finish = float(np.max(end, initial=now))
        work = inst.task_steps[self.slot, i]
        self.assigned_steps += work * x
        self.arrived_steps += work
        return {"delay": finish - now, **worst, "parts": int(len(parts))}

    def _push(self, i: int, parts: np.ndarray, arrive: np.ndarray, end: np.ndarray, work: np.ndarray) -> None:
        """Station i books `work` seconds arriving at `arrive` on servers `parts` (ending at `end`):
        the delay the other stations' earlier bookings add to it, and the new `pushed`."""
        free, pushed = self.free_at[parts, None], self.pushed[parts]
        # without station k's work a server is free `pushed` earlier: this part starts that much
        # earlier, or from its arrival, whichever is later
        shift = np.minimum(np.maximum(free - arrive[:, None], 0.0), pushed)
        added = np.max(end) - np.max(end[:, None] - shift, axis=0)
        added[i] = 0.0  # station i's own earlier work is in its own delay
        self._added += added
        # station i's own push grows by its work, and by any idle time before it (the server
        # without i's work stays free from where it was)
        own = np.maximum(arrive - free[:, 0], 0.0) + pushed[:, i] + work
        shift[:, i] = own
        self.pushed[parts] = shift

    def render(self):
        return None

    def close(self):
        return None

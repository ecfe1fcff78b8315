"""The exact offline optimum of `edge`: the best schedule in hindsight, by CP-SAT.

For one fully known instance (capabilities, arrivals, due times, penalty kinds) this is the
paper's integer program (4) under the env's own semantics: each server runs its requests in
arrival order without preemption, starting each as soon as the server is free; the decision per
request is (server, steps); the reward is Q(steps) - w * g(max(0, finish - due)).

CP-SAT needs integers. Times are counted in units of `resolution_s` (default 1 us) and rewards
in units of `REWARD_UNIT` (1e-6), always rounded in the schedule's favour: arrivals and the
time of one inference step down, due times up, Q(steps) up, penalties down. So every schedule
is worth at least as much in the integer model as in the env, and the solver's bound is a valid
upper bound on the env's optimum. The schedule found is replayed through `EdgeEnv`; its float
total is the objective reported, and the env's optimum lies in [objective, bound].

Where rounding can mislead the model: a request of s steps may finish up to s units (0.2 ms at
200 steps) earlier in the model than in the env, more along a chain of requests on one server.
A request the model sees exactly on time can then be a fraction of a millisecond late in the
env, which costs w * sqrt(t) under the square-root penalty (about 0.02 at t = 0.2 ms). The
bound covers this: an OPTIMAL result is optimal up to bound - objective, a few 1e-4 reward per
instance in our measurements.

Also here: `upper_bound`, a cheap valid bound for instances too large to solve, and
`OptimumPolicy`, the hindsight schedule as a policy for the evaluation loop.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from ortools.sat.python import cp_model

from aigcsched.algorithms.heuristics import myopic_policy
from aigcsched.envs.edge import LATE_TOLERANCE_S, EdgeConfig, EdgeEnv, Instance, check_instance, penalty

TIME_RESOLUTION_S = 1e-6  # default time unit of the integer model (seconds)
REWARD_UNIT = 1e-6  # reward unit of the integer objective
SQRT_UNIT = 1e-4  # reward unit of the square-root penalty's helper variable (keeps squares < 2^63)
DEFAULT_TIME_LIMIT_S = 60.0


@dataclass(frozen=True)
class OptimumResult:
    """A schedule for one instance and what the solver proved about it."""

    actions: np.ndarray  # (n, 2) env actions (server, steps - 1), in arrival order
    objective: float  # total reward of `actions` replayed through EdgeEnv
    bound: float  # upper bound on any schedule's total reward (solver's or upper_bound's, the lower)
    # CP-SAT status: OPTIMAL (proven, at the resolution), FEASIBLE (time limit) or UNKNOWN (the
    # time limit ran out before any schedule: `actions` are then myopic's, `bound` upper_bound's)
    status: str
    # the integer model's value of the solution, in reward; at the optimum it is >= objective
    # (rounding in the schedule's favour), before it may be lower (slack not yet squeezed out)
    model_objective: float
    wall_s: float
    resolution_s: float

    @property
    def optimal(self) -> bool:
        return self.status == "OPTIMAL"

    @property
    def gap(self) -> float:
        """(bound - objective) / |objective|: how far the optimum can be above `objective`."""
        return (self.bound - self.objective) / max(abs(self.objective), 1e-12)


def replay(instance: Instance, cfg: EdgeConfig, actions: np.ndarray) -> float:
    """Total reward of a schedule played through the env."""
    env = EdgeEnv(cfg)
    env.reset(options={"instance": instance})
    return float(sum(env.step(a)[1] for a in np.asarray(actions)))


def myopic_schedule(instance: Instance, cfg: EdgeConfig) -> np.ndarray:
    """The myopic heuristic's actions on this instance (the solver's starting point)."""
    env, policy = EdgeEnv(cfg), myopic_policy(cfg)
    obs, _ = env.reset(options={"instance": instance})
    actions = []
    for _ in range(cfg.n_requests):
        a = policy(obs, env.state())
        actions.append(a)
        obs, *_ = env.step(a)
    return np.array(actions, dtype=np.int64)


class _Rational(NamedTuple):
    """lhs >= N / D * rhs, for non-negative integer lhs and rhs."""

    numerator: int
    denominator: int

    @staticmethod
    def below(coef: float, lhs_max: int, rhs_max: int) -> _Rational:
        """coef rounded down to N / D, D the largest power of ten (up to 1e12) that keeps
        D * lhs_max and N * rhs_max below 2^62."""
        limit, denominator = 2**62, 1
        while (
            denominator < 10**12
            and 10 * denominator * (lhs_max + 1) < limit
            and coef * 10 * denominator * (rhs_max + 1) < limit
        ):
            denominator *= 10
        return _Rational(math.floor(coef * denominator * (1 + 1e-12)), denominator)  # 14.99.. is 15

    def add(self, model: cp_model.CpModel, lhs, rhs) -> None:
        model.Add(self.denominator * lhs >= self.numerator * rhs)

    def smallest_lhs(self, rhs: np.ndarray) -> np.ndarray:
        return -(-self.numerator * rhs // self.denominator)


class _IntegerPenalty:
    """p >= w g(t) in REWARD_UNITs for t in time units, rounded in the schedule's favour (never
    above the true penalty, at most one SQRT_UNIT below it). `add` puts it into the model;
    `smallest` is the least p the model allows for a given t, used for per-request ceilings."""

    def __init__(self, w: float, res: float, t_max: int, p_max: int):
        self.p_max = p_max
        # Quadratic: t beyond this makes p exceed p_max anyway; capping it keeps t^2 small.
        self.t_max = (
            t_max,
            min(t_max, math.isqrt(int(p_max * REWARD_UNIT / max(w, 1e-12) / res**2)) + 1),
            t_max,
        )
        self.r_max = int(p_max * REWARD_UNIT / SQRT_UNIT) + 2
        self.sqrt_ratio = round(SQRT_UNIT / REWARD_UNIT)
        self.rules = (
            _Rational.below(w * res / REWARD_UNIT, p_max, t_max),  # p >= w t
            _Rational.below(w * res**2 / REWARD_UNIT, p_max, self.t_max[1] ** 2),  # p >= w t^2
            _Rational.below((w / SQRT_UNIT) ** 2 * res, self.r_max**2, t_max),  # r^2 >= (w/u)^2 t
        )

    def add(self, model: cp_model.CpModel, kind: int, tard, name: str):
        p = model.NewIntVar(0, self.p_max, f"p{name}")
        rule = self.rules[kind]
        if kind == 0:
            rule.add(model, p, tard)
        elif kind == 1:
            model.Add(tard <= self.t_max[1])
            squared = model.NewIntVar(0, self.t_max[1] ** 2, f"tsq{name}")
            model.AddMultiplicationEquality(squared, [tard, tard])
            rule.add(model, p, squared)
        else:  # r >= w sqrt(t) / SQRT_UNIT, so p >= w sqrt(t) - SQRT_UNIT
            r = model.NewIntVar(1, self.r_max, f"r{name}")
            squared = model.NewIntVar(1, self.r_max**2, f"rsq{name}")
            model.AddMultiplicationEquality(squared, [r, r])
            rule.add(model, squared, tard)
            model.Add(p >= self.sqrt_ratio * (r - 1))
        return p

    def smallest(self, kind: int, tard: np.ndarray) -> np.ndarray:
        """Least p the model allows at tardiness `tard`; p_max + 1 where it allows none."""
        tard = np.asarray(tard, dtype=np.int64)
        rule = self.rules[kind]
        if kind == 0:
            p = rule.smallest_lhs(tard)
        elif kind == 1:
            p = rule.smallest_lhs(np.minimum(tard, self.t_max[1]) ** 2)
            p[tard > self.t_max[1]] = self.p_max + 1
        else:
            squared = np.maximum(rule.smallest_lhs(tard), 1)
            r = np.ceil(np.sqrt(squared.astype(np.float64))).astype(np.int64)
            r += r * r < squared  # exact integer ceil(sqrt) after the float estimate
            r -= (r - 1) * (r - 1) >= squared
            p = self.sqrt_ratio * (r - 1)
        return np.where(p > self.p_max, self.p_max + 1, p)


def solve(
    instance: Instance,
    cfg: EdgeConfig,
    time_limit_s: float = DEFAULT_TIME_LIMIT_S,
    resolution_s: float = TIME_RESOLUTION_S,
    workers: int = 8,
) -> OptimumResult:
    """The schedule of largest total reward for a fully known instance (see module docstring)."""
    inst = check_instance(instance, cfg)
    started = time.perf_counter()
    n, J, S = cfg.n_requests, cfg.n_servers, cfg.max_steps
    w, res = cfg.tardiness_weight, resolution_s

    arrival = np.floor(inst.arrival / res).astype(np.int64)
    due = np.ceil(inst.due / res).astype(np.int64)
    # One step on server j takes step_time[j] units, rounded down: durations are linear in steps,
    # which keeps the model small (s steps take at most s units less than s / c_j).
    step_time = np.floor(1.0 / (inst.capability * res)).astype(np.int64)
    duration = step_time[:, None] * np.arange(S + 1)  # (J, S + 1)
    quality = np.ceil(cfg.quality_table() / REWARD_UNIT).astype(np.int64)
    quality[0] = 0

    # The myopic schedule bounds the optimum from below; with the rounding in the schedule's
    # favour, no schedule of the integer model that beats it has a penalty above `max_penalty`.
    hint = myopic_schedule(inst, cfg)
    floor_value = math.floor(replay(inst, cfg, hint) / REWARD_UNIT)
    max_penalty = max(0, int(n * quality.max()) - floor_value)
    horizon = int(arrival[-1] + duration[:, S].max() * n) + 1

    pen = _IntegerPenalty(w, res, horizon, max_penalty)
    # ceiling[i, j]: the most request i can earn on server j, had it the server to itself
    # (a valid cut: waiting only adds tardiness); it gives the LP relaxation a useful bound.
    ceiling = np.empty((n, J), dtype=np.int64)
    for i in range(n):
        idle_tardiness = np.maximum(arrival[i] + duration[:, 1:] - due[i], 0)
        ceiling[i] = (quality[1:] - pen.smallest(int(inst.penalty[i]), idle_tardiness)).max(axis=1)

    model = cp_model.CpModel()
    free_before = [model.NewConstant(0) for _ in range(J)]  # server j's free time before request i
    objective = []
    xs, step_vars = [], []
    for i in range(n):
        x = [model.NewBoolVar(f"x{i}_{j}") for j in range(J)]
        model.AddExactlyOne(x)
        s = model.NewIntVar(1, S, f"s{i}")
        # steps_on[j]: s on the chosen server, 0 on the others
        steps_on = [model.NewIntVar(0, S, f"s{i}_{j}") for j in range(J)]
        for j in range(J):
            model.Add(steps_on[j] <= S * x[j])
        model.Add(sum(steps_on) == s)
        start = model.NewIntVar(int(arrival[i]), horizon, f"start{i}")
        end = model.NewIntVar(int(arrival[i]), horizon, f"end{i}")
        model.Add(end == start + sum(int(step_time[j]) * steps_on[j] for j in range(J)))
        for j in range(J):  # the request waits for the previous one on its server
            model.Add(start >= free_before[j]).OnlyEnforceIf(x[j])
        free_after = []
        for j in range(J):
            f = model.NewIntVar(0, horizon, f"free{i}_{j}")
            model.Add(f >= free_before[j])
            model.Add(f >= end).OnlyEnforceIf(x[j])
            free_after.append(f)
        free_before = free_after

        q = model.NewIntVar(int(quality[1]), int(quality[S]), f"q{i}")
        model.AddElement(s, quality.tolist(), q)
        tard = model.NewIntVar(0, horizon, f"t{i}")
        model.Add(tard >= end - int(due[i]))
        p = pen.add(model, int(inst.penalty[i]), tard, str(i))
        model.Add(q - p <= sum(int(ceiling[i, j]) * x[j] for j in range(J)))
        objective += [q, -p]
        xs.append(x)
        step_vars.append(s)

        server, step_index = hint[i]
        model.AddHint(s, int(step_index) + 1)
        for j in range(J):
            model.AddHint(x[j], int(j == server))
    model.Maximize(sum(objective))

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit_s)
    solver.parameters.num_workers = workers
    code = solver.Solve(model)
    status = solver.StatusName(code)
    if code in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        actions = np.array([[_chosen(solver, xs[i]), solver.Value(step_vars[i]) - 1] for i in range(n)], dtype=np.int64)
        model_objective = solver.ObjectiveValue() * REWARD_UNIT
        # both bounds are valid; early in a search the cheap one can be the tighter
        bound = min(solver.BestObjectiveBound() * REWARD_UNIT, upper_bound(inst, cfg))
    else:  # nothing found in time (the limit went to presolve): myopic, with the cheap bound
        actions, model_objective = hint, float("nan")
        bound = upper_bound(inst, cfg)
    return OptimumResult(
        actions=actions,
        objective=replay(inst, cfg, actions),
        bound=bound,
        status=status,
        model_objective=model_objective,
        wall_s=time.perf_counter() - started,
        resolution_s=res,
    )


def _chosen(solver: cp_model.CpSolver, literals: list) -> int:
    return next(j for j, x in enumerate(literals) if solver.Value(x))


def upper_bound(instance: Instance, cfg: EdgeConfig, block_size: int = 1, time_limit_s: float = 10.0) -> float:
    """A valid upper bound on the total reward of any schedule of `instance` (a bound, not a
    schedule). Requests are cut into consecutive blocks and each block is given idle servers at
    its start: waiting only adds tardiness, so each block's best is at least its share of any
    schedule. block_size 1 (instant): the sum over requests of the best reward on an idle
    server. Larger blocks are solved with CP-SAT (their solver bounds are summed): tighter,
    slower."""
    inst = check_instance(instance, cfg)
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if block_size == 1:
        return float(_idle_server_best(inst, cfg).sum())
    total = 0.0
    for lo in range(0, cfg.n_requests, block_size):
        part = slice(lo, lo + block_size)
        sub_cfg = cfg.model_copy(update={"n_requests": len(inst.arrival[part])})
        sub = Instance(inst.capability, inst.arrival[part], inst.due[part], inst.penalty[part])
        total += solve(sub, sub_cfg, time_limit_s=time_limit_s).bound
    return total


def _idle_server_best(inst: Instance, cfg: EdgeConfig) -> np.ndarray:
    """(n,) each request's best reward with every server idle at its arrival, as the env computes it."""
    steps = np.arange(1, cfg.max_steps + 1, dtype=np.float64)
    quality = cfg.quality_table()[1:]
    best = np.empty(cfg.n_requests)
    for lo in range(0, cfg.n_requests, 256):  # chunks keep the (chunk, J, S) array small
        part = slice(lo, lo + 256)
        finish = inst.arrival[part, None, None] + steps / inst.capability[None, :, None]
        tardiness = finish - inst.due[part, None, None]
        tardiness[tardiness <= LATE_TOLERANCE_S] = 0.0
        reward = quality - cfg.tardiness_weight * penalty(tardiness, inst.penalty[part, None, None])
        best[part] = reward.reshape(reward.shape[0], -1).max(axis=1)
    return best


class OptimumPolicy:
    """The hindsight optimum as a policy for the evaluation loop: `begin(instances)` solves each
    episode's instance (one CP-SAT per episode); each call then plays the next request's action.
    `results` keeps what the solver proved per episode."""

    def __init__(self, cfg: EdgeConfig, time_limit_s: float = DEFAULT_TIME_LIMIT_S):
        self.cfg = cfg
        self.time_limit_s = time_limit_s
        self.results: list[OptimumResult] = []
        self._actions = np.zeros((0, cfg.n_requests, 2), dtype=np.int64)
        self._t = 0

    def begin(self, instances: list[Instance]) -> None:
        self.results = [solve(inst, self.cfg, time_limit_s=self.time_limit_s) for inst in instances]
        self._actions = np.stack([r.actions for r in self.results])
        self._t = 0

    def __call__(self, obs: np.ndarray, state) -> np.ndarray:
        if self._t >= self.cfg.n_requests:
            raise RuntimeError("OptimumPolicy: call begin(instances) at the start of each batch of episodes")
        actions = self._actions[:, self._t]
        self._t += 1
        return actions

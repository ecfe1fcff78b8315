"""The `datacenter` day solved in hindsight: an upper bound on any policy's utility, and a schedule.

With the whole episode known in advance (prices, weather, PUE, every arrival), one linear
program (LP) plans all providers and slots jointly on the env's own accounting, and its schedule
is played through `DataCenterEnv`. `solve` returns both figures: `bound`, the LP's optimum, above
the utility of every policy on that day; `utility`, the replayed schedule's, a policy's utility
and so below the day's true optimum. The optimum lies in [utility, bound].

Why an LP (GLOP, OR-Tools' simplex) and not a MILP or CP-SAT: a day is 288 slots x 3 providers
with thousands of jobs each. Job counts are continuous in the model (an error of a job or two per
slot, against ~1,800), and each slot's discrete choices (step level x power cap, keep level x
target, battery command) become their convex hull. What the env does exactly but a solver
cannot do fast is first-come-first-served service over ~21 (bucket, class) places per data
center and slot: as integer logic that is ~20,000 prefix binaries with big-M products on top of
~30,000 choice binaries, hopeless within a minute. The LP (~56,000 variables, ~22,000 rows for
the default day) takes ~20-30 s of one core; `time_limit_s` caps it (wall clock).

What the LP keeps exactly, read off the env: revenue = revenue_per_quality x Q(executor's model,
steps) per job served; a job of class c arriving at slot a (a hand-off landing `handoff_delay_slots`
later, at the receiver) is on time if served in slots a .. a + d_c - 1, else it pays late_penalty[c]
once, joins a late backlog served later (revenue still earned), or is settled unserved at the end;
GPU seconds per slot G x slot at seconds_per_job(level, cap); IT power = G x host + busy GPU
seconds x capped TDP + idle GPU seconds x idle power, x PUE; renewables first; the battery's
power and state-of-charge limits, its sqrt(efficiency) loss each way and wear per kWh
discharged; energy bought = max(0, load - renewables - discharge + charge) at the slot's price;
hand-off fees (they cancel in the sum over providers, the figure scored). Like the env, the LP
gives the battery's charge at the end of the day no value, so its plan ends the day drained.

What the LP relaxes (each makes its feasible set larger, never smaller, so `bound` stays an upper
bound on every schedule the env can play):
- service order: any waiting job may be served, not only the FCFS prefix (late jobs first);
- a slot may mix step levels, power caps and battery power (the convex hull of the choices), and a
  provider may split its hand-off over several targets (the env: one keep level, one target);
- job counts are fractional; the env's rounding is covered by slack: hand-offs per class within
  +-0.5 of share x arrivals (the env rounds to nearest), one job more than G x slot / seconds per
  job (the carry of a partly done job) and busy GPU seconds down to (jobs - 1) x seconds per job;
- busy GPU seconds may lie anywhere between the work done and the whole slot (the env: the whole
  slot when jobs remain, the work done otherwise);
- no constraint that the battery discharge only into the site's load; simultaneous charge and
  discharge allowed;
- at negative prices energy bought, max(0, balance), is bounded above by its chord over the
  slot's range of balance (a concave envelope) instead of being equal to it.

The schedule: the env is stepped slot by slot; each provider hands off to track the LP's
cumulative hand-offs (one target per slot, the nearest keep level, at most `backlog` slots of
arrivals owed to a target), runs at each slot the step level and cap of best value per job
(revenue - energy at the slot's price) among those whose capacity serves at least the LP's
planned jobs of the slot and never fewer than the jobs that would go late within `margin` slots
(their FCFS prefix), and picks the battery command whose state of charge is closest to the LP's.
A few such roundings (ROUNDINGS) are played and the best is kept; two of them take the
hand-offs and service of `tuned_handoff` or of `pooled_handoff` and only the battery from the plan.
Two more schedules join them, not from the LP: those hand-offs and service with the battery
planned by `battery_plan` on the day's actual net load (KNOWN_LOAD; the LP lets the battery
discharge beyond the site's load, so its battery plan is a poor one to follow; `planned_handoff`
and `pooled_handoff` plan the same way on a forecast).
Its utility is the env's ledger, so `bound - utility` (`gap`) is the LP's relaxation plus what
rounding it to the env's discrete, FCFS actions lost: an upper bound on how far the schedule is
from the day's optimum, not the distance itself. `model_parts` and `replay_parts` split both
figures into revenue, penalty, energy and battery wear, to show where they differ. Where nothing
is relaxed in effect (no jobs, or capacity to spare), the two agree to ~0.05%
(tests/test_datacenter_optimum.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from ortools.linear_solver import pywraplp

from aigcsched.envs.datacenter import BATTERY_ACTIONS, DataCenterConfig, DataCenterEnv, make_config
from aigcsched.envs.datacenter.battery_plan import BatteryPlanner
from aigcsched.envs.datacenter.lookahead import PLANS

DEFAULT_TIME_LIMIT_S = 300.0  # a day takes ~20-30 s of CPU; wall time on a busy machine is more
DISCHARGE, IDLE, CHARGE = (BATTERY_ACTIONS.index(a) for a in ("discharge", "idle", "charge"))
# Objective in milli-USD: per-job terms of ~1e-4 USD would sit near the solver's tolerances.
SCALE = 1000.0
SOLVER = "GLOP"  # on 24-96 slots faster than HiGHS (simplex or barrier), CLP and PDLP
PARTS = ("revenue", "penalty", "energy_cost", "degradation")  # of the utility, as the ledger books them
# Roundings of the LP plan tried (see _Tracker): (slots of arrivals a target may be owed, extra
# slots of deadlines the service must cover, the heuristic whose hand-offs and service replace the
# plan's, if any).
ROUNDINGS = (
    (1, 0, None),
    (2, 0, None),
    (1, 1, None),
    (2, 1, None),
    (1, 0, "tuned_handoff"),
    (1, 0, "pooled_handoff"),
)
# The heuristics that `solve` also plays with the battery planned on the day's actual net load.
KNOWN_LOAD = ("planned_handoff", "pooled_handoff")


@dataclass(frozen=True)
class DataCenterOptimumResult:
    """The hindsight plan of one episode and what the LP proved about it."""

    actions: np.ndarray  # (T, K, 5) env actions per slot and provider
    utility: float  # the schedule's utility (all providers) replayed through DataCenterEnv, USD
    bound: float  # LP optimum: no schedule of this day earns more (nan unless status OPTIMAL)
    status: str  # the LP solver's: OPTIMAL, or why not (time limit: NOT_SOLVED / FEASIBLE)
    day: int
    solve_s: float  # LP build and solve
    wall_s: float  # all of it, replay included
    # USD per day of revenue, penalty, energy_cost, degradation (as the ledger books them, costs
    # positive): the LP's plan's (empty without a plan) and the replayed schedule's
    model_parts: dict[str, float]
    replay_parts: dict[str, float]

    @property
    def optimal(self) -> bool:
        return self.status == "OPTIMAL"

    @property
    def gap(self) -> float:
        """(bound - utility) / |bound|: the most the day's optimum can lie above `utility`."""
        return (self.bound - self.utility) / max(abs(self.bound), 1e-12)


class _LP:
    """The LP, built row by row from (variable, coefficient) terms: pywraplp's expression objects
    are far slower at this size. Objective in milli-USD, with each term booked to a utility part."""

    def __init__(self, time_limit_s: float):
        self.solver = pywraplp.Solver.CreateSolver(SOLVER)
        self.solver.SetTimeLimit(int(time_limit_s * 1000))
        self.solver.SetNumThreads(1)
        self.objective = self.solver.Objective()
        self.inf = self.solver.infinity()
        self.parts: dict[str, list] = {}

    def var(self, lb: float, ub: float, cost: float = 0.0, part: str = ""):
        """A variable; `cost` (USD per unit) enters the objective and the utility part `part`."""
        v = self.solver.NumVar(float(lb), float(ub), "")
        if cost:
            self.objective.SetCoefficient(v, float(cost) * SCALE)
            self.parts.setdefault(part, []).append((v, float(cost)))
        return v

    def part_values(self) -> dict[str, float]:
        return {name: sum(v.solution_value() * cost for v, cost in terms) for name, terms in self.parts.items()}

    def row(self, lb: float, ub: float, terms) -> None:
        r = self.solver.Constraint(float(lb), float(ub))
        for v, coef in terms:
            r.SetCoefficient(v, r.GetCoefficient(v) + float(coef))


def _check(cfg: DataCenterConfig, time_limit_s: float) -> None:
    if not time_limit_s > 0:
        raise ValueError(f"time_limit_s must be > 0, got {time_limit_s}")
    if cfg.episode_slots > 2016:  # a week of 5-minute slots: the LP grows with slots x deadlines
        raise ValueError(f"episode_slots={cfg.episode_slots} is too long for the hindsight LP (at most 2016)")


def plan(env: DataCenterEnv, time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> tuple[dict[str, np.ndarray], str, float]:
    """Solve the hindsight LP of the episode `env` was just reset to. Returns (plan, status,
    objective in USD): plan["handed"] (T, K, K-1) jobs each origin hands to each other provider
    (targets in index order), plan["level_jobs"] (T, K, L) jobs served at each step level,
    plan["soc"] (T + 1, K) battery kWh, plan["parts"] the plan's utility in PARTS (USD)."""
    cfg = env.cfg
    _check(cfg, time_limit_s)
    inputs, arrivals = env.hindsight()  # arrivals (T, origin, class)
    T, K, L = cfg.episode_slots, cfg.n_asps, len(cfg.step_levels)
    lp = _LP(time_limit_s)
    handed = _handoffs(lp, cfg, arrivals)
    served_at, late_at, penalty_const = _deadlines(lp, cfg, arrivals, handed)
    jobs, soc = _sites(lp, cfg, inputs, served_at, late_at)
    lp.objective.SetMaximization()
    code = lp.solver.Solve()
    status = {pywraplp.Solver.OPTIMAL: "OPTIMAL", pywraplp.Solver.FEASIBLE: "FEASIBLE"}.get(code, "NOT_SOLVED")
    if status != "OPTIMAL":
        return {}, status, float("nan")
    handed_jobs = np.zeros((T, K, K - 1))
    for (o, t, _, jj), h in handed.items():
        handed_jobs[t, o, jj] += h.solution_value()
    level_jobs = np.zeros((T, K, L))
    for e, t, p, lv in np.ndindex(K, T, len(cfg.power_cap_levels), L):
        level_jobs[t, e, lv] += jobs[e][t][p][lv].solution_value()
    parts = lp.part_values()
    result = {
        "handed": handed_jobs,
        "level_jobs": level_jobs,
        "soc": np.array([[soc[e][t].solution_value() for e in range(K)] for t in range(T + 1)]),
        # as the ledger books them (penalty: all jobs' minus the on-time ones')
        "parts": {
            "revenue": parts.get("revenue", 0.0),
            "penalty": -(penalty_const + parts.get("penalty", 0.0)),
            "energy_cost": -parts.get("energy_cost", 0.0),
            "degradation": -parts.get("degradation", 0.0),
        },
    }
    return result, status, lp.objective.Value() / SCALE + penalty_const


def _handoffs(lp: _LP, cfg: DataCenterConfig, arrivals: np.ndarray) -> dict:
    """{(origin o, slot t, class c, jj): jobs o hands to its jj-th other provider}: a share of the
    slot's arrivals per target (all classes alike, as the env's keep level), within +-0.5 jobs of
    share x arrivals per class (the env rounds to nearest)."""
    T, K, C = cfg.episode_slots, cfg.n_asps, len(cfg.deadline_slots)
    max_share = 1.0 - min(cfg.keep_levels)
    handed = {}
    for o in range(K):
        for t in range(T):
            share = [lp.var(0.0, max_share) for _ in range(K - 1)]
            if K > 2:  # split over several targets: the convex hull of one target at a time
                lp.row(-lp.inf, max_share, [(s, 1.0) for s in share])
            for c in range(C):
                n = float(arrivals[t, o, c])
                if n == 0:
                    continue
                for jj in range(K - 1):
                    h = handed[o, t, c, jj] = lp.var(0.0, n)
                    lp.row(-0.5, 0.5, [(h, 1.0), (share[jj], -n)])
                lp.row(-lp.inf, n, [(handed[o, t, c, jj], 1.0) for jj in range(K - 1)])
    return handed


def _deadlines(lp: _LP, cfg: DataCenterConfig, arrivals: np.ndarray, handed: dict) -> tuple[list, list, float]:
    """On-time service of every group of jobs (executor e, arrival slot a, class c, kept or
    received): a variable per slot of its window, in any order. Returns (served_at[e][t]: the
    variables served on time at e in slot t; late_at[e][t]: terms (variable or None for a
    constant, coefficient) of the jobs going late at e after slot t, served later from its backlog;
    the penalty's constant part: -late_penalty x every job, on-time service earning it back)."""
    T, K, C = cfg.episode_slots, cfg.n_asps, len(cfg.deadline_slots)
    others = [[j for j in range(K) if j != o] for o in range(K)]
    pen = np.asarray(cfg.late_penalty)
    served_at = [[[] for _ in range(T)] for _ in range(K)]
    late_at = [[[] for _ in range(T)] for _ in range(K)]
    for e in range(K):
        senders = [(o, others[o].index(e)) for o in others[e]]
        for a in range(T):
            for c in range(C):
                last = a + cfg.deadline_slots[c] - 1
                kept = [(handed[e, a, c, jj], -1.0) for jj in range(K - 1) if (e, a, c, jj) in handed]
                received = [(handed[o, a, c, jj], 1.0) for o, jj in senders if (o, a, c, jj) in handed]
                # (size: terms and constant, first slot it can be served in)
                for size_terms, size_const, first in (
                    (kept, float(arrivals[a, e, c]), a),
                    (received, 0.0, a + cfg.handoff_delay_slots),
                ):
                    if not size_terms and size_const == 0:
                        continue
                    xs = [lp.var(0.0, lp.inf, pen[c], "penalty") for _ in range(first, min(last, T - 1) + 1)]
                    for t, x in zip(range(first, T), xs, strict=False):
                        served_at[e][t].append(x)
                    lp.row(-lp.inf, size_const, [*((x, 1.0) for x in xs), *((v, -k) for v, k in size_terms)])
                    if last < T - 1:  # late = size - sum x joins the backlog; at the end it is settled
                        late_at[e][last] += [*size_terms, *((x, -1.0) for x in xs), (None, size_const)]
    return served_at, late_at, -float((pen * arrivals.sum(axis=(0, 1))).sum())


def _sites(lp: _LP, cfg: DataCenterConfig, inputs, served_at: list, late_at: list) -> tuple[list, list]:
    """Each data center's slots: its late backlog, the step levels and power caps its GPUs serve
    the slot's jobs at, and its energy balance and battery. Returns (jobs[e][t][cap][level], soc[e][t]
    in kWh, t = 0..T)."""
    T, K = cfg.episode_slots, cfg.n_asps
    L, P = len(cfg.step_levels), len(cfg.power_cap_levels)
    slot_s, hours = cfg.slot_minutes * 60.0, cfg.slot_minutes / 60.0
    gpus = np.asarray(cfg.n_gpus, dtype=np.float64)
    sec = cfg.seconds_per_job()  # (K, L, P)
    revenue = cfg.revenue_per_quality * cfg.quality()  # (K, L)
    cap_w = np.asarray(cfg.power_cap_levels)[None, :] * np.asarray(cfg.gpu_power_w)[:, None]
    busy_extra_w = cap_w - np.asarray(cfg.gpu_idle_w)[:, None]  # (K, P): a busy GPU over an idle one
    base_w = gpus * (cfg.host_power_w + np.asarray(cfg.gpu_idle_w))  # every GPU idle
    eta = float(np.sqrt(cfg.battery_efficiency))
    battery_kw = np.asarray(cfg.battery_kw, dtype=np.float64)
    soc_lo, soc_hi = (np.asarray(cfg.battery_kwh) * f for f in (cfg.battery_soc_min, cfg.battery_soc_max))
    jobs = [[None] * T for _ in range(K)]
    soc = [[None] * (T + 1) for _ in range(K)]
    for e in range(K):
        backlog = lp.var(0.0, 0.0)
        soc[e][0] = lp.var(*(2 * (cfg.battery_kwh[e] * cfg.battery_soc_init,)))
        for t in range(T):
            late_served = lp.var(0.0, lp.inf)
            lp.row(-lp.inf, 0.0, [(late_served, 1.0), (backlog, -1.0)])
            if t < T - 1:  # backlog(t + 1) = backlog(t) - late_served(t) + going late after t
                nxt = lp.var(0.0, lp.inf)
                const = sum(k for v, k in late_at[e][t] if v is None)
                going_late = [(v, -k) for v, k in late_at[e][t] if v is not None]
                lp.row(const, const, [(nxt, 1.0), (backlog, -1.0), (late_served, 1.0), *going_late])
                backlog = nxt
            # modes (cap p, level l): n[p][l] jobs served at that cap and level; a mix of modes shares
            # the slot's GPU time (the convex hull of the env's pure choices, plus one job of carry)
            n = jobs[e][t] = [[lp.var(0.0, lp.inf, revenue[e, lv], "revenue") for lv in range(L)] for _ in range(P)]
            on_time = [(x, -1.0) for x in served_at[e][t]]
            lp.row(0.0, 0.0, [*((v, 1.0) for row in n for v in row), (late_served, -1.0), *on_time])
            gpu_share = [
                (n[p][lv], sec[e, lv, p] / (gpus[e] * slot_s + sec[e, lv, p])) for p in range(P) for lv in range(L)
            ]
            lp.row(-lp.inf, 1.0, gpu_share)
            busy = [lp.var(0.0, gpus[e] * slot_s) for _ in range(P)]  # busy GPU seconds at each cap
            for p in range(P):  # busy >= (jobs - 1) x seconds per job, the env's (jobs - carry)
                lp.row(-sec[e, :, p].max(), lp.inf, [(busy[p], 1.0), *((n[p][lv], -sec[e, lv, p]) for lv in range(L))])
            lp.row(-lp.inf, gpus[e] * slot_s, [(b, 1.0) for b in busy])
            # energy: balance kW = load - renewables + charge - discharge; bought kWh >= balance x h
            pue, ren, price = (float(x[e, t]) for x in (inputs.pue, inputs.renewable_kw, inputs.price))
            charge = lp.var(0.0, battery_kw[e])
            discharge = lp.var(0.0, battery_kw[e], -cfg.battery_wear_usd_per_kwh * hours, "degradation")
            soc[e][t + 1] = lp.var(soc_lo[e], soc_hi[e])
            flows = [(charge, -eta * hours), (discharge, hours / eta)]
            lp.row(0.0, 0.0, [(soc[e][t + 1], 1.0), (soc[e][t], -1.0), *flows])
            bought = lp.var(0.0, lp.inf, -price / 1000.0, "energy_cost")
            base_kw = pue * base_w[e] / 1000.0 - ren
            load = [(busy[p], pue * busy_extra_w[e, p] / slot_s / 1000.0) for p in range(P)]  # kW per busy GPU s
            balance = [*load, (charge, 1.0), (discharge, -1.0)]
            lp.row(base_kw * hours, lp.inf, [(bought, 1.0), *((v, -k * hours) for v, k in balance)])
            if price < 0:  # bought = max(0, balance) x h, convex: bounded by its chord when buying pays
                lo = base_kw - battery_kw[e]
                hi = base_kw + pue * gpus[e] * busy_extra_w[e].max() / 1000.0 + battery_kw[e]
                if hi <= 0:
                    lp.row(-lp.inf, 0.0, [(bought, 1.0)])
                elif lo < 0:  # bought <= hi (balance - lo) / (hi - lo) x h
                    slope = hi / (hi - lo) * hours
                    lp.row(-lp.inf, slope * (base_kw - lo), [(bought, 1.0), *((v, -k * slope) for v, k in balance)])
    return jobs, soc


class _Tracker:
    """Env actions slot by slot that follow an LP plan (see the module docstring)."""

    def __init__(
        self,
        cfg: DataCenterConfig,
        lp_plan: dict[str, np.ndarray],
        backlog_slots: int,
        margin_slots: int,
        heuristic: str | None = None,
    ):
        self.cfg, self.plan = cfg, lp_plan
        # hand-offs and service by this heuristic (a name in PLANS), only the battery by the plan
        self.heuristic = heuristic
        self.backlog_slots = backlog_slots  # hand-offs owed to a target: at most this many slots' arrivals
        k = cfg.n_asps
        self.deficit = np.zeros((k, k - 1))  # jobs the plan handed and we have not yet
        self.shares = 1.0 - np.asarray(cfg.keep_levels)
        sec = cfg.seconds_per_job()
        slot_s = cfg.slot_minutes * 60.0
        self.capacity = np.floor(np.asarray(cfg.n_gpus)[:, None, None] * slot_s / sec)  # (K, L, P), no carry
        busy_w = np.asarray(cfg.power_cap_levels)[None, :] * np.asarray(cfg.gpu_power_w)[:, None]
        self.kwh_per_job = sec * (busy_w - np.asarray(cfg.gpu_idle_w)[:, None])[:, None, :] / 3.6e6  # at PUE 1
        self.revenue = cfg.revenue_per_quality * cfg.quality()
        newest = max(cfg.deadline_slots)
        # jobs late after the service of this slot or of the next margin_slots ones: the queue's late
        # bucket, and per class the buckets up to its deadline bucket (older ones hold no such class)
        self.due = np.zeros((newest + 1, len(cfg.deadline_slots)), dtype=bool)
        self.due[0] = True
        for c, d in enumerate(cfg.deadline_slots):
            self.due[1 + newest - d : 2 + newest - d + margin_slots, c] = True
        self.eta = float(np.sqrt(cfg.battery_efficiency))

    def routing(self, t: int, arrivals: np.ndarray) -> tuple[list[int], list[int]]:
        keep, target = [], []
        handed = self.plan["handed"][t] if self.plan else np.zeros_like(self.deficit)
        for o, n in enumerate(arrivals.sum(axis=1)):
            self.deficit[o] = np.minimum(self.deficit[o] + handed[o], self.backlog_slots * max(n, 1))
            jj = int(np.argmax(self.deficit[o]))
            want = self.deficit[o, jj] / n if n > 0 else 0.0
            keep.append(int(np.argmin(np.abs(self.shares - want))))
            target.append(jj)
        return keep, target

    def handed(self, target: list[int], handed_out: np.ndarray) -> None:
        for o, jj in enumerate(target):
            self.deficit[o, jj] -= handed_out[o]

    def service(self, t: int, queue: np.ndarray, pue: np.ndarray, price: np.ndarray) -> tuple[list[int], list[int]]:
        levels, caps = [], []
        for e in range(len(queue)):
            waiting = queue[e].sum(axis=-1)  # (bucket, class), serving order
            flat = waiting.ravel()
            due = np.flatnonzero(self.due.ravel() & (flat > 0))
            needed = int(flat[: due[-1] + 1].sum()) if len(due) else 0
            total = int(flat.sum())
            planned = int(round(self.plan["level_jobs"][t, e].sum())) if self.plan else 0
            goal = min(max(planned, needed), total)
            served = np.minimum(self.capacity[e], total)
            per_job = self.revenue[e][:, None] - self.kwh_per_job[e] * pue[e] * price[e] / 1000.0
            ok = served >= goal
            if not ok.any():  # nothing serves the goal: serve the most, best value among those
                ok = served == served.max()
            level, cap = np.unravel_index(np.argmax(np.where(ok, per_job, -np.inf)), per_job.shape)
            levels.append(int(level))
            caps.append(int(cap))
        return levels, caps

    def battery(self, t: int, soc_kwh: np.ndarray) -> list[int]:
        if not self.plan:
            return [IDLE] * len(soc_kwh)
        cfg, h, eta = self.cfg, self.cfg.slot_minutes / 60.0, self.eta
        out = []
        for e, soc in enumerate(soc_kwh):
            hi, lo = cfg.battery_kwh[e] * cfg.battery_soc_max, cfg.battery_kwh[e] * cfg.battery_soc_min
            after = {
                CHARGE: soc + max(0.0, min(cfg.battery_kw[e], (hi - soc) / (eta * h))) * eta * h,
                IDLE: soc,
                DISCHARGE: soc - max(0.0, min(cfg.battery_kw[e], (soc - lo) * eta / h)) * h / eta,
            }
            goal = self.plan["soc"][t + 1, e]
            out.append(min((IDLE, CHARGE, DISCHARGE), key=lambda a: abs(after[a] - goal)))
        return out


class _PlannedBattery:
    """A planned-battery heuristic's hand-offs and service (`heuristic`, in KNOWN_LOAD) with the
    battery planned (`battery_plan`) on the day's actual net load instead of a forecast: theirs,
    which no battery command changes."""

    def __init__(self, env: DataCenterEnv, seed: int, heuristic: str = "planned_handoff"):
        if heuristic not in KNOWN_LOAD:
            raise ValueError(f"heuristic must be one of {', '.join(KNOWN_LOAD)}, got {heuristic!r}")
        cfg = env.cfg
        self.heuristic = heuristic
        _play(env, seed, _Tracker(cfg, {}, 1, 0, heuristic=heuristic))  # the battery idle
        ledger = env.ledger
        self.net_kw = ((ledger["load_kwh"] - ledger["renewable_kwh"]) * (60.0 / cfg.slot_minutes)).T  # (K, T)
        inputs, _ = env.hindsight()
        self.price = inputs.price
        self.planner = BatteryPlanner(cfg)
        self.values = self.planner.values(inputs.day_prices, self.net_kw, 0, cfg.episode_slots)  # (K, T, G)

    def battery(self, t: int, soc_kwh: np.ndarray) -> list[int]:
        return self.planner.decide(self.values[:, t], soc_kwh, self.price[:, t], self.net_kw[:, t]).tolist()

    def handed(self, target: list[int], handed_out: np.ndarray) -> None:
        pass


def known_load_battery(
    config: DataCenterConfig | dict | None = None, seed: int = 0, heuristic: str = "planned_handoff"
) -> float:
    """Utility of `heuristic` (in KNOWN_LOAD) with its battery planned on the day's actual net load
    (the episode `DataCenterEnv(config).reset(seed=seed)` plays) instead of a forecast: what it
    would earn with a perfect forecast of that load. No LP is solved."""
    env = DataCenterEnv(make_config(config, {}))
    return _play(env, seed, _PlannedBattery(env, seed, heuristic))[1]


def _play(
    env: DataCenterEnv, seed: int, tracker: _Tracker | _PlannedBattery
) -> tuple[np.ndarray, float, dict[str, float]]:
    """The tracker's actions over the episode of `seed`, their utility in the env and its parts."""
    cfg = env.cfg
    env.reset(seed=seed)
    inputs, arrivals = env.hindsight()
    actions = np.zeros((cfg.episode_slots, cfg.n_asps, 5), dtype=np.int64)
    battery_kwh = np.asarray(cfg.battery_kwh, dtype=np.float64)
    for t in range(cfg.episode_slots):
        state = env.state()
        battery = tracker.battery(t, state.soc * battery_kwh)
        if tracker.heuristic:
            actions[t] = PLANS[tracker.heuristic](cfg, state, battery=np.asarray(battery))
        else:
            keep, target = tracker.routing(t, arrivals[t])
            levels, caps = tracker.service(t, env.service_queue(keep, target), inputs.pue[:, t], inputs.price[:, t])
            actions[t] = np.stack([keep, target, levels, battery, caps], axis=1)
        env.step(dict(zip(env.agents, actions[t], strict=True)))
        tracker.handed(list(actions[t, :, 1]), env.ledger["handed_out"][t])
    ledger = env.ledger
    return actions, float(ledger["utility"].sum()), {name: float(ledger[name].sum()) for name in PARTS}


def solve(
    config: DataCenterConfig | dict | None = None, seed: int = 0, time_limit_s: float = DEFAULT_TIME_LIMIT_S
) -> DataCenterOptimumResult:
    """The hindsight plan of the episode `DataCenterEnv(config).reset(seed=seed)` plays (the same
    day and arrivals as every policy evaluated with that seed)."""
    cfg = make_config(config, {})
    _check(cfg, time_limit_s)
    started = time.perf_counter()
    env = DataCenterEnv(cfg)
    env.reset(seed=seed)
    lp_plan, status, bound = plan(env, time_limit_s)
    solve_s = time.perf_counter() - started
    # a few roundings of the plan, each played through the env; the best is the schedule
    plays = [_play(env, seed, _Tracker(cfg, lp_plan, *v)) for v in ROUNDINGS]
    plays += [_play(env, seed, _PlannedBattery(env, seed, name)) for name in KNOWN_LOAD]
    actions, utility, parts = max(plays, key=lambda r: r[1])
    return DataCenterOptimumResult(
        actions=actions,
        utility=utility,
        bound=bound,
        status=status,
        day=env.day,
        solve_s=solve_s,
        wall_s=time.perf_counter() - started,
        model_parts=lp_plan.get("parts", {}),
        replay_parts=parts,
    )


class DataCenterOptimumPolicy:
    """The hindsight plan as a policy for the evaluation loop: `begin(seed)` solves the episode
    that seed resets to; each call then plays that plan's actions of the slot. `results` keeps
    each episode's `DataCenterOptimumResult` (its bound in particular)."""

    def __init__(self, cfg: DataCenterConfig, time_limit_s: float = DEFAULT_TIME_LIMIT_S):
        _check(cfg, time_limit_s)
        self.cfg = cfg
        self.time_limit_s = time_limit_s
        self.results: list[DataCenterOptimumResult] = []
        self._actions: np.ndarray | None = None

    def begin(self, seed: int) -> None:
        result = solve(self.cfg, seed, self.time_limit_s)
        self.results.append(result)
        self._actions = result.actions

    def __call__(self, obs: dict, state) -> dict:
        if self._actions is None or state.slot >= len(self._actions):
            raise RuntimeError("DataCenterOptimumPolicy: call begin(seed) after each reset")
        return {f"asp_{i}": a for i, a in enumerate(self._actions[state.slot])}

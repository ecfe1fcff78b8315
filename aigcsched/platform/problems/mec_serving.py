"""The `mec` endpoint: each base station's current task and every edge server's queue in, each
station's server subset and split shares out.

A body is one slot of `MECEnv`: station i owns server i; its task (if any) arrived this slot. The
env is started in that state (`backlog_s` queues, a one-slot instance) and the policy asked
exactly as in an episode; the stations' parts are then booked in station order, as the env books
them, which gives each task's expected delay.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aigcsched.algorithms.mec_heuristics import MEC_POLICIES, make_policy
from aigcsched.envs.mec import MECConfig, MECEnv, MECInstance
from aigcsched.platform.errors import ConfigError
from aigcsched.platform.problems.serving import STRICT, BodyError, Decided, Ident, ProblemServing, finite, unique_ids

# The papers evaluate 5 and 20 stations. The myopic rules try every subset of <= 2 servers with
# each split rule for every station, so the work per body grows as N^3: at 20 stations, all with a
# task, a body takes about a second on one core; a batch holds at most 32 of them.
MAX_STATIONS = 20
MAX_BATCH = 32
MAX_SECONDS = 1e6  # about 11.6 days of queue: any longer is a gateway bug
MAX_MBIT = 1e5
MAX_STEPS = 100_000
MAX_RATE = 1e6  # Mbps and denoising steps/s
MIN_RATE = 1e-3  # slower is no server or link; the times it implies stay finite

LinkRate = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=MIN_RATE, le=MAX_RATE)]

EXAMPLE = {
    "stations": [
        {
            "id": "bs-0",
            "capacity_steps_per_s": 32.0,
            "backlog_s": 1.5,
            "links_mbps": [450.0, 420.0],
            "task": {"mbit": 3.2, "steps": 40},
        },
        {"id": "bs-1", "capacity_steps_per_s": 18.0, "backlog_s": 0.0, "links_mbps": [450.0, 480.0]},
        {
            "id": "bs-2",
            "capacity_steps_per_s": 45.0,
            "backlog_s": 3.0,
            "links_mbps": [420.0, 480.0],
            "task": {"mbit": 2.1, "steps": 25},
        },
    ]
}


class MECTask(BaseModel):
    """The task that arrived at the station this slot."""

    model_config = STRICT
    mbit: float = finite(gt=0, le=MAX_MBIT, description="input data to transfer, Mbit")
    steps: int = Field(strict=True, ge=1, le=MAX_STEPS, description="work, denoising steps")


class Station(BaseModel):
    """A base station and its edge server, now."""

    model_config = STRICT
    id: Ident
    capacity_steps_per_s: float = finite(ge=MIN_RATE, le=MAX_RATE, description="its server's speed, denoising steps/s")
    backlog_s: float = finite(0.0, ge=0, le=MAX_SECONDS, description="seconds until its server's queue is empty")
    links_mbps: list[LinkRate] = Field(
        min_length=1,
        max_length=MAX_STATIONS - 1,
        description="core link rate to every other station, in station order (itself left out)",
    )
    task: MECTask | None = Field(None, description="its task this slot; null: none arrived")


class MECDecideRequest(BaseModel):
    model_config = ConfigDict(**STRICT, json_schema_extra={"examples": [EXAMPLE]})
    stations: list[Station] = Field(min_length=2, max_length=MAX_STATIONS)

    @model_validator(mode="after")
    def _check(self) -> MECDecideRequest:
        unique_ids(self.stations, "station")
        n = len(self.stations)
        for s in self.stations:
            if len(s.links_mbps) != n - 1:
                raise ValueError(f"station {s.id!r}: links_mbps needs {n - 1} rates (one per other station)")
        return self


class StationDecision(BaseModel):
    id: str
    servers: list[str] = Field(description="stations whose servers get a part of the task; empty without a task")
    shares: list[Annotated[float, Field(ge=0)]] = Field(
        description="share of the task each of those servers gets (sum 1)"
    )
    expected_delay_s: Annotated[float, Field(ge=0)] | None = Field(
        description="seconds from now until the task's last part finishes, all stations' parts booked in "
        "station order; null without a task"
    )


class MECDecision(Decided):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "stations": [
                        {"id": "bs-0", "servers": ["bs-0", "bs-1"], "shares": [0.64, 0.36], "expected_delay_s": 1.9},
                        {"id": "bs-1", "servers": [], "shares": [], "expected_delay_s": None},
                        {"id": "bs-2", "servers": ["bs-1"], "shares": [1.0], "expected_delay_s": 1.7},
                    ],
                    "policy": "heuristic:myopic",
                    "model_version": None,
                }
            ]
        }
    )
    stations: list[StationDecision]


@lru_cache(maxsize=64)
def _env(cfg: MECConfig) -> MECEnv:
    """A one-slot env of the scenario (reset for every body; the endpoint runs one body at a time)."""
    return MECEnv(cfg, episode_slots=1)


def heuristic_scenario(n: int) -> MECConfig:
    """The scenario a heuristic decides n stations on: the defaults, subsets no larger than n."""
    return MECConfig(n_servers=n, max_split=min(MECConfig.model_fields["max_split"].default, n))


def slot_state(body: MECDecideRequest) -> tuple[MECInstance, np.ndarray]:
    """The one-slot instance and the queues' backlogs a body describes."""
    n = len(body.stations)
    links = np.full((n, n), np.inf)  # the own server needs no core transfer, as in the env
    for i, s in enumerate(body.stations):
        links[i, [j for j in range(n) if j != i]] = s.links_mbps
    tasks = [s.task for s in body.stations]
    instance = MECInstance(
        capacity=np.array([s.capacity_steps_per_s for s in body.stations]),
        link_mbps=links,
        has_task=np.array([[t is not None for t in tasks]]),
        task_mbit=np.array([[t.mbit if t else 0.0 for t in tasks]]),
        task_steps=np.array([[t.steps if t else 0 for t in tasks]], dtype=np.int64),
    )
    return instance, np.array([s.backlog_s for s in body.stations])


class MECServing(ProblemServing):
    problem = "mec"
    agent_noun = "stations"
    request_model = MECDecideRequest
    decision_model = MECDecision
    summary = (
        "Which edge servers get which share of each base station's task. A heuristic takes any number of "
        f"stations (2-{MAX_STATIONS}), on the default scenario's rules (subsets of up to 2 servers)."
    )
    # random and round_robin draw or turn per call: nothing a caller could rely on
    heuristics = tuple(name for name in MEC_POLICIES if name not in ("random", "round_robin"))
    max_batch = MAX_BATCH

    def heuristic(self, name: str):
        if name not in self.heuristics:
            raise ConfigError(f"unknown mec policy {name!r} to serve; choose from {', '.join(self.heuristics)}")
        return make_policy(name)

    def agent_count(self, body: MECDecideRequest) -> int:
        return len(body.stations)

    def model_agent_count(self, cfg: MECConfig) -> int:
        return cfg.n_servers

    def decide(self, policy, cfg: MECConfig | None, body: MECDecideRequest) -> dict:
        n = len(body.stations)
        if cfg is None:
            cfg = heuristic_scenario(n)
        elif cfg.n_servers != n:
            raise BodyError(f"the policy takes {cfg.n_servers} stations, got {n}")
        env = _env(cfg)
        instance, backlog = slot_state(body)
        obs, _ = env.reset(options={"instance": instance, "backlog_s": backlog})
        has_task = instance.has_task[0]
        shares, infos = {}, {}
        # a policy trained in turn decides as the env let it: each station on the queues the ones before booked
        for turn in env.possible_agents if env.in_turn else [None]:
            deciding = [a for i, a in enumerate(env.possible_agents) if has_task[i] and turn in (None, a)]
            shares.update({a: np.asarray(policy(env, a, obs[a]), dtype=np.float64) for a in deciding})
            obs, _, _, _, step_infos = env.step_shares({a: shares[a] for a in deciding})
            infos.update({a: step_infos[a] for a in deciding})
        out = []
        for i, (station, agent) in enumerate(zip(body.stations, env.possible_agents, strict=True)):
            if not has_task[i]:
                out.append({"id": station.id, "servers": [], "shares": [], "expected_delay_s": None})
                continue
            x = shares[agent]
            used = np.flatnonzero(x > 0)
            out.append(
                {
                    "id": station.id,
                    "servers": [body.stations[j].id for j in used],
                    "shares": [float(v) for v in x[used]],
                    "expected_delay_s": float(infos[agent]["delay"]),
                }
            )
        return {"stations": out}


MEC_SERVING = MECServing()

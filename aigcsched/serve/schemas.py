"""Request and response bodies of the scheduling endpoint, with the bounds every field must meet.

All times are seconds relative to the moment the endpoint receives the call (a gateway never has
to share a clock with it). Unknown fields are rejected, so a typo is a 422 naming the field.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from aigcsched.envs.edge import PENALTY_KINDS

MAX_SERVERS = 256  # servers per decision or per cluster
MAX_BATCH = 1024  # decisions per /v1/edge/decide-batch call
MAX_SECONDS = 1e6  # about 11.6 days: any longer queue or due window is a gateway bug
MAX_CAPABILITY = 1e5  # inference steps per second; an H100 does about 20

Ident = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
Penalty = Literal["linear", "quadratic", "sqrt"]
assert tuple(Penalty.__args__) == PENALTY_KINDS  # the wire names are the env's codes, in order

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)


class Server(BaseModel):
    """A GPU server as the gateway sees it now."""

    model_config = _STRICT
    id: Ident
    capability: float = Field(gt=0, le=MAX_CAPABILITY, description="inference steps per second")
    busy_for_s: float = Field(0.0, ge=0, le=MAX_SECONDS, description="seconds until it is free")


class Request(BaseModel):
    """A text-to-image request to place."""

    model_config = _STRICT
    id: Ident
    due_in_s: float = Field(ge=0, le=MAX_SECONDS, description="seconds from now to the due time")
    penalty: Penalty = Field(description="tardiness penalty g: linear t, quadratic t^2 or sqrt(t)")


def _unique_ids(servers: list) -> None:
    ids = [s.id for s in servers]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"server ids must be unique; {dup!r} appears more than once")


class DecideRequest(BaseModel):
    model_config = _STRICT
    servers: list[Server] = Field(min_length=1, max_length=MAX_SERVERS)
    request: Request

    @model_validator(mode="after")
    def _check(self) -> DecideRequest:
        _unique_ids(self.servers)
        return self


DecideBatch = Annotated[list[DecideRequest], Field(min_length=1, max_length=MAX_BATCH)]


class Decision(BaseModel):
    server: str = Field(description="id of the chosen server")
    steps: int = Field(description="inference steps to run")
    expected_finish_s: float = Field(description="busy_for_s of the server + steps / capability")
    expected_quality: float = Field(description="Q(steps), the image quality the steps buy")
    policy: str = Field(description="the policy that decided: model URI and version, or heuristic")


class ClusterServer(BaseModel):
    model_config = _STRICT
    id: Ident
    capability: float = Field(gt=0, le=MAX_CAPABILITY, description="inference steps per second")


class ClusterSpec(BaseModel):
    """Servers of a cluster. Re-registering keeps the queues of servers whose id stays."""

    model_config = _STRICT
    servers: list[ClusterServer] = Field(min_length=1, max_length=MAX_SERVERS)

    @model_validator(mode="after")
    def _check(self) -> ClusterSpec:
        _unique_ids(self.servers)
        return self


class Booking(Decision):
    cluster: str
    request: str
    expected_start_s: float = Field(description="when the request should start, from now")


class DoneReport(BaseModel):
    model_config = _STRICT
    finished_ago_s: float = Field(
        0.0, ge=0, le=MAX_SECONDS, description="the request finished this long before the report"
    )


class QueuedRequest(BaseModel):
    id: str
    expected_finish_s: float


class ServerView(BaseModel):
    id: str
    capability: float
    busy_for_s: float = Field(description="expected seconds until its queue is empty")
    queue: list[QueuedRequest] = Field(description="booked requests not reported done, in order")


class ClusterView(BaseModel):
    cluster: str
    servers: list[ServerView]


class ModelInfo(BaseModel):
    name: str
    version: str | None
    alias: str | None
    run_id: str | None
    uri: str | None
    policy: str = Field(description="label sent with every decision")
    n_servers: int | None = Field(description="servers per decision the policy takes; null: any count")
    problem: str = Field("edge", description="the problem served: its routes are /v1/<problem>/...")
    n_agents: int | None = Field(
        None, description="stations / providers per body a multi-agent model takes; null: edge, or any count"
    )


class Health(BaseModel):
    status: Literal["ok"]
    app: str = Field(description="name of the serving application")

"""Request and response bodies of the scheduling endpoint, with the bounds every field must meet.

All times are seconds relative to the moment the endpoint receives the call (a gateway never has
to share a clock with it). Unknown fields are rejected, so a typo is a 422 naming the field.
Types are strict (JSON numbers only where a number is due: no booleans, no numeric strings; an
integer is fine for a float) and every number is finite and inside physical bounds, so every
answer is finite too. Servers are objects keyed by their id: ids are unique by construction.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from aigcsched.envs.edge import PENALTY_KINDS

MAX_SERVERS = 256  # servers per decision or per cluster
MAX_BATCH = 1024  # decisions per /v1/edge/decide-batch call
MAX_SECONDS = 1e6  # about 11.6 days: any longer queue or due window is a gateway bug
MAX_CAPABILITY = 1e5  # inference steps per second; an H100 does about 20
# 100 s per step: a 50-step image in over an hour. Bounds every expected finish time
# (<= MAX_SECONDS + 200 steps / MIN_CAPABILITY) away from infinity.
MIN_CAPABILITY = 0.01

Ident = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
Penalty = Literal["linear", "quadratic", "sqrt"]
assert tuple(Penalty.__args__) == PENALTY_KINDS  # the wire names are the env's codes, in order

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


Capability = Annotated[float, Field(ge=MIN_CAPABILITY, le=MAX_CAPABILITY, description="inference steps per second")]


class Server(BaseModel):
    """A GPU server as the gateway sees it now (its id is its key in `servers`)."""

    model_config = _STRICT
    capability: Capability
    busy_for_s: float = Field(0.0, ge=0, le=MAX_SECONDS, description="seconds until it is free")


class Request(BaseModel):
    """A text-to-image request to place."""

    model_config = _STRICT
    id: Ident
    due_in_s: float = Field(ge=0, le=MAX_SECONDS, description="seconds from now to the due time")
    penalty: Penalty = Field(description="tardiness penalty g: linear t, quadratic t^2 or sqrt(t)")


def _servers_keyed_by_id(schema: dict) -> None:
    """Pydantic writes `dict[Ident, X]` as patternProperties, under which a key breaking the pattern
    may hold anything; say what validation does: every key an Ident, every value an X."""
    servers = schema["properties"]["servers"]
    ((pattern, value),) = servers.pop("patternProperties").items()
    servers["additionalProperties"] = value
    servers["propertyNames"]["pattern"] = pattern


SERVERS_DOC = (
    "servers by id, in the order the policy sees them (the first listed wins a tie); "
    "a key given twice keeps its last value, as JSON parsers do"
)


class DecideRequest(BaseModel):
    model_config = ConfigDict(**_STRICT, json_schema_extra=_servers_keyed_by_id)
    servers: dict[Ident, Server] = Field(min_length=1, max_length=MAX_SERVERS, description=SERVERS_DOC)
    request: Request


DecideBatch = Annotated[list[DecideRequest], Field(min_length=1, max_length=MAX_BATCH)]


class Decision(BaseModel):
    server: str = Field(description="id of the chosen server")
    steps: int = Field(ge=1, description="inference steps to run")
    expected_finish_s: float = Field(ge=0, description="busy_for_s of the server + steps / capability")
    expected_quality: float = Field(description="Q(steps), the image quality the steps buy")
    policy: str = Field(description="the policy that decided: model URI and version, or heuristic")
    model_version: str | None = Field(description="registry version of the model that decided; null: heuristic")


class ClusterServer(BaseModel):
    model_config = _STRICT
    capability: Capability


class ClusterSpec(BaseModel):
    """Servers of a cluster. Re-registering keeps the queues of servers whose id stays."""

    model_config = ConfigDict(**_STRICT, json_schema_extra=_servers_keyed_by_id)
    servers: dict[Ident, ClusterServer] = Field(min_length=1, max_length=MAX_SERVERS, description=SERVERS_DOC)


class Booking(Decision):
    cluster: str
    request: str
    expected_start_s: float = Field(ge=0, description="when the request should start, from now")


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
    problem: str = Field(description="the problem the policy schedules, e.g. edge")
    name: str
    version: str | None
    alias: str | None
    run_id: str | None
    uri: str | None
    policy: str = Field(description="label sent with every decision")
    n_servers: int | None = Field(description="servers per decision the policy takes; null: any count")
    n_agents: int | None = Field(
        None, description="stations / providers per body a multi-agent model takes; null: edge, or any count"
    )
    follows: bool = Field(description="the endpoint reloads the model when its alias (or latest) moves")


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where in the request: body, path, ... then field names")
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every 4xx answer: one line, or (schema errors) one entry per field."""

    detail: str | list[FieldError]


ERRORS = {
    400: "the body is not UTF-8 JSON, or Content-Length is not a number",
    401: "missing or wrong `Authorization: Bearer` token (when the endpoint has one)",
    404: "unknown cluster or request",
    409: "conflicts with the state: request already booked, or too many clusters or pending requests",
    413: "body over the endpoint's size limit",
    422: "the body or a path parameter breaks the schema (one entry per field), or the policy cannot take it "
    "(another server or agent count than it takes, another problem than the endpoint serves)",
}


def errors(*codes: int, guarded: bool = True) -> dict:
    """OpenAPI `responses` for the error statuses a route answers (Guard's on every route)."""
    codes = (400, 413, *((401,) if guarded else ()), *codes)
    return {code: {"model": ErrorBody, "description": ERRORS[code]} for code in sorted(codes)}


class Health(BaseModel):
    status: Literal["ok"]
    app: str = Field(description="name of the serving application")

"""What the HTTP endpoint needs to serve a multi-agent problem: its request and decision bodies,
the heuristics worth serving, and how a body becomes the env's observations and back.

Each problem with such an API (`Problem.serving()`) has a `ProblemServing` in its own module
(`mec_serving`, `datacenter_serving`); the endpoint builds its routes from them and never names a
problem. A body describes one decision slot of all agents; a policy answers it exactly as it acts
on the env in that state.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

MAX_BATCH = 256  # bodies per decide-batch call, unless a problem's are costlier

# Strict: no bool or string coercion into numbers, no NaN or infinity, unknown fields rejected.
STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
Ident = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]


def finite(default: Any = ..., *, ge: float | None = None, le: float | None = None, gt: float | None = None, **kw):
    """A strict, finite float field with bounds (required unless given a default)."""
    return Field(default, strict=True, allow_inf_nan=False, ge=ge, le=le, gt=gt, **kw)


def unique_ids(items: list, what: str) -> None:
    ids = [item.id for item in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise ValueError(f"{what} ids must be unique; {dup!r} appears more than once")


class Decided(BaseModel):
    """What every problem's decision body ends with: who decided."""

    policy: str = Field(description="the policy that decided: model URI and version, or heuristic")
    model_version: str | None = Field(description="registry version of the model that decided; null: heuristic")


class BodyError(ValueError):
    """A body the policy cannot answer although it is well-formed (e.g. another agent count)."""


class ProblemServing:
    """Base class: one subclass (and instance) per served multi-agent problem."""

    problem: str  # the problem's name: routes /v1/<problem>/decide and /v1/<problem>/decide-batch
    agent_noun: str  # what an agent is called in a body ("stations", "providers")
    request_model: type[BaseModel]  # one decision slot of all agents
    decision_model: type[BaseModel]  # every agent's decision for it
    summary: str  # one line for the OpenAPI docs
    heuristics: tuple[str, ...]  # deterministic and stateless across calls: worth serving
    max_batch: int = MAX_BATCH  # bodies per decide-batch call

    def heuristic(self, name: str) -> Any:
        """The named heuristic in the form `decide` takes (ConfigError naming the choices otherwise)."""
        raise NotImplementedError

    def agent_count(self, body: BaseModel) -> int:
        raise NotImplementedError

    def model_agent_count(self, cfg: BaseModel) -> int:
        """How many agents a policy trained on scenario `cfg` acts for."""
        raise NotImplementedError

    def heuristic_agent_count(self) -> int | None:
        """How many agents a heuristic acts for; None: any count the bodies allow."""
        return None

    def decide(self, policy: Any, cfg: BaseModel | None, body: BaseModel) -> dict:
        """Every agent's decision for `body` (without the policy label). `policy` is a heuristic of
        `heuristic` (cfg None: the scenario follows the body) or a trained policy bound to the
        problem (`Problem.bind`) with the scenario it was trained on. Raises BodyError."""
        raise NotImplementedError

"""The endpoint's routes for every problem whose descriptor has a `serving()` (the multi-agent ones:
`POST /v1/<problem>/decide` and `/decide-batch`), and the policy behind them.

The served problem follows the policy: a registered model's own problem, or the problem a heuristic
was named for (`PolicySource.problem`, default edge). Routes of the other problems answer 422
naming the problem served; so do edge's routes when another problem is served (`ProblemDecider`
stands in for edge's `Decider` there).

No `from __future__ import annotations` here: the routes' body types are variables that FastAPI
reads from the handlers' annotations at definition time.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from aigcsched.platform.config import ConfigError
from aigcsched.platform.problems import DEFAULT_PROBLEM, PROBLEMS, Problem, get_problem, problem_of
from aigcsched.platform.problems.serving import BodyError
from aigcsched.serve.policy import ApiError, Decider, PolicySource, policy_label


class ProblemDecider:
    """A multi-agent problem's policy behind the endpoint: bodies in, every agent's decision out.
    A registered model (`cfg`: its training scenario) takes the agent count it was trained for; a
    heuristic (`cfg` None) any count its problem's scenario allows."""

    def __init__(self, problem: Problem, policy: Any, cfg: BaseModel | None, info: dict):
        self.problem, self.serving = problem, problem.serving()
        self.policy, self.cfg = policy, cfg
        self.info = {**info, "problem": problem.name}
        self.label = policy_label(self.info)
        self.n_agents = self.serving.heuristic_agent_count() if cfg is None else self.serving.model_agent_count(cfg)
        self.n_servers = None

    def model_info(self) -> dict:
        keys = ("name", "version", "alias", "run_id", "uri")
        out = {k: (None if self.info.get(k) is None else str(self.info[k])) for k in keys}
        out["name"] = out["name"] or "unknown"
        return {**out, "policy": self.label, "n_servers": None, "problem": self.problem.name, "n_agents": self.n_agents}

    def check_agent_count(self, count: int) -> None:
        if self.n_agents is not None and count != self.n_agents:
            noun = self.serving.agent_noun
            made = "was trained for" if self.cfg is not None else "takes"
            raise ApiError(422, f"the policy {self.label} {made} {self.n_agents} {noun}; the body has {count} {noun}")

    def decide(self, bodies: list) -> list[dict]:
        out = []
        for i, body in enumerate(bodies):
            try:
                decision = self.serving.decide(self.policy, self.cfg, body)
            except BodyError as e:
                raise ApiError(422, f"item {i}: {e}" if len(bodies) > 1 else str(e)) from None
            out.append({**decision, "policy": self.label})
        return out

    # --- in place of edge's Decider: edge's routes and cluster book answer what is served instead

    def _not_edge(self) -> ApiError:
        return ApiError(
            422,
            f"this endpoint serves the {self.problem.name} policy {self.label}, not an edge policy; "
            f"POST /v1/{self.problem.name}/decide",
        )

    def check_server_count(self, count: int) -> None:
        raise self._not_edge()

    def decide_items(self, items) -> list[dict]:
        raise self._not_edge()

    def decide_arrays(self, *arrays):
        raise self._not_edge()


def heuristic_info(name: str) -> dict:
    return {"name": name, "version": None, "alias": None, "run_id": None, "uri": None}


def load_decider(source: PolicySource) -> Decider | ProblemDecider:
    """The decider of whatever problem the source's policy belongs to (ConfigError if it cannot be
    loaded, or is not of the problem the source names)."""
    if source.heuristic is not None:
        problem = get_problem(source.problem or DEFAULT_PROBLEM)
        serving = problem.serving()
        if serving is None:
            return Decider(source.load())
        return ProblemDecider(problem, serving.heuristic(source.heuristic), None, heuristic_info(source.heuristic))
    policy = source.load()
    problem = problem_of(policy.cfg)
    if source.problem is not None and source.problem != problem.name:
        raise ConfigError(f"{source.model_uri} is a {problem.name} policy, not a {source.problem} one")
    if problem.serving() is None:
        return Decider(policy)
    return ProblemDecider(problem, policy, policy.cfg, policy.info)


# --- routes


class ErrorDetail(BaseModel):
    detail: str = Field(description="what was wrong, in one line")


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where in the body")
    msg: str
    type: str


class Unprocessable(BaseModel):
    detail: list[FieldError] | str = Field(
        description="the fields out of their bounds or types (a list); or one line: a body the policy cannot "
        "answer (another agent count than it was trained for, another problem than the endpoint serves)"
    )


ERROR_RESPONSES: dict = {
    400: {"model": ErrorDetail, "description": "invalid Content-Length"},
    401: {"model": ErrorDetail, "description": "missing or wrong bearer token (when the endpoint has one)"},
    413: {"model": ErrorDetail, "description": "body over the endpoint's size limit"},
    422: {"model": Unprocessable, "description": "invalid body, or one the served policy cannot answer"},
}


def served_problem(decider: Any) -> str:
    problem = getattr(decider, "problem", None)
    return problem.name if problem is not None else problem_of(decider.cfg).name


def problem_routes(service: Any) -> APIRouter:
    """`POST /v1/<problem>/decide` and `/decide-batch` for every problem with a `serving()`;
    `service.decider` is the policy in use (see `api.Service`)."""
    router = APIRouter()
    for problem in PROBLEMS.values():
        if problem.serving() is not None:
            _add_routes(router, service, problem)
    return router


def _add_routes(router: APIRouter, service: Any, problem: Problem) -> None:
    serving = problem.serving()
    request_model = serving.request_model
    batch = Annotated[list[request_model], Field(min_length=1, max_length=serving.max_batch), Body()]

    def decider() -> ProblemDecider:
        d = service.decider
        if served_problem(d) != problem.name:
            raise ApiError(
                422, f"this endpoint serves the {served_problem(d)} policy {d.label}, not a {problem.name} policy"
            )
        return d

    async def decide(body: request_model):
        d = decider()
        d.check_agent_count(serving.agent_count(body))
        return d.decide([body])[0]

    async def decide_batch(body: batch):
        d = decider()
        for i, item in enumerate(body):
            try:
                d.check_agent_count(serving.agent_count(item))
            except ApiError as e:
                raise ApiError(e.status, f"item {i}: {e.detail}") from None
        return d.decide(body)

    tags = [problem.name]
    router.add_api_route(
        f"/v1/{problem.name}/decide",
        decide,
        methods=["POST"],
        response_model=serving.decision_model,
        responses=ERROR_RESPONSES,
        tags=tags,
        summary=f"{problem.name}: decide one slot",
        description=f"Every agent's decision for one slot, as the served policy acts on the env in that state. "
        f"{serving.summary} A registered model takes the {serving.agent_noun} it was trained for.",
    )
    router.add_api_route(
        f"/v1/{problem.name}/decide-batch",
        decide_batch,
        methods=["POST"],
        response_model=list[serving.decision_model],
        responses=ERROR_RESPONSES,
        tags=tags,
        summary=f"{problem.name}: decide several independent slots",
        description=f"Independent decisions for up to {serving.max_batch} bodies, answered in order.",
    )

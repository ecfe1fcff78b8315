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

from fastapi import Body, FastAPI
from pydantic import BaseModel, Field

from aigcsched.platform.config import ConfigError
from aigcsched.platform.problems import DEFAULT_PROBLEM, PROBLEMS, Problem, get_problem, problem_of
from aigcsched.platform.problems.serving import BodyError
from aigcsched.serve.policy import ApiError, Decider, PolicySource, model_info, policy_label
from aigcsched.serve.schemas import errors


class ProblemDecider:
    """A multi-agent problem's policy behind the endpoint: bodies in, every agent's decision out.
    A registered model (`cfg`: its training scenario) takes the agent count it was trained for; a
    heuristic (`cfg` None) any count its problem's scenario allows. `follows`: its host keeps it on
    the version its model URI points to (as edge's `Decider`)."""

    def __init__(self, problem: Problem, policy: Any, cfg: BaseModel | None, info: dict, follows: bool = False):
        self.problem, self.serving = problem.name, problem.serving()
        self.policy, self.cfg = policy, cfg
        self.info = {**info, "problem": problem.name}
        self.label = policy_label(self.info)
        self.version = None if info.get("version") is None else str(info["version"])
        self.follows = follows
        self.n_agents = self.serving.heuristic_agent_count() if cfg is None else self.serving.model_agent_count(cfg)
        self.n_servers = None

    def model_info(self) -> dict:
        return model_info(self)

    def takes(self) -> str:
        """The input this policy takes, for a follower's refusal."""
        return f"{self.n_agents or 'any number of'} {self.problem} {self.serving.agent_noun}"

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
            out.append({**decision, "policy": self.label, "model_version": self.version})
        return out

    # --- in place of edge's Decider: edge's routes and cluster book answer what is served instead

    def _not_edge(self) -> ApiError:
        return ApiError(
            422,
            f"this endpoint serves the {self.problem} policy {self.label}, not an edge policy; "
            f"POST /v1/{self.problem}/decide",
        )

    def check_server_count(self, count: int) -> None:
        raise self._not_edge()

    def decide_items(self, items) -> list[dict]:
        raise self._not_edge()

    def decide_arrays(self, *arrays):
        raise self._not_edge()


def heuristic_info(name: str) -> dict:
    return {"name": name, "version": None, "alias": None, "run_id": None, "uri": None}


def load_decider(source: PolicySource, follows: bool | None = None) -> Decider | ProblemDecider:
    """The decider of whatever problem the source's policy belongs to (ConfigError if it cannot be
    loaded, or is not of the problem the source names). `follows` (default: `source.follows`): its
    host keeps it on the version the model URI points to."""
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
    follows = source.follows if follows is None else follows
    if problem.serving() is None:
        return Decider(policy, follows=follows)
    return ProblemDecider(problem, policy, policy.cfg, policy.info, follows=follows)


# --- routes


def add_problem_routes(app: FastAPI, service: Any) -> None:
    """`POST /v1/<problem>/decide` and `/decide-batch` for every problem with a `serving()`;
    `service.decider` is the policy in use (see `api.Service`). Routes of the app itself, not of an
    included router: the 405 handler reads every route's methods."""
    for problem in PROBLEMS.values():
        if problem.serving() is not None:
            _add_routes(app, service, problem)


def _add_routes(router: FastAPI, service: Any, problem: Problem) -> None:
    serving = problem.serving()
    request_model = serving.request_model
    batch = Annotated[list[request_model], Field(min_length=1, max_length=serving.max_batch), Body()]

    def decider() -> ProblemDecider:
        d = service.decider
        if d.problem != problem.name:
            raise ApiError(422, f"this endpoint serves the {d.problem} policy {d.label}, not a {problem.name} policy")
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
        responses=errors(422),
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
        responses=errors(422),
        tags=tags,
        summary=f"{problem.name}: decide several independent slots",
        description=f"Independent decisions for up to {serving.max_batch} bodies, answered in order.",
    )

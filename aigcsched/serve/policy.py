"""The policy behind the endpoint and the arithmetic that turns its actions into decisions.

A served policy honours the registry's LoadedPolicy contract: `.cfg` (the EdgeConfig it was made
for), `.info` (name, version, alias, run_id, uri) and `__call__(observations, state) -> actions`
of shape (B, 2) = (server index, steps - 1). Registered models come from
`aigcsched.platform.registry.load_policy`, bound to their problem's policy form; heuristics are
wrapped here in the same shape. Only problems whose descriptor says `servable` have an API.

A moving model URI (`models:/NAME@ALIAS`, `models:/NAME/latest`) is followed: `follow` polls the
registry and hands the host a new Decider when the URI points to another version.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from aigcsched.envs.edge import PENALTY_KINDS, EdgeConfig, SchedulingState, observation_from_state
from aigcsched.platform.config import ConfigError
from aigcsched.platform.policies import resolve_policy
from aigcsched.platform.problems import PROBLEMS, get_problem, problem_of

log = logging.getLogger(__name__)

SERVABLE_HEURISTICS = ("greedy", "myopic")  # deterministic; `random` is no scheduler to serve
PENALTY_CODE = {name: code for code, name in enumerate(PENALTY_KINDS)}


class HeuristicPolicy:
    """A heuristic in the LoadedPolicy shape. Unlike a model it takes any number of servers."""

    any_server_count = True

    def __init__(self, name: str, cfg: EdgeConfig | None = None):
        if name not in SERVABLE_HEURISTICS:
            raise ConfigError(f"unknown policy {name!r}; choose from {', '.join(SERVABLE_HEURISTICS)}")
        self.cfg = cfg or EdgeConfig()
        self._act = resolve_policy(name, self.cfg)
        self.info = {"name": name, "version": None, "alias": None, "run_id": None, "uri": None}

    def __call__(self, observations: np.ndarray, state: SchedulingState) -> np.ndarray:
        return self._act(observations, state)


def servable_problems() -> list[str]:
    return [p.name for p in PROBLEMS.values() if p.servable]


def default_model_uri(problem: str | None = None) -> str:
    from aigcsched.platform.registry import CHAMPION  # here, not at the top: mlflow only when a model is served

    return f"models:/{get_problem(problem or servable_problems()[0]).experiment_name}@{CHAMPION}"


def local_tracking_uri() -> str:
    """The MLflow store this process would use, with a relative sqlite path made absolute."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix) :].startswith("/"):
        uri = prefix + os.path.abspath(uri[len(prefix) :])
    return uri


@dataclass(frozen=True)
class PolicySource:
    """Where replicas get the policy: a registered model URI or a heuristic name. Travels to
    every replica and to the cluster actor, which each load it themselves.

    `tracking_uri`, when set, becomes MLFLOW_TRACKING_URI where the model is loaded: replicas run
    in other processes (other working directories), and must read the same store as the command.
    `follow_every_s`: how often a host polls the registry for where a moving URI points now (0:
    never). `version`: load this version of the URI's model (what a follower saw), not where the
    URI points at load time."""

    model_uri: str | None = None
    heuristic: str | None = None
    edge_config: dict = field(default_factory=dict)
    tracking_uri: str | None = None
    problem: str | None = None  # a heuristic's problem (default edge); a model's must be this one when set
    follow_every_s: float = 5.0
    version: str | None = None

    def __post_init__(self):
        if (self.model_uri is None) == (self.heuristic is None):
            raise ConfigError("give either a model URI (--model) or a heuristic (--policy), not both")
        if self.problem is not None and self.problem not in servable_problems():
            raise ConfigError(f"unknown problem {self.problem!r}; choose from {', '.join(servable_problems())}")
        if not self.follow_every_s >= 0:
            raise ConfigError(f"the registry poll period must be >= 0 s, got {self.follow_every_s}")

    @property
    def follows(self) -> bool:
        """Whether hosts keep this source's policy on the version its URI points to."""
        if self.model_uri is None or self.version is not None or self.follow_every_s == 0:
            return False
        from aigcsched.platform import registry

        return registry.moves(self.model_uri)

    def _registry(self):
        if self.tracking_uri:
            os.environ["MLFLOW_TRACKING_URI"] = self.tracking_uri
        from aigcsched.platform import registry

        return registry

    def current_version(self) -> str:
        """The version the model URI points to now (one registry query)."""
        return str(self._registry().resolve_model_version(self.model_uri).version)

    def pinned(self, version: str) -> PolicySource:
        return dataclasses.replace(self, version=str(version))

    def load(self):
        if self.heuristic is not None:
            return HeuristicPolicy(self.heuristic, EdgeConfig(**self.edge_config))
        trained = self._registry().load_policy(self.model_uri, self.version)
        if not trained.problem.servable:
            raise ConfigError(
                f"{self.model_uri} is a {trained.problem.name} policy; the endpoint serves "
                f"{', '.join(servable_problems())} policies"
            )
        return trained.problem.bind(trained)


class ApiError(Exception):
    """An error a caller caused or may see: an HTTP status and a one-line detail."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def policy_label(info: dict) -> str:
    if info.get("uri"):
        version = info.get("version")
        return f"{info['uri']} (version {version})" if version is not None else info["uri"]
    return f"heuristic:{info.get('name')}"


def model_info(decider) -> dict:
    """`GET /v1/model`'s body for a decider of any problem (`ModelInfo`)."""
    keys = ("name", "version", "alias", "run_id", "uri")
    out = {k: (None if decider.info.get(k) is None else str(decider.info[k])) for k in keys}
    out["name"] = out["name"] or "unknown"
    return {
        "problem": decider.problem,
        **out,
        "policy": decider.label,
        "n_servers": decider.n_servers,
        "n_agents": decider.n_agents,
        "follows": decider.follows,
    }


class Decider:
    """Vectorized decisions of one policy: arrays in, server index / steps / finish / quality out.
    `follows`: its host keeps it on the version its model URI points to (reported by model_info)."""

    def __init__(self, policy, follows: bool = False):
        self.policy = policy
        self.cfg: EdgeConfig = policy.cfg
        self.problem = problem_of(self.cfg).name
        self.info = dict(policy.info)
        self.label = policy_label(self.info)
        self.version = None if self.info.get("version") is None else str(self.info["version"])
        self.follows = follows
        self.n_servers: int | None = None if getattr(policy, "any_server_count", False) else self.cfg.n_servers
        self.n_agents = None
        self._quality = self.cfg.quality_table()

    def model_info(self) -> dict:
        return model_info(self)

    def takes(self) -> str:
        """The input this policy takes, for a follower's refusal."""
        return f"{self.n_servers or 'any number of'} {self.problem} servers"

    def check_server_count(self, count: int) -> None:
        if self.n_servers is not None and count != self.n_servers:
            raise ApiError(
                422,
                f"the policy {self.label} takes exactly {self.n_servers} servers per decision, got {count}",
            )

    def decide_arrays(
        self, busy: np.ndarray, capability: np.ndarray, due_in: np.ndarray, penalty: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """busy, capability: (B, J); due_in, penalty codes: (B,). Returns server index, steps,
        expected finish (s from now) and expected quality, each (B,)."""
        state = SchedulingState(busy, capability, due_in, penalty)
        obs = observation_from_state(state, self.cfg)
        actions = np.asarray(self.policy(obs, state)).reshape(len(due_in), 2)
        server = actions[:, 0].astype(np.int64)
        steps = actions[:, 1].astype(np.int64) + 1
        if np.any((server < 0) | (server >= busy.shape[1])) or np.any((steps < 1) | (steps > self.cfg.max_steps)):
            raise RuntimeError(f"policy {self.label} returned actions outside its action space: {actions}")
        rows = np.arange(len(due_in))
        finish = busy[rows, server] + steps / capability[rows, server]
        return server, steps, finish, self._quality[steps]

    def decide_items(self, items: Sequence) -> list[dict]:
        """Decisions for DecideRequest bodies, in order. Bodies with equal server counts share
        one policy call; its input and output go through flat lists (one pass over the bodies,
        one `tolist` per answer column), not element by element."""
        out: list[dict | None] = [None] * len(items)
        groups: dict[int, list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault(len(item.servers), []).append(i)
        for idx in groups.values():
            group = [items[i] for i in idx]
            shape = (len(group), -1)
            busy = np.array([s.busy_for_s for item in group for s in item.servers.values()], dtype=np.float64)
            cap = np.array([s.capability for item in group for s in item.servers.values()], dtype=np.float64)
            due = np.array([item.request.due_in_s for item in group], dtype=np.float64)
            kind = np.array([PENALTY_CODE[item.request.penalty] for item in group], dtype=np.int64)
            server, steps, finish, quality = self.decide_arrays(busy.reshape(shape), cap.reshape(shape), due, kind)
            ids = [list(item.servers)[j] for item, j in zip(group, server.tolist(), strict=True)]
            columns = zip(idx, ids, steps.tolist(), finish.tolist(), quality.tolist(), strict=True)
            for i, server_id, n, f, q in columns:
                out[i] = {
                    "server": server_id,
                    "steps": n,
                    "expected_finish_s": f,
                    "expected_quality": q,
                    "policy": self.label,
                    "model_version": self.version,
                }
        return out


async def follow(
    source: PolicySource, current: Callable[[], Decider], swap: Callable[[Decider, PolicySource], Awaitable[None]]
) -> None:
    """Run until cancelled: every `source.follow_every_s`, ask the registry which version the URI
    points to; when it is not the one `current()` serves, load it in a worker thread (off the
    request path) and `swap` it in. A registry that cannot be read leaves the policy in use
    serving, with a warning (once per distinct problem); so does a version that cannot be loaded
    or takes other input than the one in use (another problem, server or agent count, which every
    client would see as 422s), and that version is not tried again. Any problem's decider is
    followed (`load_decider`: edge's `Decider` or a multi-agent `ProblemDecider`)."""
    from aigcsched.serve.problems import load_decider  # here: that module builds on this one

    last_problem, refused = None, None

    def warn(problem: str) -> None:
        nonlocal last_problem
        if problem != last_problem:
            log.warning("following %s: keeping %s: %s", source.model_uri, current().label, problem)
        last_problem = problem

    while True:
        await asyncio.sleep(source.follow_every_s)
        try:
            version = await asyncio.to_thread(source.current_version)
        except Exception as e:  # whatever the registry says, keep serving
            warn(f"{type(e).__name__}: {e}")
            continue
        if version in (current().version, refused):
            last_problem = None
            continue
        pinned = source.pinned(version)
        try:
            decider = await asyncio.to_thread(load_decider, pinned, True)
            old = current()
            if (decider.problem, decider.n_servers, decider.n_agents) != (old.problem, old.n_servers, old.n_agents):
                raise ConfigError(f"it takes {decider.takes()}, not {old.takes()}")
        except Exception as e:
            refused = version
            warn(f"version {version}: {type(e).__name__}: {e}")
            continue
        await swap(decider, pinned)
        log.warning("following %s: now serving %s", source.model_uri, decider.label)

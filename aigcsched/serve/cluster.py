"""Server queues of the stateful dispatching API, kept in one place that every replica shares.

Clock: the book reads its own monotonic clock (`time.monotonic` of the process that holds it),
and every time it takes or returns is relative to the moment of the call ("busy for 3 s",
"finished 0.5 s ago"), so a gateway never has to share a clock with the endpoint.

Queue model (the `edge` env's): each server runs its booked requests one at a time, in booking
order, without preemption. Booking appends to the chosen server's queue; a done report for a
request means every request booked before it on that server is done too, and the server's queue
is re-timed from the reported completion time with the expected durations of what is left.

`ClusterActor` holds a `ClusterBook` in a named detached Ray actor: the actor runs one call at a
time, so decide-and-book is atomic (two replicas never book the same slot twice), and the state
outlives any replica.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from aigcsched.serve.policy import PENALTY_CODE, ApiError, Decider, PolicySource
from aigcsched.serve.problems import load_decider

CLUSTER_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
MAX_CLUSTERS = 256
MAX_PENDING = 100_000  # booked requests not reported done, per cluster
ACTOR_NAMESPACE = "aigcsched"


@dataclass
class _Booked:
    id: str
    duration: float  # expected seconds of processing
    finish: float  # expected completion, on the book's clock


@dataclass
class _Cluster:
    ids: list[str]
    capability: np.ndarray
    queues: list[list[_Booked]]
    where: dict[str, int] = field(default_factory=dict)  # request id -> server index

    def free_at(self, j: int, now: float) -> float:
        return self.queues[j][-1].finish if self.queues[j] else now


class ClusterBook:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.clusters: dict[str, _Cluster] = {}

    def _get(self, name: str) -> _Cluster:
        cluster = self.clusters.get(name)
        if cluster is None:
            raise ApiError(404, f"unknown cluster {name!r}; register it with PUT /v1/clusters/{name}")
        return cluster

    def register(self, name: str, servers: list[tuple[str, float]], decider: Decider | None = None) -> dict:
        if not CLUSTER_NAME.match(name):
            raise ApiError(422, "cluster name must be 1-64 characters of A-Z a-z 0-9 . _ -")
        if decider is not None:
            decider.check_server_count(len(servers))
        if name not in self.clusters and len(self.clusters) >= MAX_CLUSTERS:
            raise ApiError(409, f"at most {MAX_CLUSTERS} clusters; delete one first")
        old = self.clusters.get(name)
        kept = {sid: old.queues[j] for j, sid in enumerate(old.ids)} if old else {}
        ids = [sid for sid, _ in servers]
        queues = [kept.get(sid, []) for sid in ids]
        cluster = _Cluster(ids, np.array([c for _, c in servers], dtype=np.float64), queues)
        cluster.where = {b.id: j for j, q in enumerate(queues) for b in q}
        self.clusters[name] = cluster
        return self.view(name)

    def delete(self, name: str) -> None:
        self._get(name)
        del self.clusters[name]

    def dispatch(self, name: str, request: dict, decider: Decider) -> dict:
        """Decide for `request` (id, due_in_s, penalty) on the cluster's current queues and book
        the chosen server. Not re-entrant: the caller runs one call at a time."""
        cluster = self._get(name)
        rid = request["id"]
        if rid in cluster.where:
            raise ApiError(409, f"request {rid!r} is already booked on cluster {name!r} and not done")
        if len(cluster.where) >= MAX_PENDING:
            raise ApiError(409, f"cluster {name!r} has {MAX_PENDING} requests not reported done")
        decider.check_server_count(len(cluster.ids))
        now = self.clock()
        busy = np.array([max(cluster.free_at(j, now) - now, 0.0) for j in range(len(cluster.ids))])
        server, steps, finish, quality = decider.decide_arrays(
            busy[None, :],
            cluster.capability[None, :],
            np.array([request["due_in_s"]], dtype=np.float64),
            np.array([PENALTY_CODE[request["penalty"]]], dtype=np.int64),
        )
        j, n = int(server[0]), int(steps[0])
        duration = n / float(cluster.capability[j])
        start = max(cluster.free_at(j, now), now)
        cluster.queues[j].append(_Booked(rid, duration, start + duration))
        cluster.where[rid] = j
        return {
            "server": cluster.ids[j],
            "steps": n,
            "expected_finish_s": float(finish[0]),
            "expected_quality": float(quality[0]),
            "policy": decider.label,
            "model_version": decider.version,
            "cluster": name,
            "request": rid,
            "expected_start_s": start - now,
        }

    def done(self, name: str, rid: str, finished_ago_s: float = 0.0) -> dict:
        """The request finished `finished_ago_s` before now: drop it and everything booked before
        it on its server, and re-time what is left from that moment. Returns the server's view."""
        cluster = self._get(name)
        j = cluster.where.get(rid)
        if j is None:
            raise ApiError(404, f"no booked request {rid!r} on cluster {name!r} (unknown or already done)")
        now = self.clock()
        queue = cluster.queues[j]
        k = next(i for i, b in enumerate(queue) if b.id == rid)
        for b in queue[: k + 1]:
            del cluster.where[b.id]
        del queue[: k + 1]
        t = now - finished_ago_s
        for b in queue:  # FIFO: the next one started when this one finished
            t += b.duration
            b.finish = t
        return self._server_view(cluster, j, now)

    def _server_view(self, cluster: _Cluster, j: int, now: float) -> dict:
        return {
            "id": cluster.ids[j],
            "capability": float(cluster.capability[j]),
            "busy_for_s": max(cluster.free_at(j, now) - now, 0.0),
            "queue": [{"id": b.id, "expected_finish_s": b.finish - now} for b in cluster.queues[j]],
        }

    def view(self, name: str) -> dict:
        cluster = self._get(name)
        now = self.clock()
        return {
            "cluster": name,
            "servers": [self._server_view(cluster, j, now) for j in range(len(cluster.ids))],
        }


def _call(fn, *args) -> tuple[int, object]:
    """(200, result) or (status, detail): errors cross the actor boundary as plain data."""
    try:
        return 200, fn(*args)
    except ApiError as e:
        return e.status, e.detail


class ClusterActor:
    """A ClusterBook plus the policy that decides for it. Wrapped with ray.remote by
    `cluster_actor`; methods run one at a time (max_concurrency=1)."""

    def __init__(self):
        self.book = ClusterBook()
        self.decider: Decider | None = None
        self.policy_key: str | None = None

    def use_policy(self, key: str, source: PolicySource) -> str:
        """Load the serving app's policy unless the one in use is the same (`key`)."""
        if key != self.policy_key:
            self.decider = load_decider(source)
            self.policy_key = key
        return self.decider.label

    def register(self, name: str, servers: list[tuple[str, float]]):
        return _call(self.book.register, name, servers, self.decider)

    def delete(self, name: str):
        return _call(self.book.delete, name)

    def dispatch(self, name: str, request: dict):
        return _call(self.book.dispatch, name, request, self.decider)

    def done(self, name: str, rid: str, finished_ago_s: float):
        return _call(self.book.done, name, rid, finished_ago_s)

    def view(self, name: str):
        return _call(self.book.view, name)


def actor_name(app_name: str) -> str:
    return f"clusters-{app_name}"


def cluster_actor(app_name: str):
    """The app's cluster actor: created on first use, found by name afterwards (get_if_exists
    makes concurrent first calls from several replicas agree on one actor)."""
    import ray

    return (
        ray.remote(ClusterActor)
        .options(
            name=actor_name(app_name),
            namespace=ACTOR_NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            max_concurrency=1,
        )
        .remote()
    )

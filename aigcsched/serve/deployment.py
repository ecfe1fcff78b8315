"""The Ray Serve application: one ingress deployment hosting the API, and its cluster actor.

Every replica loads the policy itself (from `PolicySource`); single decisions are batched across
concurrent requests with `@serve.batch` into one vectorized policy call; stateful dispatching
goes to the app's named detached `ClusterActor`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import ray
from ray import serve
from ray.serve.schema import LoggingConfig

from aigcsched.serve.api import DEFAULT_MAX_BODY_BYTES, make_api
from aigcsched.serve.cluster import ACTOR_NAMESPACE, actor_name, cluster_actor
from aigcsched.serve.policy import ApiError, Decider, PolicySource


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    app_name: str = "aigcsched"
    route_prefix: str = "/"
    replicas: int = 1
    max_replicas: int | None = None  # set: autoscale between `replicas` and this
    target_ongoing_requests: float = 32.0  # per replica, when autoscaling
    replica_cpus: float = 1.0
    # Enough in flight per replica for @serve.batch to fill batches (Serve's default is 5).
    max_ongoing_requests: int = 256
    max_batch_size: int = 64
    batch_wait_timeout_s: float = 0.001
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    access_log: bool = False  # one log line per request costs more than a decision
    health_check_period_s: float = 10.0

    def logging_config(self) -> LoggingConfig:
        return LoggingConfig(
            enable_access_log=self.access_log, log_level="INFO" if self.access_log else "WARNING"
        )


@serve.deployment
@serve.ingress()
class Scheduler:
    async def __init__(
        self,
        source: PolicySource,
        app_name: str,
        max_body_bytes: int,
        digest: bytes | None,
        max_batch_size: int,
        batch_wait_timeout_s: float,
    ):
        self.decider = Decider(source.load())
        self._source, self._app_name = source, app_name
        self._max_body_bytes, self._digest = max_body_bytes, digest
        self._decide_batched.set_max_batch_size(max_batch_size)
        self._decide_batched.set_batch_wait_timeout_s(batch_wait_timeout_s)
        # The actor reloads only when the policy changed (a redeploy with a new model version).
        self._policy_key = json.dumps(
            [self.decider.info, source.model_uri, source.heuristic, source.edge_config],
            sort_keys=True,
            default=str,
        )
        await self._connect()

    async def _connect(self) -> None:
        self._actor = cluster_actor(self._app_name)
        await self._actor.use_policy.remote(self._policy_key, self._source)

    def __serve_build_asgi_app__(self):
        return make_api(self, self._max_body_bytes, self._digest)

    @serve.batch(max_batch_size=64, batch_wait_timeout_s=0.001)
    async def _decide_batched(self, items: list) -> list[dict]:
        return self.decider.decide_items(items)

    async def decide(self, item) -> dict:
        return await self._decide_batched(item)

    async def decide_batch(self, items: list) -> list[dict]:
        return self.decider.decide_items(items)  # already a batch: one policy call

    async def clusters(self, method: str, *args):
        try:
            status, payload = await getattr(self._actor, method).remote(*args)
        except ray.exceptions.RayActorError:
            # The actor was killed (its state is gone): start a fresh one, once.
            await self._connect()
            status, payload = await getattr(self._actor, method).remote(*args)
        if status != 200:
            raise ApiError(status, payload)
        return payload


def build_app(source: PolicySource, options: ServeOptions, digest: bytes | None = None):
    """The Serve application (not yet running)."""
    scaling: dict = {"num_replicas": options.replicas}
    if options.max_replicas is not None:
        scaling = {
            "num_replicas": "auto",
            "autoscaling_config": {
                "min_replicas": options.replicas,
                "max_replicas": options.max_replicas,
                "target_ongoing_requests": options.target_ongoing_requests,
            },
        }
    return Scheduler.options(
        **scaling,
        ray_actor_options={"num_cpus": options.replica_cpus},
        max_ongoing_requests=options.max_ongoing_requests,
        health_check_period_s=options.health_check_period_s,
        logging_config=options.logging_config(),
    ).bind(
        source,
        options.app_name,
        options.max_body_bytes,
        digest,
        options.max_batch_size,
        options.batch_wait_timeout_s,
    )


def start(source: PolicySource, options: ServeOptions, digest: bytes | None = None) -> str:
    """Start Serve's HTTP proxy on host:port (Ray must be initialized) and deploy the app.
    Returns the base URL."""
    serve.start(
        http_options={"host": options.host, "port": options.port},
        logging_config=options.logging_config(),
    )
    serve.run(
        build_app(source, options, digest),
        name=options.app_name,
        route_prefix=options.route_prefix,
        logging_config=options.logging_config(),
    )
    return f"http://{options.host}:{options.port}{options.route_prefix.rstrip('/')}"


def drop_cluster_state(app_name: str) -> None:
    """End the app's detached cluster actor (its queues are lost)."""
    try:
        ray.kill(ray.get_actor(actor_name(app_name), namespace=ACTOR_NAMESPACE))
    except ValueError:
        pass  # never created


def check_policy(source: PolicySource) -> Decider:
    """Load the policy once here, so a missing model is an error before anything starts."""
    return Decider(source.load())

"""The Ray Serve application: one ingress deployment hosting the API, and its cluster actor.

Every replica loads the policy itself (from `PolicySource`); single decisions are batched across
concurrent requests with `@serve.batch` into one vectorized policy call; stateful dispatching
goes to the app's named detached `ClusterActor`. With a moving model URI (an alias) every replica
follows it (`policy.follow`) and tells the cluster actor which version to use.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from dataclasses import dataclass
from typing import Literal

import ray
from ray import serve
from ray.serve.schema import LoggingConfig

from aigcsched.serve.api import DEFAULT_MAX_BODY_BYTES, freeze_startup_heap, make_api
from aigcsched.serve.cluster import ACTOR_NAMESPACE, actor_name, cluster_actor
from aigcsched.serve.policy import ApiError, Decider, PolicySource, follow
from aigcsched.serve.problems import ProblemDecider, load_decider


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
    # "proxy": Serve's HTTP proxy on `port` routes every request to a replica (actor calls both
    # ways per request). "direct": the same, and each replica also serves HTTP itself on a port
    # above `port` (Serve's direct ingress), skipping the proxy: 6-8x the throughput on 2 cores.
    ingress: Literal["proxy", "direct"] = "direct"

    def direct_ports(self) -> range:
        """Ports replicas may take in direct mode: room for every replica of this and a second
        application twice over (a restarted replica's predecessor holds its port a while), and
        a few more for ports that other processes happen to hold."""
        span = 4 * max(self.replicas, self.max_replicas or 0) + 8
        return range(self.port + 1, self.port + 1 + span)

    def logging_config(self) -> LoggingConfig:
        return LoggingConfig(enable_access_log=self.access_log, log_level="INFO" if self.access_log else "WARNING")


def policy_key(decider: Decider | ProblemDecider, source: PolicySource) -> str:
    """The cluster actor reloads only when the policy changed (a new version, a redeploy)."""
    s = source
    return json.dumps([decider.info, s.model_uri, s.heuristic, s.problem, s.edge_config], sort_keys=True, default=str)


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
        self.decider = load_decider(source)
        # The actor loads the very version this replica loaded, even if the alias moves meanwhile.
        self._source = source.pinned(self.decider.version) if source.follows else source
        self.app_name = app_name
        self._max_body_bytes, self._digest = max_body_bytes, digest
        self._decide_batched.set_max_batch_size(max_batch_size)
        self._decide_batched.set_batch_wait_timeout_s(batch_wait_timeout_s)
        await self._connect()
        if source.follows:
            self._following = asyncio.get_running_loop().create_task(follow(source, lambda: self.decider, self._swap))
        freeze_startup_heap()

    def __del__(self):
        """Serve calls this when it stops the replica: stop polling before the loop goes."""
        if getattr(self, "_following", None) is not None:
            self._following.cancel()

    async def _connect(self) -> None:
        self._actor = cluster_actor(self.app_name)
        await self._actor.use_policy.remote(policy_key(self.decider, self._source), self._source)

    async def _swap(self, decider: Decider | ProblemDecider, source: PolicySource) -> None:
        """The cluster actor first (so that no booking lags behind a decision), then this replica in
        one assignment: a batch in flight ends on the old policy, the next takes the new one."""
        try:
            await self._actor.use_policy.remote(policy_key(decider, source), source)
        except ray.exceptions.RayActorError:
            pass  # the next cluster call starts a fresh actor with `source`
        self.decider, self._source = decider, source

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


# Settings for the local Ray instance the endpoint starts (read by Serve's processes at start,
# so they must be in the environment before ray.init): user code and routing on the replica's
# main event loop instead of hopping threads, request-path logs buffered, and Ray workers at
# normal priority (Ray's default, nice 15, loses every contest for the CPU).
RAY_ENV_DEFAULTS = {
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",
    "RAY_worker_niceness": "0",
}


def ray_env(options: ServeOptions) -> dict[str, str]:
    env = dict(RAY_ENV_DEFAULTS)
    if options.ingress == "direct":
        ports = options.direct_ports()
        env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] = "1"
        env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] = str(ports.start)
        env["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"] = str(ports.stop)  # Serve's upper end is exclusive
        # Serve keeps a stopping replica's port open 30 s for external load balancers to notice,
        # and hands it out again only 150 s after; there are none in front of a local endpoint,
        # Ctrl-C should not take half a minute, nor a crashed replica minutes to come back.
        env["RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S"] = "2"
        env["RAY_SERVE_PORT_QUARANTINE_S"] = "5"
    return env


def replica_urls(options: ServeOptions, timeout_s: float = 0.5) -> list[str]:
    """Direct mode: the URLs replicas serve on, found by asking /healthz in their port range."""
    host = "127.0.0.1" if options.host in ("0.0.0.0", "::") else options.host
    urls = []
    for port in options.direct_ports():
        url = f"http://{host}:{port}"
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=timeout_s) as resp:
                if json.loads(resp.read()).get("app") == options.app_name:
                    urls.append(url)
        except Exception:  # whatever else listens there is no replica of ours
            continue
    return urls


def check_policy(source: PolicySource) -> Decider | ProblemDecider:
    """Load the policy once here, so a missing model is an error before anything starts."""
    return load_decider(source)

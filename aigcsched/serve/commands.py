"""`aigcsched serve`: run the scheduling endpoint until Ctrl-C."""

from __future__ import annotations

import os
import signal
import threading
from typing import Annotated

import typer

from aigcsched.platform.config import ConfigError


def serve_command(
    model: Annotated[
        str | None,
        typer.Option(
            help="registered model URI; the endpoint serves the model's problem. models:/NAME@ALIAS and "
            "models:/NAME/latest are followed when they move (see --follow-every), models:/NAME/VERSION is "
            "fixed (default: models:/aigcsched-<problem>@champion, problem edge unless --problem)"
        ),
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option(
            help="serve a heuristic of --problem instead of a model: edge: greedy, myopic; mec: local, "
            "least_loaded, smcoedge, myopic, anticipating_myopic, sequential_myopic, spreading_myopic; datacenter: "
            "local, handoff, arbitrage, combined, deadline, value_handoff, tuned_handoff, planned_handoff, "
            "pooled_handoff"
        ),
    ] = None,
    problem: Annotated[
        str | None,
        typer.Option(
            help="edge, mec or datacenter: the problem of --policy (default edge), or the one --model must "
            "be of (routes: POST /v1/<problem>/decide)"
        ),
    ] = None,
    follow_every: Annotated[
        float,
        typer.Option(
            min=0.0,
            help="seconds between registry polls for where --model points now; a new version of the same "
            "problem and server/agent count is swapped in, any other is refused (0: never poll)",
        ),
    ] = 5.0,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="HTTP port")] = 8000,
    replicas: Annotated[int, typer.Option(min=1, help="replicas (the minimum when autoscaling)")] = 1,
    max_replicas: Annotated[int | None, typer.Option(min=1, help="autoscale up to this many replicas")] = None,
    replica_cpus: Annotated[float, typer.Option(min=0.0, help="CPUs Ray reserves per replica")] = 1.0,
    max_batch_size: Annotated[int, typer.Option(min=1, help="decisions per @serve.batch call")] = 64,
    batch_wait_ms: Annotated[float, typer.Option(min=0.0, help="how long a batch waits to fill")] = 1.0,
    max_body_kib: Annotated[int, typer.Option(min=1, help="request body limit (413 above)")] = 1024,
    ray_address: Annotated[
        str | None, typer.Option(help="existing Ray cluster to deploy on [default: start a local one]")
    ] = None,
    num_cpus: Annotated[int | None, typer.Option(min=1, help="CPUs of the local Ray instance")] = None,
    access_log: Annotated[bool, typer.Option(help="log every request")] = False,
    ingress: Annotated[
        str,
        typer.Option(
            help="proxy: Serve's HTTP proxy on --port; direct: also each replica on its own port "
            "above --port, skipping the proxy (several times faster; local Ray instance only)"
        ),
    ] = "direct",
) -> None:
    """Serve a scheduling policy over HTTP with Ray Serve (OpenAPI docs at /docs).

    The endpoint serves one problem, the policy's (a model's own, or --problem for a heuristic):

    edge: POST /v1/edge/decide (servers and a request in, server and steps out), /v1/clusters/...

    mec: POST /v1/mec/decide (each base station's task and server queue in, its servers and shares out)

    datacenter: POST /v1/datacenter/decide (each provider's queues, prices, battery, weather in; its action out)

    A registered model takes the servers / stations / providers it was trained for; GET /v1/model names the problem.

    A heuristic takes any count (datacenter: each provider with its site, i.e. its GPUs, speed, power and battery).

    A model URI with an alias (or /latest) is followed (--follow-every): replicas swap in the version it points to
    now, of any problem, and every decision names its `model_version`.

    Set AIGCSCHED_API_TOKEN to require `Authorization: Bearer <token>` on every route but /healthz.
    """
    from aigcsched.serve.api import TOKEN_ENV, token_digest
    from aigcsched.serve.deployment import ServeOptions, check_policy, ray_env, replica_urls, start
    from aigcsched.serve.policy import PolicySource, default_model_uri, local_tracking_uri, servable_problems

    if model is not None and policy is not None:
        raise ConfigError("give --model or --policy, not both")
    if ingress not in ("proxy", "direct"):
        raise ConfigError(f"--ingress must be proxy or direct, got {ingress!r}")
    if ingress == "direct" and ray_address is not None:
        raise ConfigError("--ingress direct needs the local Ray instance this command starts (no --ray-address)")
    if max_replicas is not None and max_replicas < replicas:
        raise ConfigError(f"--max-replicas ({max_replicas}) must be >= --replicas ({replicas})")
    if policy:
        source = PolicySource(heuristic=policy, problem=problem)
    else:
        if problem is not None and problem not in servable_problems():
            raise ConfigError(f"unknown problem {problem!r}; choose from {', '.join(servable_problems())}")
        uri = model or default_model_uri(problem)
        source = PolicySource(
            model_uri=uri, tracking_uri=local_tracking_uri(), problem=problem, follow_every_s=follow_every
        )
    decider = check_policy(source)  # a missing model fails here, before Ray starts
    options = ServeOptions(
        host=host,
        port=port,
        replicas=replicas,
        max_replicas=max_replicas,
        replica_cpus=replica_cpus,
        max_batch_size=max_batch_size,
        batch_wait_timeout_s=batch_wait_ms / 1000,
        max_body_bytes=max_body_kib * 1024,
        access_log=access_log,
        ingress=ingress,
    )
    _check_port_free(host, port)
    token = os.environ.get(TOKEN_ENV) or None

    import ray
    from ray import serve

    for key, value in ray_env(options).items():
        os.environ.setdefault(key, value)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    # "local" starts a fresh instance even when a `ray start` cluster runs on this machine.
    address = ray_address or "local"
    ray.init(address=address, num_cpus=num_cpus, include_dashboard=False, namespace="aigcsched")
    try:
        url = start(source, options, token_digest(token))
        following = f", following {source.model_uri} every {follow_every:g} s" if source.follows else ""
        typer.echo(f"serving {decider.label}{following} at {url} (docs: {url}/docs); Ctrl-C stops", err=True)
        typer.echo(url, nl=False)
        if ingress == "direct":
            direct = replica_urls(options)
            typer.echo(f"replicas also answer directly (no proxy hop) at: {', '.join(direct)}", err=True)
            typer.echo("".join(f" {u}" for u in direct), nl=False)
        typer.echo("", nl=True)
        if token is None:
            typer.echo(f"warning: {TOKEN_ENV} is not set; every route is open", err=True)
        while not stop.wait(1.0):
            pass
    finally:
        typer.echo("shutting down", err=True)
        serve.shutdown()
        ray.shutdown()


def _check_port_free(host: str, port: int) -> None:
    """A taken port is a usage error: say so before Ray starts (Serve's proxy would retry forever)."""
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
            s.bind((host, port))
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror}") from None


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)

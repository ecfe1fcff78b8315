"""Closed-loop HTTP load on the scheduling endpoint, on loopback, against two references.

For /v1/edge/decide (one decision per call) and /v1/edge/decide-batch (64 per call), at
concurrency 1, 8 and 32 (each client sends its next request when the last one answered), a
bounded number of requests each, it reports decisions/s, p50/p95/p99 latency and errors for:
  - serve:   `aigcsched serve` (Ray Serve + FastAPI ingress, @serve.batch),
  - bare:    the same FastAPI app and policy in one plain uvicorn process (no Ray),
and, as the ceiling, the same decision code called in-process (JSON parsing + validation +
policy + response dict, no HTTP). Ratios are against bare and in-process at equal concurrency.

Targets on a 2-core machine: decide >= 300 decisions/s at concurrency 32 with p99 <= 100 ms and
no errors over 10,000 requests; decide-batch >= 5,000 decisions/s.
Usage: python benchmarks/serve_load.py [--policy greedy] [--requests 10000] [--batch-calls 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit

import numpy as np
from rich.console import Console
from rich.table import Table

BATCH = 64
PENALTIES = ("linear", "quadratic", "sqrt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_bodies(n: int, n_servers: int, seed: int = 0) -> list[dict]:
    """Varied scheduling states like the `edge` env's (6 strong servers of 10)."""
    rng = np.random.default_rng(seed)
    strong = (n_servers * 6) // 10
    bodies = []
    for i in range(n):
        cap = np.concatenate([rng.uniform(12, 18, strong), rng.uniform(6, 10, n_servers - strong)])
        busy = np.where(rng.random(n_servers) < 0.5, 0.0, rng.uniform(0, 15, n_servers))
        servers = [
            {"id": f"gpu-{j}", "capability": round(float(c), 3), "busy_for_s": round(float(b), 3)}
            for j, (c, b) in enumerate(zip(cap, busy, strict=True))
        ]
        request = {
            "id": f"r{i}",
            "due_in_s": round(float(rng.uniform(2, 20)), 3),
            "penalty": PENALTIES[i % 3],
        }
        bodies.append({"servers": servers, "request": request})
    return bodies


async def _exchange(reader, writer, request: bytes) -> int:
    """One HTTP/1.1 request on a keep-alive connection; returns the status code."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"content-length:")
    if at >= 0:
        await reader.readexactly(int(lower[at + 15 : lower.index(b"\r\n", at)]))
    elif b"transfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def closed_loop(
    urls: str | list[str], payloads: list[bytes], concurrency: int, total: int, headers: dict
) -> dict:
    """`concurrency` clients, each on its own keep-alive connection, send `total` requests in all.
    A minimal HTTP/1.1 client on asyncio streams: the load generator shares the 2 cores with the
    server under test, so it has to cost little (a gateway's proxy would not be in this process)."""
    splits = [urlsplit(u) for u in ([urls] if isinstance(urls, str) else urls)]  # client i: URL i % n
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    prefix = f"POST {splits[0].path} HTTP/1.1\r\nHost: {splits[0].netloc}\r\n{extra}"
    requests = [f"{prefix}Content-Length: {len(p)}\r\n\r\n".encode() + p for p in payloads]
    latencies: list[float] = []
    errors = 0
    sent = 0

    async def connect(split, warm: int):
        reader, writer = await asyncio.open_connection(split.hostname, split.port)
        for i in range(warm):  # connection set-up and first batches, not timed
            await _exchange(reader, writer, requests[i % len(requests)])
        return split, reader, writer

    async def client(split, reader, writer):
        nonlocal errors, sent
        while sent < total:
            request = requests[sent % len(requests)]
            sent += 1
            t0 = time.perf_counter()
            try:
                ok = await _exchange(reader, writer, request) == 200
            except (OSError, asyncio.IncompleteReadError, ValueError):
                ok = False
                writer.close()
                reader, writer = await asyncio.open_connection(split.hostname, split.port)
            latencies.append(time.perf_counter() - t0)
            errors += not ok
        writer.close()

    warm = max(2, 100 // concurrency)
    connections = await asyncio.gather(*(connect(splits[i % len(splits)], warm) for i in range(concurrency)))
    start = time.perf_counter()
    await asyncio.gather(*(client(*c) for c in connections))
    elapsed = time.perf_counter() - start
    lat = np.array(latencies) * 1000
    return {
        "calls_per_s": len(lat) / elapsed,
        "p50": float(np.percentile(lat, 50)),
        "p95": float(np.percentile(lat, 95)),
        "p99": float(np.percentile(lat, 99)),
        "errors": errors,
        "calls": len(lat),
    }


def in_process(policy, single: list[bytes], batched: list[bytes], seconds: float = 2.0) -> dict:
    """The decision path without HTTP: JSON validation, policy call, response dicts."""
    from pydantic import TypeAdapter

    from aigcsched.serve.policy import Decider
    from aigcsched.serve.schemas import DecideBatch, DecideRequest

    decider = Decider(policy)
    one, many = TypeAdapter(DecideRequest), TypeAdapter(DecideBatch)
    out = {}
    for name, payloads, adapter, per_call in (
        ("decide", single, one, 1),
        ("decide-batch", batched, many, BATCH),
    ):
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            body = adapter.validate_json(payloads[calls % len(payloads)])
            json.dumps(decider.decide_items(body if per_call > 1 else [body]))
            calls += 1
        out[name] = calls * per_call / (time.perf_counter() - start)
    return out


def run_bare_server(port: int, policy_name: str) -> None:
    """Child process: the API on plain uvicorn (one process, uvloop + httptools, no access log)."""
    import uvicorn

    from aigcsched.serve.api import LocalService, make_api
    from aigcsched.serve.policy import PolicySource

    app = make_api(LocalService(PolicySource(heuristic=policy_name).load()))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def wait_ready(url: str, seconds: float = 60.0) -> None:
    import urllib.request

    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def load_suite(bases: list[str], single: list[bytes], batched: list[bytes], args, headers: dict) -> dict:
    try:
        from uvloop import run  # the cheaper event loop, as uvicorn uses it on both servers
    except ImportError:
        run = asyncio.run
    headers = {"Content-Type": "application/json", **headers}
    results = {}
    for conc in args.concurrency:
        results[("decide", conc)] = run(
            closed_loop([b + "/v1/edge/decide" for b in bases], single, conc, args.requests, headers)
        )
        results[("decide-batch", conc)] = run(
            closed_loop([b + "/v1/edge/decide-batch" for b in bases], batched, conc, args.batch_calls, headers)
        )
    return results


def measure_bare(args, single: list[bytes], batched: list[bytes]) -> dict:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.Popen([sys.executable, __file__, "--bare-server", str(port), "--policy", args.policy], env=env)
    try:
        wait_ready(f"http://127.0.0.1:{port}")
        return load_suite([f"http://127.0.0.1:{port}"], single, batched, args, {})
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def measure_serve(args, ingress: str, single: list[bytes], batched: list[bytes]) -> dict:
    """`aigcsched serve` as shipped, in its own process; load on the proxy URL (proxy mode) or
    spread over the replicas' own URLs (direct mode)."""
    port = free_port()
    cmd = [sys.executable, "-m", "aigcsched.cli", "serve", "--policy", args.policy, "--port", str(port)]
    cmd += ["--replicas", str(args.replicas), "--ingress", ingress, "--num-cpus", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=_env())
    try:
        line = proc.stdout.readline().split()
        if not line or (ingress == "direct" and len(line) < 2):
            raise RuntimeError(f"`aigcsched serve --ingress {ingress}` printed no URLs: {line}")
        proxy, *direct = line
        return load_suite(direct if ingress == "direct" else [proxy], single, batched, args, {})
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()


def _env() -> dict:
    path = os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "AIGCSCHED_API_TOKEN": ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", default="greedy", choices=["greedy", "myopic"])
    parser.add_argument("--requests", type=int, default=10_000, help="calls per run of /v1/edge/decide")
    parser.add_argument("--batch-calls", type=int, default=500, help="calls per run of decide-batch")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--servers", type=int, default=10, help="servers per decision")
    parser.add_argument(
        "--ingress", nargs="+", default=["proxy", "direct"], choices=["proxy", "direct"], help="serve modes"
    )
    parser.add_argument("--skip-bare", action="store_true", help="measure Serve and in-process only")
    parser.add_argument("--json", dest="json_out", help="also write the results to this JSON file")
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        return run_bare_server(args.bare_server, args.policy)

    from aigcsched.serve.policy import PolicySource

    bodies = make_bodies(2048, args.servers)
    single = [json.dumps(b).encode() for b in bodies]
    batched = [json.dumps(bodies[i : i + BATCH]).encode() for i in range(0, len(bodies), BATCH)]
    source = PolicySource(heuristic=args.policy)
    console = Console(width=150)
    inproc = in_process(source.load(), single, batched)
    console.print(f"in-process: {inproc['decide']:,.0f} decisions/s single, {inproc['decide-batch']:,.0f} batched")

    hosts = {f"serve/{mode}": measure_serve(args, mode, single, batched) for mode in args.ingress}
    if not args.skip_bare:
        hosts["bare"] = measure_bare(args, single, batched)
    bare = hosts.get("bare", {})

    table = Table(
        title=f"/v1/edge on loopback: policy {args.policy}, {args.servers} servers, {args.replicas} Serve replica(s)"
    )
    for col in (
        "endpoint",
        "conc.",
        "host",
        "calls",
        "decisions/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "errors",
        "vs bare",
        "vs in-process",
    ):
        table.add_column(col, justify="left" if col in ("endpoint", "host") else "right")
    out = {"in_process": inproc, "runs": []}
    for endpoint, conc in next(iter(hosts.values())):
        per_call = BATCH if endpoint == "decide-batch" else 1
        b = bare.get((endpoint, conc))
        for host, results in hosts.items():
            r = results[(endpoint, conc)]
            rate = r["calls_per_s"] * per_call
            table.add_row(
                endpoint, str(conc), host, f"{r['calls']:,}", f"{rate:,.0f}",
                f"{r['p50']:.1f}", f"{r['p95']:.1f}", f"{r['p99']:.1f}", str(r["errors"]),
                f"{r['calls_per_s'] / b['calls_per_s']:.2f}x" if b else "-",
                f"{rate / inproc[endpoint]:.3f}x",
            )  # fmt: skip
            out["runs"].append({"endpoint": endpoint, "concurrency": conc, "host": host, "decisions_per_s": rate, **r})
    console.print(table)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()

"""Closed-loop HTTP load on the scheduling endpoint, on loopback, against two references.

For /v1/edge/decide (one decision per call) and /v1/edge/decide-batch (64 per call), at
concurrency 1, 8 and 32 (each client sends its next request when the last one answered), a
bounded number of requests each, it reports decisions/s, p50/p95/p99 latency and errors for:
  - serve/proxy, serve/direct: `aigcsched serve` (Ray Serve + FastAPI ingress, @serve.batch),
    through Serve's proxy and on the replica's own port (direct ingress),
  - bare:    the same FastAPI app and policy in one plain uvicorn process (no Ray),
and, as the ceiling, the same decision code called in-process (JSON parsing + validation +
policy + response dict, no HTTP). Ratios are against bare and in-process at equal concurrency.
Each policy is measured: the greedy heuristic and a learned `edge` model (`--model URI`, or the
champion of the benchmark's own MLflow store, trained there briefly the first time: a speed
benchmark, so the model only has to be a real one of the shipped architecture).

Then the switch run: `--switch-requests` decide calls at concurrency 32 on direct ingress while the
model's alias moves to another version and back (`aigcsched serve` follows it): errors, and how
long after each move the answers came from the new version.

Targets (the issue's, learned model): decide at concurrency 32 on direct ingress >= 1,000
decisions/s with p99 <= 50 ms; decide-batch >= 15,000 decisions/s; 0 errors over 10,000
requests, also during a champion switch.
Usage: python benchmarks/serve_load.py [--policies greedy learned] [--model URI] [--requests 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np
from rich.console import Console
from rich.table import Table

BATCH = 64
PENALTIES = ("linear", "quadratic", "sqrt")
STORE = "/tmp/aigcsched-serve-load"  # the benchmark's own MLflow store (its trained model)
MODEL_NAME = "aigcsched-edge-serve-load"
COPIES = "serve-load-copies"  # experiment of the second version the switch run registers
VERSION = re.compile(rb'"model_version":"([^"]*)"')


@dataclass(frozen=True)
class Policy:
    name: str  # table label
    args: tuple[str, ...]  # how `aigcsched serve` and the bare server are told to load it
    model_uri: str | None = None

    def source(self):
        from aigcsched.serve.policy import PolicySource

        return PolicySource(model_uri=self.model_uri) if self.model_uri else PolicySource(heuristic=self.args[1])


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
        servers = {
            f"gpu-{j}": {"capability": round(float(c), 3), "busy_for_s": round(float(b), 3)}
            for j, (c, b) in enumerate(zip(cap, busy, strict=True))
        }
        request = {
            "id": f"r{i}",
            "due_in_s": round(float(rng.uniform(2, 20)), 3),
            "penalty": PENALTIES[i % 3],
        }
        bodies.append({"servers": servers, "request": request})
    return bodies


async def _exchange(reader, writer, request: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a keep-alive connection; returns the status code and the body."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"content-length:")
    body = b""
    if at >= 0:
        body = await reader.readexactly(int(lower[at + 15 : lower.index(b"\r\n", at)]))
    elif b"transfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            body += (await reader.readexactly(size + 2))[:-2]
            if size == 0:
                break
    return status, body


async def closed_loop(
    urls: str | list[str], payloads: list[bytes], concurrency: int, total: int, headers: dict, versions=None
) -> dict:
    """`concurrency` clients, each on its own keep-alive connection, send `total` requests in all.
    A minimal HTTP/1.1 client on asyncio streams: the load generator shares the 2 cores with the
    server under test, so it has to cost little (a gateway's proxy would not be in this process).
    `versions`, a list: (time, model version) of every answer is appended to it."""
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
                status, body = await _exchange(reader, writer, request)
                ok = status == 200
                if versions is not None and ok:
                    found = VERSION.search(body)
                    versions.append((time.monotonic(), found[1].decode() if found else None))
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


def one_torch_thread() -> None:
    """What a 1-CPU Serve replica gets (Ray sets OMP_NUM_THREADS to its CPUs): the same for the
    references. On a busy 2-core machine two threads make a model decision 40x slower."""
    import torch

    torch.set_num_threads(1)


def in_process(policy, single: list[bytes], batched: list[bytes], seconds: float = 2.0) -> dict:
    """The decision path without HTTP, as the routes take it: JSON validation from the bytes,
    policy call, answer serialized in one pass."""
    from pydantic import TypeAdapter
    from pydantic_core import to_json

    one_torch_thread()

    from aigcsched.serve.api import freeze_startup_heap
    from aigcsched.serve.policy import Decider
    from aigcsched.serve.schemas import DecideBatch, DecideRequest

    decider = Decider(policy)
    freeze_startup_heap()  # as the hosts do
    one, many = TypeAdapter(DecideRequest), TypeAdapter(DecideBatch)
    out = {}
    for name, payloads, adapter, per_call in (
        ("decide", single, one, 1),
        ("decide-batch", batched, many, BATCH),
    ):
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            body = adapter.validate_json(payloads[calls % len(payloads)])
            answers = decider.decide_items(body if per_call > 1 else [body])
            to_json(answers if per_call > 1 else answers[0])
            calls += 1
        out[name] = calls * per_call / (time.perf_counter() - start)
    return out


def run_bare_server(port: int, policy: str) -> None:
    """Child process: the API on plain uvicorn (one process, uvloop + httptools, no access log)."""
    import uvicorn

    from aigcsched.serve.api import LocalService, freeze_startup_heap, make_api
    from aigcsched.serve.policy import PolicySource

    one_torch_thread()
    source = PolicySource(model_uri=policy) if policy.startswith("models:/") else PolicySource(heuristic=policy)
    app = make_api(LocalService(source.load()))
    freeze_startup_heap()  # as a Serve replica does
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def wait_ready(url: str, proc: subprocess.Popen, seconds: float = 300.0) -> None:
    import urllib.request

    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server for {url} exited with status {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def _loop_runner():
    try:
        from uvloop import run  # the cheaper event loop, as uvicorn uses it on both servers
    except ImportError:
        run = asyncio.run
    return run


def load_suite(bases: list[str], single: list[bytes], batched: list[bytes], args, headers: dict) -> dict:
    run = _loop_runner()
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


def measure_bare(args, policy: Policy, single: list[bytes], batched: list[bytes]) -> dict:
    port = free_port()
    cmd = [sys.executable, __file__, "--bare-server", str(port), "--bare-policy", policy.args[1]]
    proc = subprocess.Popen(cmd, env=_env())
    try:
        wait_ready(f"http://127.0.0.1:{port}", proc)
        return load_suite([f"http://127.0.0.1:{port}"], single, batched, args, {})
    finally:
        proc.terminate()
        proc.wait(timeout=30)


class Served:
    """`aigcsched serve` as shipped, in its own process, until the block ends."""

    def __init__(self, args, policy: Policy, ingress: str, extra: tuple[str, ...] = ()):
        self.port = free_port()
        cmd = [sys.executable, "-m", "aigcsched.cli", "serve", *policy.args, "--port", str(self.port)]
        cmd += ["--replicas", str(args.replicas), "--ingress", ingress, "--num-cpus", "2", *extra]
        self.ingress, self.cmd = ingress, cmd

    def __enter__(self) -> list[str]:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, text=True, env=_env())
        line = self.proc.stdout.readline().split()
        if not line or (self.ingress == "direct" and len(line) < 2):
            self.__exit__()
            raise RuntimeError(f"`aigcsched serve --ingress {self.ingress}` printed no URLs: {line}")
        proxy, *direct = line
        return direct if self.ingress == "direct" else [proxy]

    def __exit__(self, *_) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def measure_serve(args, policy: Policy, ingress: str, single: list[bytes], batched: list[bytes]) -> dict:
    """Load on the proxy URL (proxy mode) or spread over the replicas' own URLs (direct mode)."""
    with Served(args, policy, ingress) as urls:
        return load_suite(urls, single, batched, args, {})


def _env() -> dict:
    path = os.pathsep.join(filter(None, [os.getcwd(), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "AIGCSCHED_API_TOKEN": ""}


def learned_model(args) -> str:
    """`--model`, or the champion of the benchmark's own store, trained there (2 iterations of
    configs/edge_ppo.yaml, about a minute) and promoted whatever it scores the first time."""
    if args.model:
        return args.model
    os.makedirs(STORE, exist_ok=True)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{STORE}/mlflow.db"
    from aigcsched.platform import registry

    uri = f"models:/{MODEL_NAME}@{registry.CHAMPION}"
    if registry.champion_version(MODEL_NAME) is None:
        config = os.path.abspath("configs/edge_ppo.yaml")
        cmd = [sys.executable, "-m", "aigcsched.cli", "train", config, "--stop-iters", "2"]
        cmd += ["--set", f"tracking.model_name={MODEL_NAME}", "--set", "evaluation.episodes=2"]
        # Run in the store's folder: the artifacts (./mlruns) stay with the database, not in this checkout.
        subprocess.run(
            cmd, check=True, cwd=STORE, env={**_env(), "MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"]}
        )
        if registry.champion_version(MODEL_NAME) is None:  # not better than the baselines: fine here
            import mlflow

            versions = mlflow.MlflowClient().search_model_versions(f"name='{MODEL_NAME}'")
            registry.promote(MODEL_NAME, max(int(v.version) for v in versions))
    return uri


def other_version(uri: str) -> tuple[str, str]:
    """(the version the alias points to, another one to move it to): an existing one, or a copy of
    the current one registered in the benchmark's own store."""
    import tempfile

    import mlflow

    from aigcsched.platform import registry
    from aigcsched.platform.trained_policy import save_policy

    current = registry.resolve_model_version(uri)
    name = current.name
    others = [str(v.version) for v in mlflow.MlflowClient().search_model_versions(f"name='{name}'")]
    others = [v for v in others if v != str(current.version)]
    if others:
        return str(current.version), str(max(others, key=int))
    if name != MODEL_NAME:
        raise SystemExit(f"{name} has one version; the switch run needs two (or run without --model)")
    policy = registry.load_policy(uri)
    if mlflow.get_experiment_by_name(COPIES) is None:  # its artifacts in the store's folder, not in this checkout
        mlflow.create_experiment(COPIES, artifact_location=os.path.join(STORE, "copies"))
    mlflow.set_experiment(COPIES)
    with mlflow.start_run(), tempfile.TemporaryDirectory() as tmp:
        save_policy(policy, tmp)
        return str(current.version), str(registry.log_policy_model(tmp, policy.cfg, name).registered_model_version)


def switch_run(args, policy: Policy, single: list[bytes]) -> dict:
    """`--switch-requests` decide calls at concurrency 32 on direct ingress; the alias moves to
    another version a third of the way in and back at two thirds (polled every second)."""
    from aigcsched.platform import registry

    name = registry.resolve_model_version(policy.model_uri).name
    old, new = other_version(policy.model_uri)
    answers: list[tuple[float, str | None]] = []
    moves: list[tuple[float, str]] = []
    with Served(args, policy, "direct", ("--follow-every", "1")) as urls:
        first = time.monotonic()

        def mover():
            for k, target in enumerate((new, old), start=1):
                # k thirds answered, and (moving back) the new version answered at least once
                while len(answers) < k * args.switch_requests / 3 or (k == 2 and answers[-1][1] != new):
                    if len(answers) >= args.switch_requests:
                        return
                    time.sleep(0.05)
                registry.promote(name, target)
                moves.append((time.monotonic(), target))

        thread = threading.Thread(target=mover)
        thread.start()
        headers = {"Content-Type": "application/json"}
        urls = [u + "/v1/edge/decide" for u in urls]
        result = _loop_runner()(closed_loop(urls, single, 32, args.switch_requests, headers, versions=answers))
        thread.join()
    registry.promote(name, old)  # as it was, whatever happened
    lags = []
    for at, target in moves:
        served = next((t for t, v in answers if t >= at and v == target), None)
        lags.append(None if served is None else served - at)
    switches = sum(a[1] != b[1] for a, b in zip(answers, answers[1:], strict=False))
    return {**result, "versions": [old, new], "lags_s": lags, "switches": switches, "seconds": time.monotonic() - first}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policies", nargs="+", default=["greedy", "learned"], choices=["greedy", "myopic", "learned"])
    parser.add_argument("--model", help="learned model URI [default: the benchmark's own, trained once]")
    parser.add_argument("--requests", type=int, default=10_000, help="calls per run of /v1/edge/decide")
    parser.add_argument("--batch-calls", type=int, default=500, help="calls per run of decide-batch")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--servers", type=int, default=10, help="servers per decision (the model's count)")
    parser.add_argument(
        "--ingress", nargs="+", default=["proxy", "direct"], choices=["proxy", "direct"], help="serve modes"
    )
    parser.add_argument("--skip-bare", action="store_true", help="measure Serve and in-process only")
    parser.add_argument(
        "--switch-requests", type=int, default=10_000, help="decide calls while the alias moves (0: no switch run)"
    )
    parser.add_argument("--json", dest="json_out", help="also write the results to this JSON file")
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bare-policy", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        return run_bare_server(args.bare_server, args.bare_policy)

    policies = []
    for name in args.policies:
        if name == "learned":
            uri = learned_model(args)
            policies.append(Policy("learned", ("--model", uri), uri))
        else:
            policies.append(Policy(name, ("--policy", name)))
    bodies = make_bodies(2048, args.servers)
    single = [json.dumps(b).encode() for b in bodies]
    batched = [json.dumps(bodies[i : i + BATCH]).encode() for i in range(0, len(bodies), BATCH)]
    console = Console(width=160)
    out = {"in_process": {}, "runs": [], "switch": None}
    table = Table(title=f"/v1/edge on loopback: {args.servers} servers, {args.replicas} Serve replica(s)")
    for col in ("policy", "endpoint", "conc.", "host", "calls", "decisions/s", "p50 ms", "p95 ms", "p99 ms",
                "errors", "vs bare", "vs in-process"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("policy", "endpoint", "host") else "right")
    for policy in policies:
        inproc = in_process(policy.source().load(), single, batched)
        out["in_process"][policy.name] = inproc
        console.print(
            f"{policy.name} in-process: {inproc['decide']:,.0f} decisions/s single, "
            f"{inproc['decide-batch']:,.0f} batched"
        )
        hosts = {f"serve/{mode}": measure_serve(args, policy, mode, single, batched) for mode in args.ingress}
        if not args.skip_bare:
            hosts["bare"] = measure_bare(args, policy, single, batched)
        bare = hosts.get("bare", {})
        for endpoint, conc in next(iter(hosts.values())):
            per_call = BATCH if endpoint == "decide-batch" else 1
            b = bare.get((endpoint, conc))
            for host, results in hosts.items():
                r = results[(endpoint, conc)]
                rate = r["calls_per_s"] * per_call
                table.add_row(
                    policy.name, endpoint, str(conc), host, f"{r['calls']:,}", f"{rate:,.0f}",
                    f"{r['p50']:.1f}", f"{r['p95']:.1f}", f"{r['p99']:.1f}", str(r["errors"]),
                    f"{r['calls_per_s'] / b['calls_per_s']:.2f}x" if b else "-",
                    f"{rate / inproc[endpoint]:.3f}x",
                )  # fmt: skip
                out["runs"].append(
                    {"policy": policy.name, "endpoint": endpoint, "concurrency": conc, "host": host,
                     "decisions_per_s": rate, **r}
                )  # fmt: skip
    console.print(table)
    learned = next((p for p in policies if p.model_uri), None)
    if learned is not None and args.switch_requests:
        sw = switch_run(args, learned, single)
        out["switch"] = sw
        lags = ", ".join("never" if lag is None else f"{lag:.1f} s" for lag in sw["lags_s"])
        console.print(
            f"switch run ({learned.model_uri}: version {sw['versions'][0]} -> {sw['versions'][1]} -> back, "
            f"direct ingress, concurrency 32): {sw['calls']:,} decide calls, {sw['errors']} errors, "
            f"{sw['calls_per_s']:,.0f} decisions/s, p99 {sw['p99']:.1f} ms; answers from the new version "
            f"after {lags}; {sw['switches']} version changes in the answers"
        )
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(out, f, indent=1, default=str)


if __name__ == "__main__":
    main()

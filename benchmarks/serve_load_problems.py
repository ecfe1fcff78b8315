"""Closed-loop HTTP load on /v1/mec/decide, served by a registered mec model, on loopback.

A `mec` policy for 5 stations (RLlib's default PPO MLP, 256x256, one module shared by the stations;
untrained: the weights do not change the cost) is registered in a scratch MLflow store. For
/v1/mec/decide (one slot of all 5 stations per call), at concurrency 1, 8 and 32, it reports
slots decided per second, p50/p99 latency and errors for:
  - serve/direct: `aigcsched serve --model models:/...@champion --ingress direct` (Ray Serve,
    each replica answering on its own port),
  - bare: the same FastAPI app and policy in one plain uvicorn process (no Ray),
with the ratio of Serve to bare at equal concurrency. Before the load, 20 bodies are answered by both
hosts and by the policy in this process, and the answers must agree.

Bodies are states of `MECEnv` episodes under the least-loaded heuristic (queues of a busy system).
Usage: python benchmarks/serve_load_problems.py [--requests 2000] [--concurrency 1 8 32]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.request

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_load import closed_loop, free_port, wait_ready  # noqa: E402  the load generator of the edge benchmark

MODEL = "bench-mec"
STATIONS = 5


def register_model(store: str) -> str:
    """An untrained mec policy registered and promoted in the store; its URI."""
    import mlflow
    from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
    from ray.rllib.core.rl_module.rl_module import RLModuleSpec

    from aigcsched.envs.mec import MECConfig
    from aigcsched.platform import registry
    from aigcsched.platform.problems import get_problem
    from aigcsched.platform.trained_policy import TrainedPolicy, save_policy

    cfg, problem = MECConfig(n_servers=STATIONS), get_problem("mec")
    obs_space, action_space = problem.spaces(cfg)
    spec = RLModuleSpec(module_class=DefaultPPOTorchRLModule, model_config={"fcnet_hiddens": [256, 256]})
    spec.observation_space, spec.action_space = obs_space, action_space
    policy = TrainedPolicy({"m": spec.build()}, {a: "m" for a in problem.agents(cfg)}, cfg)
    mlflow.set_tracking_uri(store)
    mlflow.set_experiment("bench")
    with mlflow.start_run(), tempfile.TemporaryDirectory() as tmp:
        save_policy(policy, tmp)
        version = registry.log_policy_model(tmp, cfg, MODEL).registered_model_version
    registry.promote(MODEL, str(version))
    return f"models:/{MODEL}@champion"


def make_bodies(n: int, seed: int = 0) -> list[dict]:
    """States of busy mec episodes (one body per slot)."""
    from aigcsched.algorithms.mec_heuristics import least_loaded, local
    from aigcsched.envs.mec import MECConfig, MECEnv

    env, bodies = MECEnv(MECConfig(n_servers=STATIONS)), []
    while len(bodies) < n:
        obs, _ = env.reset(seed=seed + len(bodies))
        while env.agents and len(bodies) < n:
            inst, t = env.instance, env.slot
            backlog = np.maximum(env.free_at - env.now, 0.0)
            stations = []
            for i in range(STATIONS):
                task = None
                if inst.has_task[t, i]:
                    task = {"mbit": round(float(inst.task_mbit[t, i]), 3), "steps": int(inst.task_steps[t, i])}
                links = [round(float(inst.link_mbps[i, j]), 2) for j in range(STATIONS) if j != i]
                stations.append(
                    {
                        "id": f"bs-{i}",
                        "capacity_steps_per_s": round(float(inst.capacity[i]), 3),
                        "backlog_s": round(float(backlog[i]), 3),
                        "links_mbps": links,
                        "task": task,
                    }
                )
            bodies.append({"stations": stations})
            shares = {a: (least_loaded if obs[a][0] > 0 else local)(env, a, obs[a]) for a in env.agents}
            obs, *_ = env.step_shares(shares)
    return bodies


class LocalProblemService:
    """The app's host in one process (what `api.LocalService` is for edge)."""

    app_name = "bare"

    def __init__(self, decider):
        self.decider = decider


def run_bare_server(port: int, model_uri: str) -> None:
    """Child process: the API on plain uvicorn (one process, uvloop + httptools, no access log)."""
    import uvicorn

    from aigcsched.serve.api import make_api
    from aigcsched.serve.policy import PolicySource
    from aigcsched.serve.problems import load_decider

    app = make_api(LocalProblemService(load_decider(PolicySource(model_uri=model_uri))))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def local_decider(model_uri: str):
    from aigcsched.serve.policy import PolicySource
    from aigcsched.serve.problems import load_decider

    return load_decider(PolicySource(model_uri=model_uri))


def post(url: str, payload: bytes) -> dict:
    req = urllib.request.Request(url, data=payload, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def load(bases: list[str], payloads: list[bytes], args) -> dict:
    try:
        from uvloop import run  # the cheaper event loop, as uvicorn uses it on both servers
    except ImportError:
        import asyncio

        run = asyncio.run
    headers = {"Content-Type": "application/json"}
    urls = [b + "/v1/mec/decide" for b in bases]
    return {conc: run(closed_loop(urls, payloads, conc, args.requests, headers)) for conc in args.concurrency}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="calls per concurrency level")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        return run_bare_server(args.bare_server, args.model)

    console = Console(width=130)
    scratch = tempfile.mkdtemp(prefix="serve-load-problems-")
    store = f"sqlite:///{scratch}/mlflow.db"
    os.environ["MLFLOW_TRACKING_URI"] = store
    os.chdir(scratch)  # MLflow's artifacts go next to the store
    uri = register_model(store)
    bodies = make_bodies(512)
    payloads = [json.dumps(b).encode() for b in bodies]
    tasks = sum(s["task"] is not None for b in bodies for s in b["stations"]) / len(bodies)
    console.print(f"{len(bodies)} bodies, {tasks:.1f} tasks per slot of {STATIONS} stations")
    decider = local_decider(uri)

    path = os.pathsep.join(
        filter(None, [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.environ.get("PYTHONPATH")])
    )
    env = {**os.environ, "PYTHONPATH": path, "AIGCSCHED_API_TOKEN": ""}
    results, procs = {}, []
    try:
        port = free_port()
        cmd = [sys.executable, "-m", "aigcsched.cli", "serve", "--model", uri, "--port", str(port)]
        cmd += ["--ingress", "direct", "--num-cpus", "2"]
        serve_proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        procs.append(serve_proc)
        _, *direct = serve_proc.stdout.readline().split()
        if not direct:
            raise RuntimeError("`aigcsched serve --ingress direct` printed no replica URL")
        bare_port = free_port()
        bare = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--bare-server", str(bare_port), "--model", uri], env=env
        )
        procs.append(bare)
        bare_url = f"http://127.0.0.1:{bare_port}"
        wait_ready(bare_url)
        # the hosts answer as the policy does in process
        for body, payload in zip(bodies[:20], payloads[:20], strict=True):
            from aigcsched.platform.problems.mec_serving import MECDecideRequest

            want = decider.decide([MECDecideRequest.model_validate(body)])[0]
            for base in (direct[0], bare_url):
                got = post(base + "/v1/mec/decide", payload)
                if got != want:
                    raise RuntimeError(f"{base} answered {got}, in process {want}")
        console.print("answers: serve/direct and bare agree with the in-process policy on 20 bodies")
        results["bare"] = load([bare_url], payloads, args)
        results["serve/direct"] = load(direct, payloads, args)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()

    table = Table(title=f"/v1/mec/decide on loopback: mec model ({STATIONS} stations, MLP 256x256), 1 Serve replica")
    for col in ("conc.", "host", "calls", "slots/s", "p50 ms", "p99 ms", "errors", "vs bare"):
        table.add_column(col, justify="left" if col == "host" else "right")
    for conc in args.concurrency:
        b = results["bare"][conc]
        for host in ("serve/direct", "bare"):
            r = results[host][conc]
            table.add_row(
                str(conc), host, f"{r['calls']:,}", f"{r['calls_per_s']:,.0f}", f"{r['p50']:.1f}",
                f"{r['p99']:.1f}", str(r["errors"]), f"{r['calls_per_s'] / b['calls_per_s']:.2f}x",
            )  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()

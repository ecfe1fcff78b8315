"""Wall time of a study run as parallel Ray Tune trials against the same study run one trial at a
time, on a local cluster of N nodes (`ray start` N times on this machine, 1 CPU each, token
authentication on; a trial with num_env_runners=0 needs 1 CPU, so N trials fit at once).

The study: 4 variants (edge PPO: the scored actor, the MLP, two learning rates) x 2 seeds of short
trainings. It runs twice through `aigcsched study --address`, first with --max-concurrent 1 (the
sequential reference), then with as many trials at once as the cluster holds, each into its own
folder and MLflow store. Prints both wall times and their ratio (target: <= 0.6 on 2 nodes).
With several trial lengths (--iterations 4,16,48) it also fits wall time = fixed + per iteration x
iterations to each column: the fixed part (driver and trial processes starting, held-out
heuristics, report) does not shrink with trials at once, so the ratio falls with longer trials, and
it prints the trial length from which the ratio is <= 0.6.
With --gpu the trials' learners take a GPU each (num_gpus_per_learner, where torch sees CUDA) and
the head gets the machine's GPUs.
Usage: python benchmarks/study_speed.py [--nodes 2] [--iterations 4[,16,48]] [--gpu] [--out /tmp/study_speed]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def start_cluster(nodes: int, folder: Path, env: dict, gpus: int) -> tuple[str, list[subprocess.Popen], list[str]]:
    """Head plus nodes-1 workers, 1 CPU each; returns (GCS address, the --block processes, temp dirs)."""
    gcs, *ports = free_ports(2 + nodes)
    common = ["--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--block"]
    procs, temps = [], []

    def start(args: list[str], name: str, temp: str) -> None:
        temps.append(temp)
        log = open(folder / f"{name}.log", "w")
        cmd = [BIN / "ray", "start", *args, "--temp-dir", temp, *common]
        procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    head = ["--head", "--port", str(gcs), "--dashboard-port", str(ports[0]), "--dashboard-agent-listen-port"]
    start([*head, str(ports[1]), "--num-gpus", str(gpus)], "head", f"/tmp/ray-h{gcs}")
    status = [BIN / "ray", "status", "--address", f"127.0.0.1:{gcs}"]
    wait(lambda: subprocess.run(status, env=env, capture_output=True).returncode == 0, "the head")
    for i in range(1, nodes):
        worker = ["--address", f"127.0.0.1:{gcs}", "--dashboard-agent-listen-port", str(ports[1 + i])]
        start([*worker, "--num-gpus", "0"], f"worker{i}", f"/tmp/ray-w{i}-{gcs}")

    def joined() -> bool:
        return subprocess.run(status, env=env, capture_output=True, text=True).stdout.count(" node_") >= nodes

    wait(joined, "the worker nodes")
    return f"127.0.0.1:{gcs}", procs, temps


def wait(check, what: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(1)
    raise TimeoutError(f"timed out waiting for {what}")


def study_file(folder: Path, iterations: int, gpu: bool) -> Path:
    config = str(ROOT / "configs" / "edge_ppo.yaml")
    training = {
        "env.config.n_requests": 256,
        "resources.num_envs_per_env_runner": 8,
        "resources.num_gpus_per_learner": 1 if gpu else 0,
        "algorithm.train_batch_size": 1024,
        "algorithm.minibatch_size": 256,
        "algorithm.num_epochs": 2,
        "evaluation.episodes": 2,
        "stop": {"iterations": iterations},
    }
    mlp = {"algorithm.module": "mlp", "algorithm.anchor_scale": 0.0}
    study = {
        "name": "study-speed",
        "seeds": 2,
        "set": training,
        "variants": {
            "scored": {"config": config},
            "scored-lr3e-4": {"config": config, "set": {"algorithm.lr": 0.0003}},
            "mlp": {"config": config, "set": mlp},
            "mlp-lr3e-4": {"config": config, "set": {**mlp, "algorithm.lr": 0.0003}},
        },
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def timed_study(path: Path, address: str, out: Path, env: dict, max_concurrent: int | None) -> float:
    cmd = [sys.executable, "-m", "aigcsched.cli", "study", str(path), "--address", address, "--out", str(out)]
    if max_concurrent:
        cmd += ["--max-concurrent", str(max_concurrent)]
    env = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{out}.db"}
    start = time.perf_counter()
    with open(f"{out}.log", "w") as log:
        done = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=out.parent)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"study failed, see {out}.log")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument(
        "--iterations", default="4", help="training iterations per trial; a comma list runs each in turn"
    )
    parser.add_argument("--gpu", action="store_true", help="a GPU learner per trial (CUDA machines)")
    parser.add_argument("--out", default="/tmp/study_speed")
    args = parser.parse_args()
    folder = Path(args.out)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    gpus = 0
    if args.gpu:
        import torch

        gpus = torch.cuda.device_count()
        if gpus == 0:
            raise SystemExit("--gpu: torch sees no CUDA device")
    # the cluster's own token: `ray start` with RAY_AUTH_MODE=token fails where none exists
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }
    address, procs, temps = start_cluster(args.nodes, folder, env, gpus)
    lengths = [int(n) for n in args.iterations.split(",")]
    rows = []
    try:
        for n in lengths:
            path = study_file(folder, n, args.gpu)
            sequential = timed_study(path, address, folder / f"sequential-{n}", env, max_concurrent=1)
            parallel = timed_study(path, address, folder / f"parallel-{n}", env, max_concurrent=None)
            rows.append(
                {
                    "iterations_per_trial": n,
                    "sequential_s": round(sequential, 1),
                    "parallel_s": round(parallel, 1),
                    "ratio": round(parallel / sequential, 3),
                }
            )
            print(
                f"4 variants x 2 seeds of {n} iterations on {args.nodes} nodes: sequential {sequential:.1f} s, "
                f"parallel {parallel:.1f} s, ratio {parallel / sequential:.3f} (target <= 0.6)",
                flush=True,
            )
    finally:
        for proc in reversed(procs):  # ending the --block processes stops the nodes
            proc.send_signal(signal.SIGTERM)
        for proc in reversed(procs):
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for temp in temps:
            shutil.rmtree(temp, ignore_errors=True)
    figures = {"nodes": args.nodes, "trials": 8, "gpu_learner": args.gpu, "runs": rows}
    if len(rows) > 1:
        figures["fit"] = fit(rows)
        f = figures["fit"]
        print(
            f"fixed part: {f['sequential_fixed_s']:.1f} s sequential, {f['parallel_fixed_s']:.1f} s parallel; "
            f"an iteration more per trial adds {f['sequential_s_per_iteration']:.2f} s one trial at a time, "
            f"{f['parallel_s_per_iteration']:.2f} s in parallel ({f['trial_scaling']:.2f}x, ideal {1 / args.nodes:.2f})"
        )
        if f["iterations_for_0_6"] is not None:
            print(
                f"ratio <= 0.6 from about {f['iterations_for_0_6']:.0f} iterations per trial "
                f"(about {f['trial_seconds_for_0_6']:.0f} s of training per trial)"
            )
    (folder / "study_speed.json").write_text(json.dumps(figures, indent=2))


def fit(rows: list[dict]) -> dict:
    """Least-squares lines wall time = fixed + per iteration x iterations, and where their ratio is 0.6."""
    import numpy as np

    n = np.array([r["iterations_per_trial"] for r in rows], dtype=float)
    seq_slope, seq_fixed = np.polyfit(n, [r["sequential_s"] for r in rows], 1)
    par_slope, par_fixed = np.polyfit(n, [r["parallel_s"] for r in rows], 1)
    # (par_fixed + par_slope n) / (seq_fixed + seq_slope n) <= 0.6
    crossing = None
    if 0.6 * seq_slope > par_slope:
        crossing = max(0.0, (par_fixed - 0.6 * seq_fixed) / (0.6 * seq_slope - par_slope))
    return {
        "sequential_fixed_s": float(seq_fixed),
        "parallel_fixed_s": float(par_fixed),
        "sequential_s_per_iteration": float(seq_slope),
        "parallel_s_per_iteration": float(par_slope),
        "trial_scaling": float(par_slope / seq_slope),
        "iterations_for_0_6": None if crossing is None else float(crossing),
        "trial_seconds_for_0_6": None if crossing is None else float(crossing * seq_slope / 8),  # 8 trials
    }


if __name__ == "__main__":
    main()

"""Scaling of `edge` PPO training with the number of env runners, with a CPU and a GPU learner.

The project's configuration (configs/edge_ppo.yaml through aigcsched.platform.rllib_setup, so the
same batch sizes, module and batched env as `aigcsched train`) with N remote env runners, each
point on a fresh algorithm: one warm-up iteration, then iterations for --seconds of wall time.
Reports env steps/s and learner updates/s (minibatch gradient steps), the speed-up against 1
runner with the same learner measured in the same run, and the scaling efficiency
(steps/s at N) / (N x steps/s at 1). Runner counts above the CPUs available minus one (one for
the driver and its learner) are skipped, with a note; the GPU learner (num_gpus_per_learner=1)
only runs where torch sees CUDA. Writes a figure of efficiency and speed-up against runners, and
the figures as JSON beside it.
Usage: python benchmarks/scaling.py [--runners 1,2,4,8,14] [--seconds 60] [--gpu/--no-gpu] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import ray
import torch
from rich.console import Console
from rich.table import Table

from aigcsched.platform.config import load_experiment
from aigcsched.platform.rllib_setup import algorithm_config

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "edge_ppo.yaml"


def counters(result: dict) -> tuple[int, int]:
    """(env steps sampled, samples trained on: summed over minibatches and epochs), lifetime."""
    sampled = int(result.get("env_runners", {}).get("num_env_steps_sampled_lifetime", 0))
    learner = result.get("learners", {}).get("default_policy", {})
    return sampled, int(learner.get("num_module_steps_trained_lifetime", 0))


def measure(exp, seconds: float, console: Console, label: str) -> dict:
    """One warm-up iteration, then train for `seconds` of wall time; rates over that span only."""
    algo = algorithm_config(exp).build_algo()
    try:
        steps0, trained0 = counters(algo.train())
        start, iterations = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            steps, trained = counters(algo.train())
            iterations += 1
        elapsed = time.perf_counter() - start
    finally:
        algo.stop()
    point = {
        "iterations": iterations,
        "seconds": elapsed,
        "env_steps_per_s": (steps - steps0) / elapsed,
        # PPO's minibatches are full-sized (RLlib cycles through the batch), so samples trained on
        # over the minibatch size is the number of gradient updates.
        "updates_per_s": (trained - trained0) / exp.algorithm.minibatch_size / elapsed,
    }
    console.log(
        f"{label}: {iterations} iterations in {elapsed:.1f} s, {point['env_steps_per_s']:,.0f} env steps/s, "
        f"{point['updates_per_s']:.2f} updates/s"
    )
    return point


def runner_counts(text: str) -> list[int]:
    try:
        counts = [int(n) for n in text.split(",") if n.strip()]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}")
    return counts


def plot(results: dict, wanted: list[int], notes: list[str], path: Path) -> None:
    """Efficiency and speed-up against runners; the x axis spans the counts asked for, so the
    ones not measured show as gaps (named in the notes under the figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.4))
    most = max(wanted)
    for learner, points in results.items():
        ns = sorted(int(n) for n in points)
        left.plot(ns, [points[n]["efficiency"] for n in ns], "o-", label=f"{learner} learner")
        right.plot(ns, [points[n]["speedup"] for n in ns], "o-", label=f"{learner} learner")
    left.axhline(1.0, color="grey", linestyle=":", label="ideal")
    right.plot([1, most], [1, most], color="grey", linestyle=":", label="ideal")
    left.set(xlabel="env runners", ylabel="scaling efficiency", title="steps/s at N / (N x steps/s at 1)")
    right.set(xlabel="env runners", ylabel="env steps/s vs 1 runner", title="speed-up, same learner")
    left.set_ylim(0, 1.1)
    right.set_ylim(0, most * 1.05)
    for ax in (left, right):
        ax.set_xticks(wanted)
        ax.set_xlim(0.5, most + 0.5)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("edge PPO (configs/edge_ppo.yaml): scaling with env runners")
    fig.text(0.01, 0.01, "; ".join(notes), fontsize=8, color="dimgrey")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--runners",
        type=runner_counts,
        default="1,2,4,8,14",
        help="comma-separated env runner counts; 1 is always measured (the reference); counts above "
        "the CPUs available minus one are skipped (default: %(default)s)",
    )
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="measured wall time per point, after one warm-up iteration"
    )
    parser.add_argument(
        "--gpu",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also measure with the learner on a GPU (num_gpus_per_learner=1); default: when torch sees CUDA. "
        "--no-gpu: CPU learner only",
    )
    parser.add_argument("--out", default="outputs/scaling.png", help="figure path; the figures go to .json beside it")
    parser.add_argument("--config", default=str(CONFIG), help="experiment YAML (default: configs/edge_ppo.yaml)")
    args = parser.parse_args()
    console = Console(stderr=True)

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    wanted = sorted({1, *args.runners})
    runners = [n for n in wanted if n <= max(1, cpus - 1)]
    notes = []
    if skipped := [n for n in wanted if n not in runners]:
        notes.append(
            f"skipped {', '.join(map(str, skipped))} runners: {cpus} CPUs here, one is the driver's and its learner's"
        )
    learners = ["cpu"]
    if args.gpu is not False:
        if torch.cuda.is_available():
            learners.append("gpu")
        else:
            notes.append("GPU learner not measured: torch sees no CUDA device")
    gpus = 1 if "gpu" in learners else 0
    for note in notes:
        console.print(f"note: {note}")

    ray.init(address="local", num_cpus=cpus, num_gpus=gpus, include_dashboard=False)
    try:
        results: dict[str, dict[int, dict]] = {}
        for learner in learners:
            results[learner] = {}
            for n in runners:
                exp = load_experiment(
                    args.config,
                    {"resources.num_env_runners": n, "resources.num_gpus_per_learner": int(learner == "gpu")},
                )
                results[learner][n] = measure(exp, args.seconds, console, f"{learner} learner, {n} runners")
            base = results[learner][1]["env_steps_per_s"]
            for n, point in results[learner].items():
                point["speedup"] = point["env_steps_per_s"] / base
                point["efficiency"] = point["speedup"] / n
    finally:
        ray.shutdown()

    exp = load_experiment(args.config)
    table = Table(
        title=f"edge PPO scaling: {args.seconds:g} s per point after a warm-up iteration, {cpus} CPUs, "
        f"batch {exp.algorithm.train_batch_size}, {exp.resources.num_envs_per_env_runner} sub-envs per runner",
        caption="; ".join(notes) or None,
    )
    for col in ("learner", "env runners", "iterations", "env steps/s", "updates/s", "vs 1 runner", "efficiency"):
        table.add_column(col, justify="left" if col == "learner" else "right")
    for learner, points in results.items():
        for n, p in points.items():
            table.add_row(
                learner,
                str(n),
                str(p["iterations"]),
                f"{p['env_steps_per_s']:,.0f}",
                f"{p['updates_per_s']:.2f}",
                f"{p['speedup']:.2f}x",
                f"{p['efficiency']:.2f}",
            )
    Console(width=140).print(table)

    out = Path(args.out)
    plot(results, wanted, notes, out)
    meta = {"cpus": cpus, "seconds": args.seconds, "config": args.config, "notes": notes}
    out.with_suffix(".json").write_text(json.dumps({**meta, "results": results}, indent=2))
    console.print(f"figure: {out}  figures: {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()

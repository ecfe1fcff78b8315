"""Forward + backward time of the diffusion actor against an MLP actor of the same widths.

The shapes are the `edge` problem's: 22 observation values in, 10 + 200 logits out (one block per
branch of its MultiDiscrete action). Each figure is the median over repeats after warm-up, both
actors timed in the same run; the ratio is diffusion / MLP. Runs on CPU, and on CUDA when present.
Usage: python benchmarks/diffusion_actor.py [--steps T] [--batches 1 256 16384] [--repeats N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from aigcsched.algorithms.diffusion import DiffusionActor, mlp_actor

OBS_DIM, N_LOGITS = 22, 210


def time_step(actor: torch.nn.Module, batch: int, device: str, repeats: int) -> float:
    """Median seconds of one forward + backward of a policy-gradient-like loss."""
    obs = torch.randn(batch, OBS_DIM, device=device)
    times = []
    for i in range(repeats + 2):  # two warm-up rounds
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        actor.zero_grad(set_to_none=True)
        actor(obs).log_softmax(-1)[:, 0].mean().backward()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="denoising steps T")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 256, 16384])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    table = Table(title=f"actor forward+backward, 256-256 Mish, T={args.steps}, threads={torch.get_num_threads()}")
    for col in ("device", "batch", "MLP ms", "diffusion ms", "ratio"):
        table.add_column(col, justify="right")
    for device in devices:
        torch.manual_seed(0)
        diffusion = DiffusionActor(OBS_DIM, N_LOGITS, n_steps=args.steps).to(device)
        mlp = mlp_actor(OBS_DIM, N_LOGITS).to(device)
        for batch in args.batches:
            repeats = max(3, args.repeats if batch < 4096 else args.repeats // 4)
            t_mlp = time_step(mlp, batch, device, repeats)
            t_diff = time_step(diffusion, batch, device, repeats)
            table.add_row(device, str(batch), f"{t_mlp * 1e3:.3f}", f"{t_diff * 1e3:.3f}", f"{t_diff / t_mlp:.1f}x")
    Console(width=100).print(table)


if __name__ == "__main__":
    main()

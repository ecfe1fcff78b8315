"""How far each policy is from the best schedule in hindsight, on `edge`.

For each mean inter-arrival time, the same seeded instances are played by every policy and
solved exactly (CP-SAT, `aigcsched.algorithms.optimum`) in the same run. Gap per instance =
(optimum - policy) / |optimum| of total reward; the table shows its mean and worst over the
instances, and how many instances the solver proved optimal within the time limit (where it did
not, the best schedule found stands in for the optimum and the gap to the solver's bound is
shown too). `bound` is the cheap upper bound (each request alone on idle servers): a bound, not
a policy, so its gap is negative.

Instances are small (default 8 requests, paper's other settings) because exact solves grow
quickly with load. Extra `--policy` names go through `resolve_policy` (the hook for a trained
model once the model registry exists).

Usage: python benchmarks/optimality_gap.py [--instances 20] [--n-requests 8] [--time-limit 60]
           [--policy NAME ...] [--interarrival S ...] [--set KEY=VALUE ...] [--out outputs/optimality_gap.png]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from aigcsched.algorithms.optimum import OptimumPolicy, upper_bound  # noqa: E402
from aigcsched.envs import EdgeConfig  # noqa: E402
from aigcsched.platform.policies import resolve_policy  # noqa: E402
from aigcsched.platform.problems.edge import episode_instances, evaluate_policy  # noqa: E402

INTERARRIVALS = (1.0, 2.0, 5.0, 15.0)
BASELINES = ("random", "greedy", "myopic")


def run_setting(cfg: EdgeConfig, policies: list[str], instances: int, seed: int, time_limit: float) -> dict:
    optimum = OptimumPolicy(cfg, time_limit_s=time_limit)
    started = time.perf_counter()
    opt = evaluate_policy(optimum, cfg, instances, seed).reward * cfg.n_requests
    solve_s = time.perf_counter() - started
    totals = {
        name: evaluate_policy(resolve_policy(name, cfg, seed=seed), cfg, instances, seed).reward * cfg.n_requests
        for name in policies
    }
    totals["bound"] = np.array([upper_bound(inst, cfg) for inst in episode_instances(cfg, instances, seed)])
    solver_bound = np.array([r.bound for r in optimum.results])
    return {
        "gaps": {name: (opt - t) / np.abs(opt) for name, t in totals.items()},
        "proven": sum(r.optimal for r in optimum.results),
        "solver_gap": (solver_bound - opt) / np.abs(opt),
        "optimum_per_request": float(opt.mean() / cfg.n_requests),
        "solve_s": solve_s / instances,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=20, help="instances per inter-arrival time")
    parser.add_argument("--n-requests", type=int, default=8, help="requests per instance")
    parser.add_argument("--time-limit", type=float, default=60.0, help="CP-SAT seconds per instance")
    parser.add_argument("--seed", type=int, default=1000, help="instance k uses seed + k")
    parser.add_argument("--policy", action="append", default=[], help="extra policy for resolve_policy (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("outputs/optimality_gap.png"), help="PNG of the gaps")
    parser.add_argument(
        "--interarrival", type=float, action="append", help=f"mean inter-arrival time(s) (default {INTERARRIVALS})"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="other EdgeConfig fields (YAML values), e.g. --set n_strong=4 --set tardiness_weight=2",
    )
    args = parser.parse_args()
    policies = list(dict.fromkeys([*BASELINES, *args.policy]))
    interarrivals = tuple(args.interarrival or INTERARRIVALS)
    # Capabilities observed, as the project's trained edge policies see them (heuristics and the
    # optimum read the state, not the observation).
    fields = {"observe_capabilities": True} | {k: yaml.safe_load(v) for k, v in (a.split("=", 1) for a in args.set)}

    results = {}
    for ia in interarrivals:
        cfg = EdgeConfig(**{**fields, "n_requests": args.n_requests, "mean_interarrival_s": ia})
        results[ia] = run_setting(cfg, policies, args.instances, args.seed, args.time_limit)

    table = Table(
        title=f"edge: gap to the hindsight optimum, (optimum - policy) / |optimum|, "
        f"{args.instances} instances of {args.n_requests} requests per inter-arrival (seeds {args.seed}..)"
    )
    for col in ("inter-arrival (s)", "optimum reward/request", "proven optimal", "solve s/instance"):
        table.add_column(col, justify="right")
    for name in [*policies, "bound"]:
        table.add_column(f"{name} mean / worst", justify="right")
    for ia, r in results.items():
        proven = f"{r['proven']}/{args.instances}"
        if r["proven"] < args.instances:
            proven += f" (solver gap <= {100 * r['solver_gap'].max():.2f}%)"
        cells = [f"{100 * r['gaps'][n].mean():.2f}% / {100 * r['gaps'][n].max():.2f}%" for n in policies]
        bound = r["gaps"]["bound"]
        cells.append(f"{100 * bound.mean():.2f}% / {100 * bound.min():.2f}%")
        table.add_row(f"{ia:g}", f"{r['optimum_per_request']:.2f}", proven, f"{r['solve_s']:.1f}", *cells)
    Console(width=200).print(table)

    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(policies)
    x = np.arange(len(interarrivals))
    for k, name in enumerate(policies):
        mean = [100 * results[ia]["gaps"][name].mean() for ia in interarrivals]
        worst = [100 * results[ia]["gaps"][name].max() for ia in interarrivals]
        bars = ax.bar(x + k * width, mean, width, label=name)
        ax.scatter(x + k * width, worst, marker="_", s=200, color=bars.patches[0].get_facecolor())
    ax.set_xticks(x + width * (len(policies) - 1) / 2, [f"{ia:g}" for ia in interarrivals])
    ax.set_xlabel("mean inter-arrival time (s)")
    ax.set_yscale("symlog", linthresh=1.0)  # random's worst case would flatten the rest
    ax.set_ylabel("gap to optimum (%), bar = mean, tick = worst")
    ax.set_title(f"edge, {args.n_requests} requests, {args.instances} instances each")
    ax.legend()
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    Console().print(f"saved {args.out}")


if __name__ == "__main__":
    main()

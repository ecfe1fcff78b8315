"""The platform's commands: evaluate (train, models and reproduce join later)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from aigcsched.algorithms.optimum import OptimumPolicy, upper_bound
from aigcsched.platform.config import ConfigError, env_config, parse_overrides
from aigcsched.platform.evaluation import episode_instances, evaluate_policy
from aigcsched.platform.policies import TIME_LIMIT_ENV, resolve_policy

DEFAULT_POLICIES = ["random", "greedy", "myopic"]


def evaluate(
    env: Annotated[str, typer.Argument(help="problem to evaluate on: edge")] = "edge",
    policy: Annotated[
        list[str] | None,
        typer.Option(
            "--policy",
            "-p",
            help="policy to evaluate; repeat for several [default: random, greedy, myopic]. `optimum` is "
            "the best schedule in hindsight, solved exactly per episode (small episodes only, e.g. "
            f"--set n_requests=20; ${TIME_LIMIT_ENV} seconds per episode, default 60)",
        ),
    ] = None,
    episodes: Annotated[int, typer.Option(min=1, help="episodes per policy")] = 10,
    seed: Annotated[
        int, typer.Option(help="episode k uses seed + k (the same episodes for every policy)")
    ] = 100,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="scenario override KEY=VALUE, e.g. --set n_strong=4 --set 'due_window_s=[2, 10]'"
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object and nothing else")] = False,
    bound: Annotated[
        bool,
        typer.Option(
            "--bound",
            help="add an upper bound on any policy's mean reward (each request alone on idle servers); "
            "a bound, not a policy",
        ),
    ] = False,
) -> None:
    """Compare scheduling policies on the same seeded episodes: per-request means of reward,
    quality, tardiness (s) and the fraction of requests finished late."""
    names = list(dict.fromkeys(policy or DEFAULT_POLICIES))
    cfg = env_config(env, parse_overrides(overrides))
    policies = {name: resolve_policy(name, cfg, seed=seed) for name in names}
    results = {name: evaluate_policy(p, cfg, episodes, seed).means() for name, p in policies.items()}
    for name, p in policies.items():
        if isinstance(p, OptimumPolicy):
            results[name].update(_optimum_summary(name, p))
    if bound:
        bounds = [upper_bound(inst, cfg) for inst in episode_instances(cfg, episodes, seed)]
        results["upper bound"] = {"reward": float(np.mean(bounds)) / cfg.n_requests}
    if as_json:
        typer.echo(json.dumps(results))
        return
    table = Table(
        title=f"{env}: per-request means over {episodes} episodes (seeds {seed}..{seed + episodes - 1})"
    )
    for col in ("policy", "reward", "quality", "tardiness (s)", "late fraction"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for name, m in results.items():
        if name == "upper bound":
            table.add_row("upper bound (not a policy)", f"{m['reward']:.2f}", "-", "-", "-")
            continue
        table.add_row(
            name,
            f"{m['reward']:.2f}",
            f"{m['quality']:.2f}",
            f"{m['tardiness']:.3f}",
            f"{m['late_fraction']:.3f}",
        )
    Console().print(table)


def _optimum_summary(name: str, policy: OptimumPolicy) -> dict:
    """What the solver proved; a note on stderr where it could not prove optimality."""
    results = policy.results
    proven = sum(r.optimal for r in results)
    n = policy.cfg.n_requests
    if proven < len(results):
        worst = max(r.gap for r in results)
        print(
            f"note: {name}: {len(results) - proven} of {len(results)} episodes not proven optimal within "
            f"{policy.time_limit_s:g} s each; their schedules are the best found (myopic's where none was), "
            f"at most {100 * worst:.3g}% below the optimum (bound); raise ${TIME_LIMIT_ENV} or use fewer"
            " requests",
            file=sys.stderr,
        )
    return {
        "proven_optimal_episodes": proven,
        "solver_bound": float(np.mean([r.bound for r in results])) / n,
        "max_gap": float(max(r.gap for r in results)),
    }


def register(app: typer.Typer) -> None:
    app.command()(evaluate)


__all__ = ["ConfigError", "register"]

"""The platform's commands: evaluate (train, models and reproduce join later)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from aigcsched.platform.config import ConfigError, env_config, parse_overrides
from aigcsched.platform.evaluation import evaluate_policy
from aigcsched.platform.policies import resolve_policy

DEFAULT_POLICIES = ["random", "greedy", "myopic"]


def evaluate(
    env: Annotated[str, typer.Argument(help="problem to evaluate on: edge")] = "edge",
    policy: Annotated[
        list[str] | None,
        typer.Option(
            "--policy", "-p", help="policy to evaluate; repeat for several [default: random, greedy, myopic]"
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
) -> None:
    """Compare scheduling policies on the same seeded episodes: per-request means of reward,
    quality, tardiness (s) and the fraction of requests finished late."""
    names = list(dict.fromkeys(policy or DEFAULT_POLICIES))
    cfg = env_config(env, parse_overrides(overrides))
    policies = {name: resolve_policy(name, cfg, seed=seed) for name in names}
    results = {name: evaluate_policy(p, cfg, episodes, seed).means() for name, p in policies.items()}
    if as_json:
        typer.echo(json.dumps(results))
        return
    table = Table(
        title=f"{env}: per-request means over {episodes} episodes (seeds {seed}..{seed + episodes - 1})"
    )
    for col in ("policy", "reward", "quality", "tardiness (s)", "late fraction"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for name, m in results.items():
        table.add_row(
            name,
            f"{m['reward']:.2f}",
            f"{m['quality']:.2f}",
            f"{m['tardiness']:.3f}",
            f"{m['late_fraction']:.3f}",
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command()(evaluate)


__all__ = ["ConfigError", "register"]

"""The platform's commands: evaluate (train, models and reproduce join later)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from aigcsched.envs.data import DataError
from aigcsched.platform.config import ConfigError, env_config, parse_overrides
from aigcsched.platform.datacenter_evaluation import evaluate_datacenter
from aigcsched.platform.evaluation import evaluate_policy
from aigcsched.platform.policies import resolve_policy

DEFAULT_POLICIES = ["random", "greedy", "myopic"]
DATACENTER_POLICIES = ["random", "local", "handoff", "arbitrage", "combined"]


def evaluate(
    env: Annotated[str, typer.Argument(help="problem to evaluate on: edge or datacenter")] = "edge",
    policy: Annotated[
        list[str] | None,
        typer.Option(
            "--policy",
            "-p",
            help="policy to evaluate; repeat for several [default edge: random, greedy, myopic; "
            "datacenter: random, local, handoff, arbitrage, combined]",
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
    quality, tardiness (s) and the fraction of requests finished late (edge); per-episode
    utility, energy cost, renewable share and deadline violations of all providers (datacenter)."""
    cfg = env_config(env, parse_overrides(overrides))
    if env == "datacenter":
        _evaluate_datacenter(cfg, list(dict.fromkeys(policy or DATACENTER_POLICIES)), episodes, seed, as_json)
        return
    names = list(dict.fromkeys(policy or DEFAULT_POLICIES))
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


def _evaluate_datacenter(cfg, names: list[str], episodes: int, seed: int, as_json: bool) -> None:
    policies = {name: resolve_policy(name, cfg, seed=seed) for name in names}
    try:
        results = {name: evaluate_datacenter(p, cfg, episodes, seed) for name, p in policies.items()}
    except DataError as e:  # a trace file named by --set data_dir is missing or malformed
        raise ConfigError(str(e)) from None
    if as_json:
        typer.echo(json.dumps(results))
        return
    table = Table(
        title=f"datacenter: per-episode totals of all {cfg.n_asps} providers, means over {episodes} "
        f"episodes (seeds {seed}..{seed + episodes - 1})"
    )
    columns = (  # header, key, format
        ("reward", "reward", "{:.1f}"),
        ("utility $", "utility", "{:.1f}"),
        ("quality", "quality", "{:.3f}"),
        ("violations", "violation_rate", "{:.4f}"),
        ("energy $", "energy_cost", "{:.1f}"),
        ("renewable", "renewable_share", "{:.3f}"),
        ("handed", "handed_over", "{:.3f}"),
    )
    table.add_column("policy")
    for header, _, _ in columns:
        table.add_column(header, justify="right")
    for name, m in results.items():
        table.add_row(name, *(fmt.format(m[key]) for _, key, fmt in columns))
    table.caption = (
        "utility and energy in USD per episode; violations: share of jobs late; renewable: renewable "
        "share of the energy taken in (on-site used + grid mix); handed: share of jobs handed over"
    )
    console = Console()
    console.width = max(console.width, 100)  # eight columns do not fit 80 characters
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(evaluate)


__all__ = ["ConfigError", "register"]

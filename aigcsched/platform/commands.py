"""The platform's commands: evaluate, train, models."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from aigcsched.algorithms.mec_heuristics import MEC_POLICIES
from aigcsched.algorithms.mec_heuristics import evaluate as evaluate_mec
from aigcsched.algorithms.optimum import OptimumPolicy, upper_bound
from aigcsched.envs.data import DataError
from aigcsched.platform.config import ConfigError, env_config, load_experiment, parse_overrides
from aigcsched.platform.datacenter_evaluation import evaluate_datacenter
from aigcsched.platform.evaluation import episode_instances, evaluate_policy
from aigcsched.platform.policies import TIME_LIMIT_ENV, resolve_policy

DEFAULT_POLICIES = ["random", "greedy", "myopic"]
DATACENTER_POLICIES = ["random", "local", "handoff", "arbitrage", "combined"]


def evaluate(
    env: Annotated[str, typer.Argument(help="problem to evaluate on: edge, datacenter or mec")] = "edge",
    policy: Annotated[
        list[str] | None,
        typer.Option(
            "--policy",
            "-p",
            help="policy to evaluate; repeat for several [default edge: random, greedy, myopic; "
            "datacenter: random, local, handoff, arbitrage, combined; mec: all its baselines]; every env "
            "also takes models:/NAME@ALIAS, models:/NAME/VERSION and checkpoint:PATH; edge also takes "
            "`optimum`, the best schedule in hindsight solved exactly per episode (small episodes only, e.g. "
            f"--set n_requests=20; ${TIME_LIMIT_ENV} s each)",
        ),
    ] = None,
    episodes: Annotated[int, typer.Option(min=1, help="episodes per policy")] = 10,
    seed: Annotated[int, typer.Option(help="episode k uses seed + k (the same episodes for every policy)")] = 100,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="scenario override KEY=VALUE, e.g. --set n_strong=4 --set 'due_window_s=[2, 10]'"),
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
    quality, tardiness (s) and the fraction of requests finished late (edge); per-episode
    utility, energy cost, renewable share and deadline violations of all providers (datacenter)."""
    cfg = env_config(env, parse_overrides(overrides))
    if env == "datacenter":
        _evaluate_datacenter(cfg, list(dict.fromkeys(policy or DATACENTER_POLICIES)), episodes, seed, as_json)
        return
    if env == "mec":
        _evaluate_mec(cfg, list(dict.fromkeys(policy or MEC_POLICIES)), episodes, seed, as_json)
        return
    names = list(dict.fromkeys(policy or DEFAULT_POLICIES))
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
    title = f"{env}: per-request means over {episodes} episodes (seeds {seed}..{seed + episodes - 1})"
    _print_table(Console(), results, title)


def _evaluate_mec(cfg, names: list[str], episodes: int, seed: int, as_json: bool) -> None:
    policies = {name: resolve_policy(name, cfg, seed=seed) for name in names}
    results = {name: evaluate_mec(p, cfg, episodes, seed) for name, p in policies.items()}
    if as_json:
        typer.echo(json.dumps(results))
        return
    _print_mec_table(results, f"mec: per-task means over {episodes} episodes (seeds {seed}..{seed + episodes - 1})")


def _print_mec_table(results: dict, title: str) -> None:
    table = Table(title=title)
    for col in ("policy", "delay s", "parts", "tasks"):
        table.add_column(col, justify="right" if col != "policy" else "left")
    for name, m in results.items():
        table.add_row(name, f"{m['mean_delay']:.3f}", f"{m['mean_parts']:.2f}", f"{m['tasks']:.0f}")
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
    _print_datacenter_table(
        results,
        f"datacenter: per-episode totals of all {cfg.n_asps} providers, means over {episodes} "
        f"episodes (seeds {seed}..{seed + episodes - 1})",
    )


def _print_datacenter_table(results: dict, title: str) -> None:
    table = Table(title=title)
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


def train(
    config: Annotated[str, typer.Argument(help="experiment YAML, e.g. configs/edge_ppo.yaml")],
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="override KEY=VALUE with dotted keys, e.g. --set algorithm.lr=0.0005"),
    ] = None,
    stop_iters: Annotated[int | None, typer.Option(min=1, help="stop after this many iterations (in total)")] = None,
    stop_minutes: Annotated[float | None, typer.Option(min=0.01, help="stop after this many minutes")] = None,
    address: Annotated[str | None, typer.Option(help="join this Ray cluster instead of starting a local one")] = None,
    resume: Annotated[str | None, typer.Option(help="continue this MLflow run from its last checkpoint")] = None,
) -> None:
    """Train a scheduler with RLlib, tracked in MLflow (MLFLOW_TRACKING_URI or ./mlflow.db): progress per
    iteration, checkpoints every K iterations and at the end (Ctrl-C stops cleanly), then evaluation
    on held-out seeds against the baselines, registration, and promotion to `champion` if it beats it."""
    values = parse_overrides(overrides)
    if stop_iters is not None or stop_minutes is not None:
        values["stop"] = {"iterations": stop_iters, "minutes": stop_minutes}
    exp = load_experiment(config, values)
    from aigcsched.platform.training import train as run_training

    outcome = run_training(exp, address=address, resume_run_id=resume)
    console = Console()
    console.print(f"run {outcome.run_id}: {outcome.iterations} iterations, {outcome.env_steps:,} env steps")
    if outcome.evaluation and exp.env.id == "mec":
        _print_mec_table(outcome.evaluation, f"held-out episodes ({exp.evaluation.episodes})")
    elif outcome.evaluation and exp.multi_agent:
        _print_datacenter_table(outcome.evaluation, f"held-out days ({exp.evaluation.episodes} episodes)")
    elif outcome.evaluation:
        _print_table(console, outcome.evaluation, f"held-out evaluation ({exp.evaluation.episodes} episodes)")
    if outcome.model_version:
        console.print(f"model {exp.tracking.model_name} version {outcome.model_version}: {outcome.promotion_reason}")


def submit(
    config: Annotated[str, typer.Argument(help="experiment YAML, e.g. configs/edge_ppo.yaml")],
    address: Annotated[str, typer.Option(help="the cluster's job server, e.g. http://127.0.0.1:8265")],
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="override KEY=VALUE with dotted keys, as for train")
    ] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="return after submitting; print how to follow")] = False,
) -> None:
    """Run `aigcsched train` as a Ray job on an existing cluster: the validated config and the
    aigcsched package travel in the job's runtime environment, MLFLOW_TRACKING_URI is passed on
    (local paths made absolute), logs stream here, and the exit code is the job's."""
    from aigcsched.platform.jobs import submit_training

    exp = load_experiment(config, parse_overrides(overrides))
    code = submit_training(exp, address, wait=not no_wait, echo=lambda *a, **k: print(*a, **k, flush=True))
    raise typer.Exit(code)


def reproduce(
    env: Annotated[str, typer.Argument(help="problem: edge")] = "edge",
    model: Annotated[str, typer.Option(help="trained policy to include")] = "models:/aigcsched-edge@champion",
    no_model: Annotated[bool, typer.Option("--no-model", help="baselines only (no trained policy)")] = False,
    out: Annotated[str, typer.Option(help="folder for the figures and report.md")] = "outputs/reproduce-edge",
    instances: Annotated[int, typer.Option(min=1, help="arrival instances for the per-instance figure")] = 50,
    sweep_episodes: Annotated[int, typer.Option(min=1, help="episodes per point of the sweeps")] = 5,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="scenario override KEY=VALUE")] = None,
) -> None:
    """The paper's evaluation set as PNG figures and a markdown report (also logged to MLflow):
    learning curve, 50 arrival instances, per-request distributions, inter-arrival sweep
    {1, 2, 5, 10, 15, 20} s, strong servers {2, 4, 6, 8} of 10."""
    from pathlib import Path

    import mlflow

    from aigcsched.platform.reproduce import SEED, reproduce_edge

    if env != "edge":
        raise ConfigError(f"reproduce supports only edge, got {env!r}")
    cfg = env_config(env, parse_overrides(overrides))
    factories = {name: (lambda c, n=name: resolve_policy(n, c, seed=SEED)) for name in DEFAULT_POLICIES}
    history, policy = None, None
    if not no_model:
        policy = resolve_policy(model, cfg)

        def trained(c):
            policy.check_fits(c)
            return policy

        factories["trained"] = trained
        run_id = policy.info.get("run_id")
        if run_id:
            client = mlflow.MlflowClient()
            history = {k: client.get_metric_history(run_id, k) for k in ("request_reward", "request_quality")}
    console = Console(stderr=True)
    report = reproduce_edge(factories, cfg, Path(out), instances, sweep_episodes, history, lambda m: console.log(m))
    mlflow.set_experiment("aigcsched-reproduce")
    with mlflow.start_run(run_name=f"reproduce-{env}") as run:
        mlflow.log_params({"model": "none" if no_model else model, "instances": instances})
        if policy is not None:
            mlflow.set_tags(
                {"model_version": str(policy.info.get("version")), "model_run_id": str(policy.info.get("run_id"))}
            )
        mlflow.log_artifacts(out, "reproduce")
    Console().print(f"report: {report}  (MLflow run {run.info.run_id})")


def study(
    path: Annotated[str, typer.Argument(help="study YAML, e.g. configs/studies/mec_algorithms.yaml")],
    seeds: Annotated[int | None, typer.Option(min=1, help="seeds per variant [default: the study's]")] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="override KEY=VALUE for every variant, e.g. --set stop.env_steps=20000"),
    ] = None,
    out: Annotated[str | None, typer.Option(help="folder for report.md [default: outputs/study-NAME]")] = None,
) -> None:
    """Train each variant of a study with several seeds (same env-step budget, one MLflow run each),
    evaluate on the same held-out episodes, and report the score per variant (mean and 95% CI over
    seeds, ratio to the best heuristic), learning curves and, with a reference variant, the env
    steps each needed to reach a share of the reference's final performance."""
    from aigcsched.platform.study import load_study, run_study

    values = parse_overrides(overrides)
    spec, experiments = load_study(path, values)  # every variant is checked before the first run
    folder = out or f"outputs/study-{spec.name}"
    console = Console(stderr=True)
    n = seeds or spec.seeds
    console.print(f"study {spec.name}: {len(experiments)} variants x {n} seeds -> {folder}")
    result = run_study(path, folder, values, seeds, log=console.log)
    metric = result["score"]["metric"]
    table = Table(title=f"{spec.name}: held-out {metric}, {n} seeds")
    for col in ("variant", "mean", "95% CI +-", "vs best heuristic", "steps to target"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for name, r in result["variants"].items():
        steps = r.get("steps_to_target_mean")
        table.add_row(
            name,
            f"{r['score_mean']:.4g}",
            f"{r['score_ci95']:.3g}",
            f"{r['vs_best_heuristic']:.3f}x" if "vs_best_heuristic" in r else "-",
            "-" if steps is None else f"{steps:,.0f} ({r['reached']}/{len(r['scores'])})",
        )
    Console().print(table)
    Console().print(f"report: {folder}/report.md")


models_app = typer.Typer(help="The model registry: list versions, promote one to champion.", no_args_is_help=True)


@models_app.command("list")
def models_list(name: Annotated[str | None, typer.Argument(help="registered model name (all if omitted)")] = None):
    """Registered versions with their aliases, training run and held-out reward."""
    import mlflow

    client = mlflow.MlflowClient()
    names = [name] if name else [m.name for m in client.search_registered_models()]
    table = Table(title=f"registered models ({mlflow.get_tracking_uri()})")
    for col in ("name", "version", "aliases", "run", "eval reward", "created"):
        table.add_column(col)
    for n in names:
        model = client.get_registered_model(n) if name else None
        aliases = {}
        for alias, version in (model or client.get_registered_model(n)).aliases.items():
            aliases.setdefault(str(version), []).append(alias)
        for mv in sorted(client.search_model_versions(f"name='{n}'"), key=lambda v: int(v.version)):
            created = datetime.fromtimestamp(mv.creation_timestamp / 1000).strftime("%Y-%m-%d %H:%M")
            table.add_row(
                n,
                str(mv.version),
                ",".join(aliases.get(str(mv.version), [])),
                (mv.run_id or "")[:8],
                mv.tags.get("eval_reward", ""),
                created,
            )
    Console().print(table)


@models_app.command("promote")
def models_promote(
    name: Annotated[str, typer.Argument(help="registered model name")],
    version: Annotated[int, typer.Argument(help="version to make the champion")],
):
    """Point the `champion` alias at VERSION (what `serve` and `models:/NAME@champion` use)."""
    from aigcsched.platform import registry

    registry.promote(name, version)
    Console().print(f"{name}@{registry.CHAMPION} -> version {version}")


def _print_table(console: Console, results: dict, title: str) -> None:
    table = Table(title=title)
    for col in ("policy", "reward", "quality", "tardiness (s)", "late fraction"):
        table.add_column(col, justify="left" if col == "policy" else "right")
    for name, m in results.items():
        if name == "upper bound":
            table.add_row("upper bound (not a policy)", f"{m['reward']:.2f}", "-", "-", "-")
            continue
        table.add_row(
            name, f"{m['reward']:.2f}", f"{m['quality']:.2f}", f"{m['tardiness']:.3f}", f"{m['late_fraction']:.3f}"
        )
    console.print(table)


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
    app.command()(train)
    app.command()(reproduce)
    app.command()(submit)
    app.command()(study)
    app.add_typer(models_app, name="models")


__all__ = ["ConfigError", "register"]

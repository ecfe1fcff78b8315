"""The platform's commands: evaluate, train, models."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from aigcsched.platform.config import ConfigError, env_config, load_experiment, parse_overrides
from aigcsched.platform.policies import TRAINED_FORMS, resolve_policy
from aigcsched.platform.problems import DEFAULT_PROBLEM, PROBLEMS, Problem, get_problem
from aigcsched.platform.problems.edge import TIME_LIMIT_ENV


def _policy_help() -> str:
    own = "; ".join(f"{p.name}: {', '.join(p.policy_makers())}" for p in PROBLEMS.values())
    defaults = "; ".join(f"{p.name}: {', '.join(p.default_evaluate)}" for p in PROBLEMS.values())
    return (
        f"policy to evaluate; repeat for several. Each problem's own: {own}; every problem also takes "
        f"{', '.join(TRAINED_FORMS)}. Default: {defaults}. `optimum` is the best schedule in hindsight: on edge "
        f"solved exactly per episode (small episodes only, e.g. --set n_requests=20), on datacenter the plan of "
        f"a hindsight LP played through the env (its LP bound with --bound); ${TIME_LIMIT_ENV} s each"
    )


def evaluate(
    env: Annotated[str, typer.Argument(help=f"problem to evaluate on: {', '.join(PROBLEMS)}")] = DEFAULT_PROBLEM,
    policy: Annotated[list[str] | None, typer.Option("--policy", "-p", help=_policy_help())] = None,
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
            help="add an upper bound on any policy's score where the problem has one (edge: each request "
            "alone on idle servers; datacenter: the hindsight LP, ~20 s of CPU per day); a bound, not a policy",
        ),
    ] = False,
) -> None:
    """Compare scheduling policies on the same seeded episodes: per-request means of reward,
    quality, tardiness (s) and the fraction of requests finished late (edge); per-task delays
    (mec); per-day utility, energy cost, renewable share and deadline violations of all providers
    (datacenter)."""
    problem = get_problem(env)
    cfg = env_config(env, parse_overrides(overrides))
    names = list(dict.fromkeys(policy or problem.default_evaluate))
    policies = {name: resolve_policy(name, cfg, seed=seed) for name in names}
    bound_value = problem.upper_bound(cfg, episodes, seed) if bound else None
    if bound and bound_value is None:
        raise ConfigError(f"--bound: {problem.name} has no cheap upper bound")
    results = {name: problem.evaluate(p, cfg, episodes, seed) for name, p in policies.items()}
    if bound_value is not None:
        results["upper bound"] = {problem.score.metric: bound_value}
    if as_json:
        typer.echo(json.dumps(results))
        return
    print_results(
        problem,
        results,
        f"{problem.name}: {problem.table_title} over {episodes} episodes (seeds {seed}..{seed + episodes - 1})"
        + _note(problem, cfg),
    )


def _note(problem: Problem, cfg) -> str:
    """The scenario's own words for a table title (e.g. how its agents decide), or nothing."""
    note = problem.scenario_note(cfg)
    return f"; {note}" if note else ""


def print_results(problem: Problem, results: dict, title: str) -> None:
    """A table of results per policy in the problem's columns (a bound fills its score column only)."""
    table = Table(title=title, caption=problem.table_caption or None)
    table.add_column("policy", no_wrap=True)
    for column in problem.columns:
        table.add_column(column.header, justify="right")
    for name, m in results.items():
        label = f"{name} (not a policy)" if name == "upper bound" else name
        table.add_row(label, *(format(m[c.key], c.fmt) if c.key in m else "-" for c in problem.columns))
    console = Console()
    console.width = max(console.width, 24 + 14 * len(problem.columns))  # wide tables do not fit 80 characters
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
    on held-out seeds against the baselines, registration, and promotion to `champion` if it beats the
    best baseline and the current champion."""
    values = parse_overrides(overrides)
    if stop_iters is not None or stop_minutes is not None:
        values["stop"] = {"iterations": stop_iters, "minutes": stop_minutes}
    exp = load_experiment(config, values)
    from aigcsched.platform.training import train as run_training

    outcome = run_training(exp, address=address, resume_run_id=resume)
    console = Console()
    console.print(f"run {outcome.run_id}: {outcome.iterations} iterations, {outcome.env_steps:,} env steps")
    if outcome.evaluation:
        ev = exp.evaluation
        title = f"held-out evaluation: {exp.problem.table_title}, seeds {ev.seed}..{ev.seed + ev.episodes - 1}"
        title += _note(exp.problem, exp.evaluation_scenario())
        print_results(exp.problem, outcome.evaluation, title)
    if outcome.model_version:
        console.print(f"model {exp.tracking.model_name} version {outcome.model_version}: {outcome.promotion_reason}")


def submit(
    ctx: typer.Context,
    config: Annotated[
        str, typer.Argument(help="experiment YAML (e.g. configs/edge_ppo.yaml), study YAML or sweep YAML")
    ],
    address: Annotated[str, typer.Option(help="the cluster's job server, e.g. http://127.0.0.1:8265")],
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="override KEY=VALUE with dotted keys, as for train")
    ] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="return after submitting; print how to follow")] = False,
    out: Annotated[
        str | None,
        typer.Option(help="study / sweep: report folder on the head (default: outputs/NAME in its home directory)"),
    ] = None,
    max_concurrent: Annotated[int | None, typer.Option(min=1, help="study / sweep: trials at once")] = None,
) -> None:
    """Run `aigcsched train` (an experiment file), `aigcsched study` (a study file) or `aigcsched
    tune` (a sweep file) as a Ray job on an existing cluster: the validated files and the aigcsched
    package travel in the job's runtime environment, MLFLOW_TRACKING_URI is passed on (local paths
    made absolute), logs stream here, and the exit code is the job's. A study's or sweep's report is
    also logged to MLflow. With `aigcsched --verbose submit`, the job shows the libraries' warnings
    and logs too."""
    from aigcsched.platform.jobs import file_kind, submit_file, submit_training

    values = parse_overrides(overrides)
    verbose = bool(ctx.find_root().params.get("verbose"))
    echo = lambda *a, **k: print(*a, **k, flush=True)  # noqa: E731
    kind = file_kind(config)
    if kind == "train":
        if out is not None or max_concurrent is not None:
            raise ConfigError("--out and --max-concurrent are for a study or a sweep, not a training")
        exp = load_experiment(config, values)
        code = submit_training(exp, address, wait=not no_wait, echo=echo, verbose=verbose)
    else:
        args = [
            *(["--out", out] if out else []),
            *(["--max-concurrent", str(max_concurrent)] if max_concurrent else []),
        ]
        code = submit_file(kind, config, values, address, args, wait=not no_wait, echo=echo, verbose=verbose)
    raise typer.Exit(code)


def reproduce(
    env: Annotated[str, typer.Argument(help="problem (only edge has the paper's figures so far)")] = DEFAULT_PROBLEM,
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

    problem = get_problem(env)
    if not problem.reproducible:
        reproducible = ", ".join(p.name for p in PROBLEMS.values() if p.reproducible)
        raise ConfigError(f"reproduce has the paper's figures for {reproducible}, not {env}")
    cfg = env_config(env, parse_overrides(overrides))
    factories = {name: (lambda c, n=name: resolve_policy(n, c, seed=SEED)) for name in problem.default_evaluate}
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
            history = {k: client.get_metric_history(run_id, k) for k in problem.plotted}
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
    address: Annotated[str | None, typer.Option(help="run the trials on this Ray cluster, e.g. 10.0.0.5:6379")] = None,
    max_concurrent: Annotated[
        int | None, typer.Option(min=1, help="trials at once (default: as many as the cluster's resources hold)")
    ] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="start over instead of resuming the unfinished study in --out")
    ] = False,
) -> None:
    """Train each variant of a study with several seeds (same env-step budget), each (variant, seed)
    a Ray Tune trial and one MLflow run, as many at once as the cluster holds; evaluate on the same
    held-out episodes; report per variant the score (mean and 95% t interval, IQM with stratified
    bootstrap interval, probability of beating the best heuristic), learning curves, performance
    profiles and, with a reference variant, the env steps each needed to reach a share of the
    reference's final performance. Run again after a crash or Ctrl-C: finished trials are kept."""
    from aigcsched.platform.study import StudyFailed, load_study, run_study

    values = parse_overrides(overrides)
    spec, experiments = load_study(path, values)  # every variant is checked before the first run
    folder = out or f"outputs/study-{spec.name}"
    console = Console(stderr=True)
    n = seeds or spec.seeds
    console.print(f"study {spec.name}: {len(experiments)} variants x {n} seeds -> {folder}")
    try:
        result = run_study(
            path,
            folder,
            values,
            seeds,
            log=console.log,
            address=address,
            max_concurrent=max_concurrent,
            restart=restart,
        )
    except StudyFailed as e:
        console.print(f"error: {e}")
        raise typer.Exit(1) from None
    metric = result["score"]["metric"]
    table = Table(title=f"{spec.name}: held-out {metric}, {n} seeds")
    for col in (
        "variant",
        "mean",
        "95% CI +-",
        "IQM [95% CI]",
        "P(beats best heuristic)",
        "vs best heuristic",
        "steps to target",
    ):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for name, r in result["variants"].items():
        steps = r.get("steps_to_target_mean")
        table.add_row(
            name,
            f"{r['score_mean']:.4g}",
            f"{r['score_ci95']:.3g}",
            f"{r['score_iqm']:.4g} [{r['score_iqm_ci95'][0]:.4g}, {r['score_iqm_ci95'][1]:.4g}]",
            f"{r['p_improvement']:.2f}" if "p_improvement" in r else "-",
            f"{r['vs_best_heuristic']:.3f}x" if "vs_best_heuristic" in r else "-",
            "-" if steps is None else f"{steps:,.0f} ({r['reached']}/{len(r['scores'])})",
        )
    console = Console()
    console.width = max(console.width, 150)  # seven columns: the intervals must not wrap
    console.print(table)
    console.print(f"report: {folder}/report.md")


def tune(
    path: Annotated[str, typer.Argument(help="sweep YAML: a config, the keys to search and their ranges")],
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="override KEY=VALUE for every trial, e.g. --set stop.env_steps=8192"),
    ] = None,
    out: Annotated[
        str | None, typer.Option(help="folder for report.md and best.yaml (default: outputs/sweep-NAME)")
    ] = None,
    address: Annotated[str | None, typer.Option(help="run the trials on this Ray cluster, e.g. 10.0.0.5:6379")] = None,
    max_concurrent: Annotated[
        int | None, typer.Option(min=1, help="trials at once (default: as many as the cluster's resources hold)")
    ] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="start over instead of resuming the unfinished sweep in --out")
    ] = False,
) -> None:
    """Search hyperparameters: Optuna samples values for the sweep file's config keys, each trial a
    `train` run (a Ray Tune trial, one MLflow run in experiment sweep-NAME), ASHA stops trials that
    fall behind on the learning curve. The finished trial with the best held-out score is written
    out as best.yaml (an experiment config for `aigcsched train`) and its policy registered, and
    promoted by the usual rule. Run again after a crash or Ctrl-C: finished trials are kept."""
    from aigcsched.platform.sweep import load_sweep, run_sweep

    values = parse_overrides(overrides)
    spec, _ = load_sweep(path, values)  # every searched key is checked before the first trial
    folder = out or f"outputs/sweep-{spec.name}"
    console = Console(stderr=True)
    console.print(f"sweep {spec.name}: {spec.trials} trials -> {folder}")
    summary = run_sweep(
        path, folder, values, address=address, max_concurrent=max_concurrent, restart=restart, log=console.log
    )
    best = summary["best"]
    console = Console()
    console.print(f"best held-out {summary['score_metric']} {best['score']:.4g} with {best['params']}")
    console.print(f"config: {folder}/best.yaml  report: {folder}/report.md")
    if summary["registered"]:
        r = summary["registered"]
        console.print(f"model {r['model']} version {r['version']}: {r['reason']}")


models_app = typer.Typer(help="The model registry: list versions, promote one to champion.", no_args_is_help=True)


@models_app.command("list")
def models_list(name: Annotated[str | None, typer.Argument(help="registered model name (all if omitted)")] = None):
    """Registered versions with their problem, aliases, training run, held-out score and, for a
    version training did not promote, why."""
    import mlflow

    from aigcsched.platform.registry import PROBLEM_TAG, PROMOTION_TAG, version_score

    client = mlflow.MlflowClient()
    names = [name] if name else [m.name for m in client.search_registered_models()]
    table = Table(title=f"registered models ({mlflow.get_tracking_uri()})")
    for col in ("name", "version", "problem", "aliases", "run", "held-out score", "created", "not promoted"):
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
                mv.tags.get(PROBLEM_TAG, ""),
                ",".join(aliases.get(str(mv.version), [])),
                (mv.run_id or "")[:8],
                version_score(mv),
                created,
                mv.tags.get(PROMOTION_TAG, ""),
            )
    console = Console()
    console.width = max(console.width, 180)  # eight columns: the score and run id must not be cut
    console.print(table)


@models_app.command("promote")
def models_promote(
    name: Annotated[str, typer.Argument(help="registered model name")],
    version: Annotated[int, typer.Argument(help="version to make the champion")],
):
    """Point the `champion` alias at VERSION (what `serve` and `models:/NAME@champion` use)."""
    from aigcsched.platform import registry

    registry.promote(name, version)
    Console().print(f"{name}@{registry.CHAMPION} -> version {version}")


def register(app: typer.Typer) -> None:
    app.command()(evaluate)
    app.command()(train)
    app.command()(reproduce)
    app.command()(submit)
    app.command()(study)
    app.command()(tune)
    app.add_typer(models_app, name="models")


__all__ = ["ConfigError", "register"]

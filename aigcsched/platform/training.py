"""The training loop: config -> Ray -> RLlib -> MLflow run -> evaluation -> registered model.

One loop for every problem and algorithm: `edge` (one agent, per-request metrics, evaluated on
held-out seeds), `datacenter` (one policy per provider or one shared, per-day system metrics,
evaluated on held-out days against the heuristics) and `mec` (one policy per station or one
shared, per-task delays, evaluated on held-out seeds against the heuristics); PPO, DSAC, DQN, SAC.

Checkpoints go to the run's artifacts (`checkpoints/iter_NNNNNN`, with the policy folder
inside); the tag `aigcsched.checkpoint` names the latest, so `resume` can continue the same run
after the process was killed, from anywhere that reaches the tracking store.
"""

from __future__ import annotations

import json
import numbers
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from aigcsched.algorithms.mec_heuristics import evaluate as evaluate_mec
from aigcsched.platform import multiagent_policy, registry
from aigcsched.platform.config import ConfigError, ExperimentConfig
from aigcsched.platform.datacenter_evaluation import evaluate_datacenter
from aigcsched.platform.evaluation import METRICS, evaluate_policy
from aigcsched.platform.jobs import ARTIFACT_ROOT_ENV
from aigcsched.platform.policies import mec_policy, resolve_policy
from aigcsched.platform.reports import datacenter_eval_markdown, eval_markdown, mec_eval_markdown, plot_learning_curve

CHECKPOINT_TAG = "aigcsched.checkpoint"
CONFIG_ARTIFACT = "config.yaml"
# RLlib restarts failed env runners and meanwhile returns iterations without samples; training
# gives up when none was sampled for this long (a broken env would otherwise "finish" on nothing).
STALL_S_ENV = "AIGCSCHED_STALL_S"
DEFAULT_STALL_S = 300.0


class SamplingStalled(RuntimeError):
    """No env step was sampled for too long: every env runner keeps failing."""


@dataclass
class TrainOutcome:
    run_id: str
    iterations: int
    env_steps: int
    checkpoint: str | None
    interrupted: bool = False
    evaluation: dict = field(default_factory=dict)
    model_version: str | None = None
    promoted: bool = False
    promotion_reason: str = ""


REQUEST_KEYS = ("request_reward", "request_quality", "request_tardiness", "request_late_fraction")
DAY_KEYS = tuple(f"episode_{k}" for k in ("utility", "energy_cost", "violation_rate", "renewable_share", "handed_over"))
MEC_KEYS = ("episode_mean_delay", "episode_mean_parts")
# Learner results worth a curve: PPO's, SAC's / DQN's, and the reward model's (reward shaping).
LEARNER_KEYS = (
    *("policy_loss", "vf_loss", "entropy", "mean_kl_loss", "qf_loss", "alpha_value", "alpha_loss"),
    *("reward_model_loss", "shaping_bonus_mean", "r_hat_target_corr", "labelled_rows", "shaping_active"),
)
# Env-runner results: the return of the reward the policy learns from (sparse, dense, ...).
RETURN_KEY = "episode_return_mean"


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _iteration_metrics(result: dict, seconds: float, steps_before: int) -> dict:
    runners = result.get("env_runners", {})
    steps = int(runners.get("num_env_steps_sampled_lifetime", result.get("num_env_steps_sampled_lifetime", 0)))
    metrics = {"env_steps": steps, "env_steps_per_s": (steps - steps_before) / max(seconds, 1e-9)}
    for key in (*REQUEST_KEYS, *DAY_KEYS, *MEC_KEYS, RETURN_KEY):
        if _is_number(runners.get(key)):
            metrics[key] = float(runners[key])
    # a single policy keeps plain `learner.*` names; several policies get `learner.<id>.*`
    learners = {
        module_id: {k: v for k, v in results.items() if k in LEARNER_KEYS}
        for module_id, results in result.get("learners", {}).items()
        if isinstance(results, dict) and module_id != "__all_modules__"
    }
    learners = {module_id: values for module_id, values in learners.items() if values}
    for module_id, values in learners.items():
        prefix = "learner." if list(learners) == ["default_policy"] else f"learner.{module_id}."
        metrics.update({f"{prefix}{k}": float(v) for k, v in values.items() if _is_number(v)})
    return metrics


def _progress_info(exp: ExperimentConfig, metrics: dict) -> str:
    nan = float("nan")
    if exp.env.id == "mec":
        return (
            f"delay/task {metrics.get('episode_mean_delay', nan):.3f}s  "
            f"parts {metrics.get('episode_mean_parts', nan):.2f}  return {metrics.get(RETURN_KEY, nan):,.1f}"
        )
    if exp.multi_agent:
        return (
            f"utility/day {metrics.get('episode_utility', nan):,.1f}  "
            f"energy {metrics.get('episode_energy_cost', nan):,.1f}  "
            f"violations {metrics.get('episode_violation_rate', nan):.3f}"
        )
    return (
        f"reward {metrics.get('request_reward', nan):.2f}  quality {metrics.get('request_quality', nan):.2f}  "
        f"tardiness {metrics.get('request_tardiness', nan):.2f}s"
    )


def _trained_policy(algo, exp: ExperimentConfig, info: dict | None = None):
    """The algorithm's current policy in the form evaluation and the registry take."""
    if exp.multi_agent:
        from aigcsched.platform.rllib_setup import agent_ids, policy_ids, policy_mapping

        mapping = policy_mapping(exp.algorithm.shared_policy)
        agents = {agent: mapping(agent) for agent in agent_ids(exp)}
        modules = {pid: algo.get_module(pid) for pid in policy_ids(exp)}
        ev = exp.evaluation
        return multiagent_policy.MultiAgentPolicy(modules, agents, exp.scenario(), info, ev.actions, ev.seed)
    return registry.ModulePolicy(algo.get_module(), exp.scenario(), info)


def _save_policy(algo, exp: ExperimentConfig, path: Path) -> None:
    if exp.multi_agent:
        multiagent_policy.save_policy(_trained_policy(algo, exp), path)
    else:
        registry.save_policy(algo.get_module(), exp.scenario(), path)


def _save_checkpoint(algo, exp: ExperimentConfig, iteration: int) -> str:
    """Algorithm checkpoint plus a standalone policy folder, logged as run artifacts."""
    artifact_path = f"checkpoints/iter_{iteration:06d}"
    with tempfile.TemporaryDirectory() as tmp:
        algo.save_to_path(tmp)
        _save_policy(algo, exp, Path(tmp) / "policy")
        mlflow.log_artifacts(tmp, artifact_path)
    mlflow.set_tag(CHECKPOINT_TAG, artifact_path)
    return artifact_path


def _start_ray(exp: ExperimentConfig, address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")  # set inside a Ray job
    if address:
        ray.init(address=address)
    else:
        # address='local': never join another cluster this machine happens to run.
        ray.init(address="local", num_cpus=exp.resources.num_cpus, include_dashboard=False)


def _leave_job_working_dir() -> None:
    """A Ray job driver runs in the job's working_dir, whose files Ray replaces while the job runs
    (ray-project/ray#49313), leaving the process in a deleted directory. The config is read by
    now, so continue from the home directory (relative MLflow paths then land there too)."""
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ:
        os.chdir(os.path.expanduser("~"))


def _use_experiment(name: str) -> None:
    """Like mlflow.set_experiment, but a new experiment keeps its artifacts where the submitter
    said (a Ray job's working directory is temporary)."""
    root = os.environ.get(ARTIFACT_ROOT_ENV)
    if root and mlflow.get_experiment_by_name(name) is None:
        try:
            mlflow.create_experiment(name, artifact_location=f"{root}/{name}")
        except mlflow.exceptions.MlflowException:
            pass  # created concurrently by another job
    mlflow.set_experiment(name)


def _env_runner_nodes(algo) -> list[str]:
    """Ray node ids of the remote env runners (the driver's own when there are none)."""
    import ray

    group = algo.env_runner_group
    if group.num_remote_env_runners() == 0:
        return [ray.get_runtime_context().get_node_id()]
    return sorted(
        set(group.foreach_env_runner(lambda r: ray.get_runtime_context().get_node_id(), local_env_runner=False))
    )


def _done(exp: ExperimentConfig, iteration: int, steps: int, started: float) -> bool:
    s = exp.stop
    return (
        (s.iterations is not None and iteration >= s.iterations)
        or (s.env_steps is not None and steps >= s.env_steps)
        or (s.minutes is not None and time.time() - started >= 60 * s.minutes)
    )


def train(
    exp: ExperimentConfig,
    *,
    address: str | None = None,
    resume_run_id: str | None = None,
    console: Console | None = None,
    run_name: str | None = None,
    tags: dict | None = None,
) -> TrainOutcome:
    """Train until a stop criterion, Ctrl-C, or an error; then evaluate, register, maybe promote."""
    from aigcsched.platform.rllib_setup import algorithm_config

    console = console or Console(stderr=True)
    _leave_job_working_dir()
    _start_ray(exp, address)
    _use_experiment(exp.tracking.experiment)
    resume_from = _checkpoint_of(resume_run_id) if resume_run_id else None
    with mlflow.start_run(run_id=resume_run_id, run_name=run_name, tags=tags) as run:
        run_id = run.info.run_id
        if resume_run_id is None:
            mlflow.log_params(exp.flat())
            mlflow.log_text(yaml.safe_dump(exp.model_dump(mode="json"), sort_keys=False), CONFIG_ARTIFACT)
        algo = algorithm_config(exp).build_algo()
        mlflow.set_tag("aigcsched.env_runner_nodes", ",".join(_env_runner_nodes(algo)))
        try:
            if resume_from:
                algo.restore_from_path(resume_from)
                console.print(f"resumed run {run_id} from {resume_from} at iteration {algo.iteration}")
            outcome = _loop(algo, exp, run_id, console)
            plot_and_log_curve(run_id, exp)
            if not outcome.interrupted:
                _evaluate_and_register(algo, exp, outcome, console)
        finally:
            algo.stop()
    return outcome


def _checkpoint_of(run_id: str) -> str:
    try:
        run = mlflow.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise ConfigError(f"no MLflow run {run_id} in {mlflow.get_tracking_uri()}") from None
    artifact = run.data.tags.get(CHECKPOINT_TAG)
    if not artifact:
        raise ConfigError(f"run {run_id} has no checkpoint to resume from")
    return mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact)


def _loop(algo, exp: ExperimentConfig, run_id: str, console: Console) -> TrainOutcome:
    started = time.time()
    outcome = TrainOutcome(run_id=run_id, iterations=algo.iteration, env_steps=0, checkpoint=None)
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    ]
    total = exp.stop.iterations
    stall_s, sampled_at = float(os.environ.get(STALL_S_ENV, DEFAULT_STALL_S)), time.time()
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"training {run_id[:8]}", total=total, completed=algo.iteration, info="")
        try:
            while not _done(exp, algo.iteration, outcome.env_steps, started):
                t0 = time.time()
                result = algo.train()
                metrics = _iteration_metrics(result, time.time() - t0, outcome.env_steps)
                if metrics["env_steps"] > outcome.env_steps:
                    sampled_at = time.time()
                elif time.time() - sampled_at > stall_s:
                    raise SamplingStalled(
                        f"no env step sampled for {stall_s:g} s: every env runner keeps failing (see their errors "
                        f"above); {STALL_S_ENV} sets how long to wait"
                    )
                outcome.iterations, outcome.env_steps = algo.iteration, int(metrics["env_steps"])
                mlflow.log_metrics(metrics, step=algo.iteration)
                info = (
                    f"iter {algo.iteration}  steps {outcome.env_steps:,}  {metrics['env_steps_per_s']:,.0f}/s  "
                    + _progress_info(exp, metrics)
                )
                progress.update(task, completed=algo.iteration, info=info)
                if algo.iteration % exp.tracking.checkpoint_every == 0:
                    outcome.checkpoint = _save_checkpoint(algo, exp, algo.iteration)
        except KeyboardInterrupt:
            outcome.interrupted = True
            console.print("interrupted: saving a final checkpoint")
    if outcome.checkpoint != f"checkpoints/iter_{algo.iteration:06d}":
        outcome.checkpoint = _save_checkpoint(algo, exp, algo.iteration)
    if outcome.interrupted:
        mlflow.set_tag("aigcsched.stopped_by", "interrupt")
        console.print(f"stopped at iteration {algo.iteration}; continue with: aigcsched train CONFIG --resume {run_id}")
    return outcome


def plot_and_log_curve(run_id: str, exp: ExperimentConfig | None = None) -> None:
    client = mlflow.MlflowClient()
    if exp is not None and exp.env.id == "mec":
        keys, labels = ("episode_mean_delay",), {"ylabel": "seconds per task", "title": "mec: mean offloading delay"}
    elif exp is not None and exp.multi_agent:
        keys, labels = ("episode_utility",), {"ylabel": "USD per day, all providers", "title": "datacenter: utility"}
    else:
        keys, labels = ("request_reward", "request_quality"), {}
    history = {k: client.get_metric_history(run_id, k) for k in keys}
    with tempfile.TemporaryDirectory() as tmp:
        png = plot_learning_curve(history, Path(tmp) / "learning_curve.png", **labels)
        if png is not None:
            mlflow.log_artifact(str(png))


def _evaluate_and_register(algo, exp: ExperimentConfig, outcome: TrainOutcome, console: Console) -> None:
    if exp.multi_agent:
        _evaluate_and_register_multi_agent(algo, exp, outcome, console)
        return
    cfg, ev = exp.scenario(), exp.evaluation
    policy = registry.ModulePolicy(algo.get_module(), cfg, {"uri": f"run:{outcome.run_id}"})
    results = held_out_results(exp, policy)
    outcome.evaluation = results
    mlflow.log_metrics({f"eval.{p}.{m}": v for p, r in results.items() for m, v in r.items()})
    mlflow.log_text(json.dumps(results, indent=2), "evaluation.json")
    mlflow.log_text(eval_markdown(results, f"held-out seeds {ev.seed}..{ev.seed + ev.episodes - 1}"), "evaluation.md")
    if not exp.tracking.register_model:
        return
    name = exp.tracking.model_name
    with tempfile.TemporaryDirectory() as tmp:
        registry.save_policy(algo.get_module(), cfg, tmp)
        info = registry.log_policy_model(tmp, cfg, name)
    version = str(info.registered_model_version)
    outcome.model_version = version
    client = mlflow.MlflowClient()
    client.set_model_version_tag(name, version, "eval_reward", f"{results['trained']['reward']:.4f}")
    client.set_model_version_tag(name, version, "eval_seeds", f"{ev.seed}+{ev.episodes}")
    outcome.promoted, outcome.promotion_reason = _maybe_promote(name, version, results["trained"], exp)
    mlflow.set_tag("aigcsched.model_version", version)
    console.print(f"registered {name} version {version}; {outcome.promotion_reason}")


# The figure a policy is judged by on held-out episodes: (metric, +1 if higher is better), and the
# per-iteration metric of the episodes sampled in training that shows the same.
SCORES = {"edge": ("reward", 1.0), "datacenter": ("utility", 1.0), "mec": ("mean_delay", -1.0)}
CURVES = {"edge": "request_reward", "datacenter": "episode_utility", "mec": "episode_mean_delay"}


def held_out_results(exp: ExperimentConfig, trained=None) -> dict[str, dict[str, float]]:
    """Means over the experiment's held-out episodes (datacenter: held-out days) of its baselines
    and, when given, of the trained policy (named "trained"), for any problem."""
    cfg, ev = exp.evaluation_scenario(), exp.evaluation
    policies = {b: resolve_policy(b, cfg, seed=ev.seed) for b in ev.baselines}
    if trained is not None:
        policies = {"trained": mec_policy(trained) if exp.env.id == "mec" else trained} | policies
    if exp.env.id == "mec":
        return {name: evaluate_mec(p, cfg, ev.episodes, ev.seed) for name, p in policies.items()}
    if exp.env.id == "datacenter":
        return {name: evaluate_datacenter(p, cfg, ev.episodes, ev.seed) for name, p in policies.items()}
    return {name: evaluate_policy(p, cfg, ev.episodes, ev.seed).means() for name, p in policies.items()}


def _evaluate_and_register_multi_agent(algo, exp: ExperimentConfig, outcome: TrainOutcome, console: Console) -> None:
    """Trained policy and baselines on held-out episodes (datacenter: held-out days); register the
    policy; the champion moves when the new version's held-out score beats the champion's on the
    same episodes."""
    ev = exp.evaluation
    key, sign = SCORES[exp.env.id]
    policy = _trained_policy(algo, exp, {"uri": f"run:{outcome.run_id}"})
    results = held_out_results(exp, policy)
    outcome.evaluation = results
    metrics = {f"eval.{p}.{m}": v for p, r in results.items() for m, v in r.items()}
    if ev.baselines:
        best = max(ev.baselines, key=lambda b: sign * results[b][key])
        # relative to the best baseline's magnitude (utility can be negative); > 0 is better
        gain = sign * (results["trained"][key] - results[best][key]) / abs(results[best][key])
        metrics["eval.gain_vs_best_baseline"] = gain
        mlflow.set_tag("aigcsched.best_baseline", best)
        trained, reference = results["trained"][key], results[best][key]
        console.print(f"held-out: trained {key} {trained:,.3f}, best heuristic ({best}) {reference:,.3f}: {gain:+.1%}")
    mlflow.log_metrics(metrics)
    mlflow.log_text(json.dumps(results, indent=2), "evaluation.json")
    caption = f"{ev.episodes} held-out episodes (seeds {ev.seed}..{ev.seed + ev.episodes - 1})"
    markdown = mec_eval_markdown if exp.env.id == "mec" else datacenter_eval_markdown
    mlflow.log_text(markdown(results, caption), "evaluation.md")
    if not exp.tracking.register_model:
        return
    name = exp.tracking.model_name
    with tempfile.TemporaryDirectory() as tmp:
        multiagent_policy.save_policy(policy, tmp)
        info = multiagent_policy.log_policy_model(tmp, exp.scenario(), name)
    version = str(info.registered_model_version)
    outcome.model_version = version
    client = mlflow.MlflowClient()
    score = results["trained"][key]
    client.set_model_version_tag(name, version, f"eval_{key}", f"{score:.4f}")
    client.set_model_version_tag(name, version, "eval_seeds", f"{ev.seed}+{ev.episodes}")
    current = registry.champion_version(name)
    old = None if current is None else current.tags.get(f"eval_{key}")
    if current is not None and current.tags.get("eval_seeds") != f"{ev.seed}+{ev.episodes}":
        outcome.promotion_reason = f"{registry.CHAMPION} stays at version {current.version}: evaluated elsewhere"
    elif old is None or sign * score > sign * float(old):
        registry.promote(name, version)
        outcome.promoted = True
        outcome.promotion_reason = f"promoted to {registry.CHAMPION}" + (
            " (there was none)" if old is None else f": {key} {score:.3f} vs {float(old):.3f}"
        )
    else:
        outcome.promotion_reason = f"{registry.CHAMPION} stays at version {current.version}: {key} {score:.3f}"
    mlflow.set_tag("aigcsched.model_version", version)
    console.print(f"registered {name} version {version}; {outcome.promotion_reason}")


def _maybe_promote(name: str, version: str, new: dict, exp: ExperimentConfig) -> tuple[bool, str]:
    """Champion moves only when the new version beats it on the same evaluation."""
    current = registry.champion_version(name)
    if current is None:
        registry.promote(name, version)
        return True, f"promoted to {registry.CHAMPION} (there was none)"
    cfg, ev = exp.scenario(), exp.evaluation
    champion = registry.load_policy(f"models:/{name}/{current.version}")
    try:
        champion.check_fits(cfg)
    except ConfigError as e:
        return False, f"{registry.CHAMPION} stays at version {current.version}: cannot compare ({e})"
    old = evaluate_policy(champion, cfg, ev.episodes, ev.seed).means()
    if new["reward"] > old["reward"]:
        registry.promote(name, version)
        return (
            True,
            f"promoted to {registry.CHAMPION}: reward {new['reward']:.3f} > {old['reward']:.3f} (v{current.version})",
        )
    return False, (
        f"{registry.CHAMPION} stays at version {current.version}: reward {new['reward']:.3f} <= {old['reward']:.3f}"
    )


__all__ = ["METRICS", "TrainOutcome", "train"]

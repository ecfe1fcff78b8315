"""The training loop: config -> Ray -> RLlib -> MLflow run -> held-out evaluation -> registered model.

One loop for every problem and algorithm; what is problem-specific comes from the problem's
descriptor, what goes to MLflow from `tracking`, the evaluation and the champion rule from
`promotion`. Checkpoints go to the run's artifacts (`checkpoints/iter_NNNNNN`, with the policy
folder inside); the tag `aigcsched.checkpoint` names the latest, so `resume` can continue the
same run after the process was killed, from anywhere that reaches the tracking store.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mlflow
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from aigcsched.platform import tracking
from aigcsched.platform.config import ExperimentConfig

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
    selected_iteration: int | None = None  # evaluation.select: best: the iteration whose policy was kept
    selected_policy: Any = None


class BestPolicy:
    """`evaluation.select: best`: scores the algorithm's current policy on the validation episodes
    (training scenario, their own seeds) and keeps a copy of the best one so far."""

    def __init__(self, exp: ExperimentConfig):
        self.exp, self.cfg = exp, exp.scenario()
        self.score, self.iteration, self.policy = None, None, None

    def check(self, algo, iteration: int) -> float:
        exp, problem = self.exp, self.exp.problem
        policy = tracking.trained_policy(algo, exp)
        ev = exp.evaluation
        score = problem.evaluate(problem.bind(policy), self.cfg, ev.validation_episodes, ev.validation_seed)
        score = score[problem.score.metric]
        if self.score is None or problem.score.better(score, self.score):
            policy.modules = copy.deepcopy(policy.modules)  # the live modules keep training
            self.score, self.iteration, self.policy = score, iteration, policy
        mlflow.log_metric(f"validation.{problem.score.metric}", score, step=iteration)
        return score


def start_ray(exp: ExperimentConfig, address: str | None) -> None:
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")  # set inside a Ray job
    if address:
        ray.init(address=address)
    else:
        # address='local': never join another cluster this machine happens to run.
        ray.init(address="local", num_cpus=exp.resources.num_cpus, include_dashboard=False)


def leave_job_working_dir() -> None:
    """A Ray job driver runs in the job's working_dir, whose files Ray replaces while the job runs
    (ray-project/ray#49313), leaving the process in a deleted directory. The config is read by
    now, so continue from the home directory (relative MLflow paths then land there too)."""
    if "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ:
        os.chdir(os.path.expanduser("~"))


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
    on_iteration: Callable[[dict], None] | None = None,
) -> TrainOutcome:
    """Train until a stop criterion, Ctrl-C, or an error; then evaluate, register, maybe promote.
    `on_iteration` gets each iteration's logged metrics (a Tune trial reports them to Tune)."""
    from aigcsched.platform.rllib_setup import algorithm_config

    console = console or Console(stderr=True)
    leave_job_working_dir()
    start_ray(exp, address)
    tracking.use_experiment(exp.tracking.experiment)
    resume_from = tracking.checkpoint_of(resume_run_id) if resume_run_id else None
    initial = initial_policy(exp) if exp.algorithm.init_policy and not resume_from else None
    with mlflow.start_run(run_id=resume_run_id, run_name=run_name, tags=tags) as run:
        run_id = run.info.run_id
        if resume_run_id is None:
            mlflow.log_params(exp.flat())
            mlflow.log_text(yaml.safe_dump(exp.model_dump(mode="json"), sort_keys=False), tracking.CONFIG_ARTIFACT)
        algo = algorithm_config(exp).build_algo()
        mlflow.set_tag("aigcsched.env_runner_nodes", ",".join(_env_runner_nodes(algo)))
        try:
            if resume_from:
                algo.restore_from_path(resume_from)
                console.print(f"resumed run {run_id} from {resume_from} at iteration {algo.iteration}")
            elif initial is not None:
                start_from_policy(algo, initial)
                console.print(f"started from the policy {exp.algorithm.init_policy}")
            outcome = _loop(algo, exp, run_id, console, on_iteration)
            tracking.plot_and_log_curve(run_id, exp)
            if not outcome.interrupted:
                _evaluate_and_register(algo, exp, outcome, console)
        except SystemExit:  # Tune stops a trial (ASHA) by exiting from its report: not a failure
            # (its sweep tags why: a tag written here too would race the driver's on the same key)
            mlflow.end_run("KILLED")
            raise
        finally:
            algo.stop()
    return outcome


def initial_policy(exp: ExperimentConfig):
    """`algorithm.init_policy`, loaded and checked against the config before a run starts:
    ConfigError if it is missing, another scenario's, or maps agents to other modules."""
    from aigcsched.platform.errors import ConfigError
    from aigcsched.platform.policies import load_trained
    from aigcsched.platform.rllib_setup import agent_modules

    name, mapping = exp.algorithm.init_policy, agent_modules(exp)
    policy = load_trained(name, exp.scenario())
    if policy.agent_module != mapping:
        raise ConfigError(f"init_policy {name} maps agents to {policy.agent_module}, the config to {mapping}")
    return policy


def start_from_policy(algo, policy) -> None:
    """The policy's module weights replace the algorithm's (RLlib restores each module checkpoint
    into the learner and syncs the env runners). ConfigError if a module differs from the config's."""
    import tempfile
    from pathlib import Path

    from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_LEARNER_GROUP, COMPONENT_RL_MODULE

    from aigcsched.platform.errors import ConfigError

    with tempfile.TemporaryDirectory() as tmp:
        for module_id, module in policy.modules.items():
            saved, new = module.state_dict(), algo.get_module(module_id).state_dict()
            # the acting part must load whole: RLlib's restore skips keys it does not know
            differ = [k for k, v in new.items() if k not in saved or saved[k].shape != v.shape]
            if differ:
                raise ConfigError(
                    f"init_policy {policy.describe()}: module {module_id} is not the config's "
                    f"(differs in {', '.join(differ[:4])})"
                )
            path = Path(tmp) / module_id
            module.save_to_path(str(path))
            component = f"{COMPONENT_LEARNER_GROUP}/{COMPONENT_LEARNER}/{COMPONENT_RL_MODULE}/{module_id}"
            algo.restore_from_path(str(path), component=component)


def _loop(algo, exp: ExperimentConfig, run_id: str, console: Console, on_iteration=None) -> TrainOutcome:
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
    best = BestPolicy(exp) if exp.evaluation.select == "best" else None
    if best is not None:
        best.check(algo, algo.iteration)  # where training starts (a resumed run: where it was left)
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(f"training {run_id[:8]}", total=total, completed=algo.iteration, info="")
        try:
            while not _done(exp, algo.iteration, outcome.env_steps, started):
                t0 = time.time()
                result = algo.train()
                metrics = tracking.iteration_metrics(exp, result, time.time() - t0, outcome.env_steps)
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
                    + exp.problem.progress(metrics)
                )
                progress.update(task, completed=algo.iteration, info=info)
                if algo.iteration % exp.tracking.checkpoint_every == 0:
                    outcome.checkpoint = tracking.save_checkpoint(algo, exp, algo.iteration)
                if best is not None and algo.iteration % exp.evaluation.validation_every == 0:
                    metrics[f"validation.{exp.problem.score.metric}"] = best.check(algo, algo.iteration)
                if on_iteration is not None:
                    on_iteration({**metrics, "iteration": algo.iteration})
        except KeyboardInterrupt:
            outcome.interrupted = True
            console.print("interrupted: saving a final checkpoint")
    if outcome.checkpoint != f"checkpoints/iter_{algo.iteration:06d}":
        outcome.checkpoint = tracking.save_checkpoint(algo, exp, algo.iteration)
    if best is not None and not outcome.interrupted:
        if algo.iteration % exp.evaluation.validation_every:
            best.check(algo, algo.iteration)  # the last policy is a candidate too
        outcome.selected_iteration, outcome.selected_policy = best.iteration, best.policy
        mlflow.set_tag("aigcsched.selected_iteration", str(best.iteration))
        tracking.save_selected_policy(best.policy)
        console.print(
            f"selected the policy of iteration {best.iteration} (validation {exp.problem.score.metric} "
            f"{best.score:,.3f} on {exp.evaluation.validation_episodes} episodes)"
        )
    if outcome.interrupted:
        mlflow.set_tag("aigcsched.stopped_by", "interrupt")
        console.print(f"stopped at iteration {algo.iteration}; continue with: aigcsched train CONFIG --resume {run_id}")
    return outcome


def _evaluate_and_register(algo, exp: ExperimentConfig, outcome: TrainOutcome, console: Console) -> None:
    from aigcsched.platform.promotion import evaluate_and_register

    policy = outcome.selected_policy or tracking.trained_policy(algo, exp)
    policy.info = {**policy.info, "uri": f"run:{outcome.run_id}"}
    done = evaluate_and_register(policy, exp, console)
    outcome.evaluation, outcome.model_version = done["results"], done["version"]
    outcome.promoted, outcome.promotion_reason = done["promoted"], done["reason"]


__all__ = ["TrainOutcome", "train"]

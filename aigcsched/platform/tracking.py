"""What a training run writes to MLflow: its experiment, per-iteration metrics, checkpoints with
a policy folder inside, and the learning curve."""

from __future__ import annotations

import numbers
import os
import tempfile
from pathlib import Path

import mlflow

from aigcsched.platform.config import ConfigError, ExperimentConfig
from aigcsched.platform.jobs import ARTIFACT_ROOT_ENV
from aigcsched.platform.reports import plot_learning_curve

CHECKPOINT_TAG = "aigcsched.checkpoint"
CONFIG_ARTIFACT = "config.yaml"
# Learner results worth a curve: PPO's, SAC's / DQN's, and the reward model's (reward shaping).
LEARNER_KEYS = (
    *("policy_loss", "vf_loss", "entropy", "mean_kl_loss", "qf_loss", "alpha_value", "alpha_loss"),
    *("reward_model_loss", "shaping_bonus_mean", "r_hat_target_corr", "labelled_rows", "shaping_active"),
    *("decomposition_loss", "decomposition_train_loss", "held_out_return_corr", "r_hat_episode_spread"),
)
# Env-runner results: the return of the reward the policy learns from (sparse, dense, ...).
RETURN_KEY = "episode_return_mean"


def use_experiment(name: str) -> None:
    """Like mlflow.set_experiment, but a new experiment keeps its artifacts where the submitter
    said (a Ray job's working directory is temporary)."""
    root = os.environ.get(ARTIFACT_ROOT_ENV)
    if root and mlflow.get_experiment_by_name(name) is None:
        try:
            mlflow.create_experiment(name, artifact_location=f"{root}/{name}")
        except mlflow.exceptions.MlflowException:
            pass  # created concurrently by another job
    mlflow.set_experiment(name)


def open_store_meanwhile(tracking_uri: str):
    """Open the tracking store once, in a Ray task on this driver's node (where a local store's path
    means the same) while the driver goes on: a new SQL store creates its tables there (seconds of
    schema migrations). Returns the task's reference to wait for."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    def open_store(uri: str) -> None:  # sent by value: the task imports MLflow alone
        import mlflow

        mlflow.MlflowClient(uri).search_experiments(max_results=1)

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return ray.remote(open_store).options(num_cpus=0, max_retries=0, scheduling_strategy=here).remote(tracking_uri)


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def iteration_metrics(exp: ExperimentConfig, result: dict, seconds: float, steps_before: int) -> dict:
    """The metrics of one `algo.train()` result worth logging: env steps and their rate, the
    problem's own env-runner metrics, the return, and the learners' losses."""
    from ray.rllib.core import DEFAULT_MODULE_ID  # here: RLlib imports torch; a study connects to Ray first

    runners = result.get("env_runners", {})
    steps = int(runners.get("num_env_steps_sampled_lifetime", result.get("num_env_steps_sampled_lifetime", 0)))
    steps //= exp.slots_per_env_step  # the agent-slots sampler counts agent steps
    metrics = {"env_steps": steps, "env_steps_per_s": (steps - steps_before) / max(seconds, 1e-9)}
    for key in (*exp.problem.iteration_metrics, RETURN_KEY):
        if _is_number(runners.get(key)):
            metrics[key] = float(runners[key])
    # RLlib's single module keeps plain `learner.*` names; other modules get `learner.<id>.*`
    learners = {
        module_id: {k: v for k, v in results.items() if k in LEARNER_KEYS}
        for module_id, results in result.get("learners", {}).items()
        if isinstance(results, dict) and module_id != "__all_modules__"
    }
    learners = {module_id: values for module_id, values in learners.items() if values}
    for module_id, values in learners.items():
        prefix = "learner." if module_id == DEFAULT_MODULE_ID else f"learner.{module_id}."
        metrics.update({f"{prefix}{k}": float(v) for k, v in values.items() if _is_number(v)})
    return metrics


def trained_policy(algo, exp: ExperimentConfig, info: dict | None = None):
    """The algorithm's current policy as a `TrainedPolicy`."""
    from aigcsched.platform.rllib_setup import agent_modules
    from aigcsched.platform.trained_policy import TrainedPolicy

    agents = agent_modules(exp)
    modules = {module_id: algo.get_module(module_id) for module_id in dict.fromkeys(agents.values())}
    ev = exp.evaluation
    return TrainedPolicy(modules, agents, exp.scenario(), info, ev.actions, ev.seed)


def save_checkpoint(algo, exp: ExperimentConfig, iteration: int) -> str:
    """Algorithm checkpoint plus a standalone policy folder, logged as run artifacts."""
    from aigcsched.platform.trained_policy import save_policy

    artifact_path = f"checkpoints/iter_{iteration:06d}"
    with tempfile.TemporaryDirectory() as tmp:
        algo.save_to_path(tmp)
        save_policy(trained_policy(algo, exp), Path(tmp) / "policy")
        mlflow.log_artifacts(tmp, artifact_path)
    mlflow.set_tag(CHECKPOINT_TAG, artifact_path)
    return artifact_path


SELECTED_POLICY = "selected_policy"  # run artifact: the policy `evaluation.select: best` kept


def save_selected_policy(policy) -> None:
    """The kept policy as a policy folder in the active run (the checkpoints hold the last one)."""
    from aigcsched.platform.trained_policy import save_policy

    with tempfile.TemporaryDirectory() as tmp:
        save_policy(policy, tmp)
        mlflow.log_artifacts(tmp, SELECTED_POLICY)


def _run(run_id: str):
    try:
        return mlflow.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise ConfigError(f"no MLflow run {run_id} in {mlflow.get_tracking_uri()}") from None


def run_policy_dir(run_id: str) -> str:
    """A run's policy folder, downloaded: the one `evaluation.select: best` kept, else its latest checkpoint's."""
    run = _run(run_id)
    if any(a.path == SELECTED_POLICY for a in mlflow.MlflowClient().list_artifacts(run_id)):
        return mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=SELECTED_POLICY)
    artifact = run.data.tags.get(CHECKPOINT_TAG)
    if not artifact:
        raise ConfigError(f"run {run_id} has no policy: no checkpoint and no selected policy")
    return mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=f"{artifact}/policy")


def checkpoint_of(run_id: str) -> str:
    """The latest checkpoint of a run, downloaded (to resume it)."""
    run = _run(run_id)
    artifact = run.data.tags.get(CHECKPOINT_TAG)
    if not artifact:
        raise ConfigError(f"run {run_id} has no checkpoint to resume from")
    return mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact)


def plot_and_log_curve(run_id: str, exp: ExperimentConfig) -> None:
    """The run's learning curve (the problem's curve metric per iteration) as a PNG artifact."""
    problem = exp.problem
    client = mlflow.MlflowClient()
    history = {key: client.get_metric_history(run_id, key) for key in problem.plotted or (problem.curve,)}
    with tempfile.TemporaryDirectory() as tmp:
        png = plot_learning_curve(
            history,
            Path(tmp) / "learning_curve.png",
            ylabel=problem.curve_label,
            title=f"{problem.name}: learning curve",
        )
        if png is not None:
            mlflow.log_artifact(str(png))

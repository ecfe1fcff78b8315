"""A real (tiny) training through RLlib, MLflow tracking and the registry."""

from pathlib import Path

import mlflow
import numpy as np
import pytest

from aigcsched.envs import EdgeConfig, EdgeEnv
from aigcsched.platform import registry
from aigcsched.platform.config import ConfigError, load_experiment
from aigcsched.platform.policies import resolve_policy
from aigcsched.platform.problems.edge import evaluate_policy
from aigcsched.platform.promotion import maybe_promote
from aigcsched.platform.tracking import CHECKPOINT_TAG
from aigcsched.platform.training import train

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "edge_ppo.yaml")

TINY = {
    "env.config.n_requests": 64,
    "resources.num_envs_per_env_runner": 4,
    "algorithm.train_batch_size": 256,
    "algorithm.minibatch_size": 128,
    "algorithm.num_epochs": 1,
    "algorithm.hidden": 16,
    "evaluation.episodes": 2,
    "tracking.checkpoint_every": 1,
    "tracking.model_name": "edge-test",
    "tracking.experiment": "edge-test",
}


@pytest.fixture(scope="module")
def first_run(store):
    exp = load_experiment(CONFIG, {**TINY, "stop": {"iterations": 2}})
    outcome = train(exp)
    REGISTERED_TAGS.update(mlflow.MlflowClient().get_model_version("edge-test", outcome.model_version).tags)
    # Two tiny iterations do not beat myopic, so training did not promote; the tests below serve
    # and compare the champion, set by hand as a user would (`aigcsched models promote`).
    if not outcome.promoted:
        registry.promote("edge-test", outcome.model_version)
    return exp, outcome


REGISTERED_TAGS: dict[str, str] = {}  # version 1's tags as training left them


def test_training_logs_metrics_checkpoints_and_registers(first_run):
    exp, outcome = first_run
    assert outcome.iterations == 2 and outcome.env_steps >= 2 * 256
    run = mlflow.get_run(outcome.run_id)
    assert run.data.params["algorithm.lr"] == str(exp.algorithm.lr)
    history = mlflow.MlflowClient().get_metric_history(outcome.run_id, "request_reward")
    assert [m.step for m in history] == [1, 2] and all(0 < m.value < 70 for m in history)
    assert run.data.tags[CHECKPOINT_TAG] == "checkpoints/iter_000002"
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(outcome.run_id)}
    assert {
        "config.yaml",
        "evaluation.json",
        "evaluation.md",
        "learning_curve.png",
        "checkpoints",
    } <= artifacts
    assert set(outcome.evaluation) == {"trained", "greedy", "myopic"}
    # Registered, but promoted only if it beat the best baseline on the same held-out episodes.
    trained = outcome.evaluation["trained"]["reward"]
    best = max(outcome.evaluation[b]["reward"] for b in ("greedy", "myopic"))
    assert outcome.model_version == "1" and outcome.promoted == (trained > best)
    if not outcome.promoted:
        assert "does not beat the best baseline (myopic)" in outcome.promotion_reason
        assert REGISTERED_TAGS["promotion"] == outcome.promotion_reason
        # promoted by hand in the fixture: the reason it was not is gone
        assert "promotion" not in mlflow.MlflowClient().get_model_version("edge-test", "1").tags


def test_registered_pyfunc_loads_and_returns_valid_actions(first_run):
    exp, _ = first_run
    model = mlflow.pyfunc.load_model("models:/edge-test@champion")
    env = EdgeEnv(exp.scenario())
    obs = np.stack([env.reset(seed=s)[0] for s in range(5)])[:, None]  # (n, 1 agent, obs_size)
    out = model.predict(obs)
    assert out.shape == (5, 1, 2)  # the env's actions: (server, steps - 1)
    assert np.all((out[..., 0] >= 0) & (out[..., 0] < 10)) and np.all((out[..., 1] >= 0) & (out[..., 1] < 200))
    assert model.metadata.get_input_schema().inputs[0].shape == (-1, 1, exp.scenario().obs_size)
    tags = mlflow.MlflowClient().get_model_version("edge-test", "1").tags
    assert tags["problem"] == "edge" and tags["eval_metric"] == "reward" and float(tags["eval_score"]) > 0


def test_registered_policy_in_evaluate_and_scenario_mismatch(first_run):
    exp, outcome = first_run
    policy = resolve_policy("models:/edge-test@champion", exp.scenario())
    assert policy.info["version"] == "1" and policy.info["run_id"] == outcome.run_id
    # It also runs on a scenario without capabilities in the observation: it builds its own.
    other = EdgeConfig(n_requests=64, mean_interarrival_s=5.0)
    result = evaluate_policy(resolve_policy("models:/edge-test/1", other), other, episodes=2, seed=7).means()
    assert 25 < result["quality"] <= 65
    with pytest.raises(ConfigError, match="takes n_servers=10, the scenario has n_servers=8"):
        resolve_policy("models:/edge-test@champion", EdgeConfig(n_servers=8, n_strong=4))
    with pytest.raises(registry.ModelNotFoundError, match="none with alias .nobody."):
        resolve_policy("models:/edge-test@nobody", exp.scenario())


def test_checkpoint_policy_matches_registered_one(first_run, tmp_path):
    exp, outcome = first_run
    path = mlflow.artifacts.download_artifacts(run_id=outcome.run_id, artifact_path="checkpoints/iter_000002")
    from_checkpoint = resolve_policy(f"checkpoint:{path}", exp.scenario())
    registered = resolve_policy("models:/edge-test/1", exp.scenario())
    env = EdgeEnv(exp.scenario())
    env.reset(seed=3)
    state = env.state()
    np.testing.assert_array_equal(from_checkpoint(None, state), registered(None, state))
    with pytest.raises(ConfigError, match="checkpoint not found"):
        resolve_policy(f"checkpoint:{tmp_path}/nothing", exp.scenario())


def test_resume_continues_the_run_and_iteration_count(first_run):
    exp, outcome = first_run
    more = load_experiment(CONFIG, {**TINY, "stop": {"iterations": 3}, "tracking.register_model": False})
    resumed = train(more, resume_run_id=outcome.run_id)
    assert resumed.run_id == outcome.run_id and resumed.iterations == 3
    assert resumed.env_steps > outcome.env_steps
    steps = [m.step for m in mlflow.MlflowClient().get_metric_history(outcome.run_id, "request_reward")]
    assert steps == [1, 2, 3]
    with pytest.raises(ConfigError, match="no MLflow run"):
        train(more, resume_run_id="0" * 32)


def test_champion_moves_only_on_improvement(first_run):
    exp, _ = first_run
    name = "edge-test"
    # A second version to compete with the champion (version 1).
    with mlflow.start_run():
        v2 = registry.log_policy_model(_policy_dir(first_run), exp.scenario(), name).registered_model_version
    assert str(registry.resolve_model_version("models:/edge-test/latest").version) == str(v2)
    champion = resolve_policy("models:/edge-test@champion", exp.scenario())
    ev = exp.evaluation
    champion_reward = evaluate_policy(champion, exp.scenario(), ev.episodes, ev.seed).means()["reward"]
    promoted, reason = maybe_promote(name, str(v2), champion_reward, exp)
    assert not promoted and "stays at version 1" in reason
    assert str(registry.champion_version(name).version) == "1"
    # beating the champion is not enough when the version loses to the best baseline
    promoted, reason = maybe_promote(name, str(v2), champion_reward + 0.01, exp, ("myopic", champion_reward + 0.02))
    assert not promoted and "does not beat the best baseline (myopic)" in reason
    assert str(registry.champion_version(name).version) == "1"
    promoted, reason = maybe_promote(name, str(v2), champion_reward + 0.01, exp, ("myopic", champion_reward + 0.01))
    assert not promoted  # a tie is not a win
    promoted, reason = maybe_promote(name, str(v2), champion_reward + 0.01, exp, ("myopic", champion_reward))
    assert promoted and str(registry.champion_version(name).version) == str(v2)
    registry.promote(name, 1)  # manual promotion back
    assert str(registry.champion_version(name).version) == "1"
    with pytest.raises(registry.ModelNotFoundError):
        registry.promote(name, 99)


def _policy_dir(first_run):
    _, outcome = first_run
    path = mlflow.artifacts.download_artifacts(run_id=outcome.run_id, artifact_path="checkpoints/iter_000002")
    return f"{path}/policy"


def test_select_best_keeps_the_policy_that_validated_best(store):
    exp = load_experiment(
        CONFIG,
        {
            **TINY,
            "stop": {"iterations": 2},
            "tracking.register_model": False,
            "evaluation.select": "best",
            "evaluation.validation_every": 1,
            "evaluation.validation_episodes": 1,
        },
    )
    outcome = train(exp)
    problem, metric = exp.problem, exp.problem.score.metric
    history = mlflow.MlflowClient().get_metric_history(outcome.run_id, f"validation.{metric}")
    scores = {m.step: m.value for m in history}
    assert sorted(scores) == [0, 1, 2]  # before training, then every iteration
    best = max(scores, key=lambda step: problem.score.sign * scores[step])
    assert outcome.selected_iteration == best
    assert mlflow.MlflowClient().get_run(outcome.run_id).data.tags["aigcsched.selected_iteration"] == str(best)
    # the kept copy is the policy as it was then, not the modules training went on changing
    ev = exp.evaluation
    kept = problem.evaluate(problem.bind(outcome.selected_policy), exp.scenario(), 1, ev.validation_seed)
    assert kept[metric] == pytest.approx(scores[best])
    # the run keeps it too: run:RUN_ID is the kept policy, not the last checkpoint's
    from_run = resolve_policy(f"run:{outcome.run_id}", exp.scenario())
    assert problem.evaluate(from_run, exp.scenario(), 1, ev.validation_seed)[metric] == pytest.approx(scores[best])
    with pytest.raises(ConfigError, match="no MLflow run nope"):
        resolve_policy("run:nope", exp.scenario())


def test_a_run_tune_stops_ends_killed_not_failed(store):
    """Tune stops a trial (ASHA) by a SystemExit from its report: the run ends KILLED, not FAILED."""
    exp = load_experiment(CONFIG, {**TINY, "stop": {"iterations": 3}, "tracking.register_model": False})
    seen = []

    def stop_after_first(metrics: dict) -> None:
        seen.append(mlflow.active_run().info.run_id)
        raise SystemExit(0)

    with pytest.raises(SystemExit):
        train(exp, on_iteration=stop_after_first)
    run = mlflow.MlflowClient().get_run(seen[0])
    assert run.info.status == "KILLED"
    assert len(seen) == 1 and mlflow.active_run() is None

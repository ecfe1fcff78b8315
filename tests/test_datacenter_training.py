"""Multi-agent training of `datacenter` through the platform: tiny real runs (RLlib, MLflow)."""

from pathlib import Path

import mlflow
import numpy as np
import pytest

from aigcsched.envs import DataCenterEnv
from aigcsched.envs.datacenter import split_days
from aigcsched.platform import registry, trained_policy
from aigcsched.platform.config import ConfigError, load_experiment
from aigcsched.platform.policies import resolve_policy
from aigcsched.platform.problems.datacenter import evaluate_datacenter
from aigcsched.platform.tracking import CHECKPOINT_TAG
from aigcsched.platform.training import train

CONFIG = str(Path(__file__).resolve().parents[1] / "configs" / "datacenter_ppo.yaml")

# Embedded typical days, 24-slot episodes (2 hours), one episode per sub-env and iteration.
TINY = {
    "env.config.data_dir": None,
    "env.config.episode_slots": 24,
    "resources.num_envs_per_env_runner": 2,
    "algorithm.train_batch_size": 48,
    "algorithm.minibatch_size": 48,
    "algorithm.num_epochs": 1,
    "algorithm.hidden": 8,
    "evaluation.episodes": 1,
    "evaluation.baselines": ["local", "combined"],
    "tracking.checkpoint_every": 1,
    "tracking.experiment": "datacenter-test",
    "tracking.model_name": "datacenter-test",
    "stop": {"iterations": 2},
}


@pytest.fixture(scope="module")
def per_asp_run(store):
    exp = load_experiment(CONFIG, TINY)
    outcome = train(exp)
    if not outcome.promoted:  # below its best baseline: promoted by hand, as a user would
        registry.promote("datacenter-test", outcome.model_version)
    return exp, outcome


def test_per_asp_policies_train_evaluate_on_held_out_days_and_register(per_asp_run):
    exp, outcome = per_asp_run
    assert outcome.iterations == 2 and outcome.env_steps >= 2 * 48
    client = mlflow.MlflowClient()
    run = client.get_run(outcome.run_id)
    m = run.data.metrics
    # one learner per provider, and the per-day system metrics of the episodes sampled
    assert {f"learner.asp_{i}.vf_loss" for i in range(3)} <= set(m)
    assert [p.step for p in client.get_metric_history(outcome.run_id, "episode_utility")] == [1, 2]
    assert 0 <= m["episode_violation_rate"] <= 1 and m["episode_energy_cost"] > 0
    assert run.data.tags[CHECKPOINT_TAG] == "checkpoints/iter_000002"
    assert set(outcome.evaluation) == {"trained", "local", "combined"}
    best = max(("local", "combined"), key=lambda b: outcome.evaluation[b]["utility"])
    assert m["eval.gain_vs_best_baseline"] == pytest.approx(m["eval.trained.utility"] / m[f"eval.{best}.utility"] - 1)
    assert mlflow.get_run(outcome.run_id).data.tags["aigcsched.best_baseline"] == best
    assert m["eval.local.utility"] == pytest.approx(outcome.evaluation["local"]["utility"])
    assert outcome.model_version == "1" and outcome.promoted == (m["eval.gain_vs_best_baseline"] > 0)


def test_registered_multi_agent_pyfunc_acts_for_every_provider(per_asp_run):
    exp, _ = per_asp_run
    model = mlflow.pyfunc.load_model("models:/datacenter-test@champion")
    env = DataCenterEnv(exp.scenario())
    obs = np.stack([np.stack(list(env.reset(seed=s)[0].values())) for s in range(4)])
    out = model.predict(obs)
    assert out.shape == (4, 3, 5)
    assert np.all(out >= 0) and np.all(out < env.action_space("asp_0").nvec)


def test_checkpoint_policy_replays_the_registered_one(per_asp_run):
    exp, outcome = per_asp_run
    path = mlflow.artifacts.download_artifacts(run_id=outcome.run_id, artifact_path="checkpoints/iter_000002")
    policy = trained_policy.load_policy_dir(path)
    assert set(policy.modules) == {"asp_0", "asp_1", "asp_2"}
    registered = mlflow.pyfunc.load_model("models:/datacenter-test/1").unwrap_python_model().policy
    env = DataCenterEnv(exp.scenario())
    obs, _ = env.reset(seed=5)
    for a, b in zip(policy(obs).values(), registered(obs).values(), strict=True):
        np.testing.assert_array_equal(a, b)
    # `evaluate datacenter --policy` takes both forms and replays training's held-out evaluation
    held_out, ev = exp.evaluation_scenario(), exp.evaluation
    for name in (f"checkpoint:{path}", "models:/datacenter-test@champion"):
        result = evaluate_datacenter(resolve_policy(name, held_out), held_out, ev.episodes, ev.seed)
        assert result["utility"] == pytest.approx(outcome.evaluation["trained"]["utility"])
    with pytest.raises(ConfigError, match="obs_size"):
        resolve_policy(f"checkpoint:{path}", held_out.model_copy(update={"agent_id_in_obs": True}))


def test_training_starts_from_a_saved_policy(per_asp_run):
    from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_RL_MODULE

    from aigcsched.platform.policies import load_trained
    from aigcsched.platform.rllib_setup import algorithm_config
    from aigcsched.platform.training import initial_policy, start_from_policy

    exp, outcome = per_asp_run
    path = mlflow.artifacts.download_artifacts(run_id=outcome.run_id, artifact_path="checkpoints/iter_000002")
    name = f"checkpoint:{path}"  # trained two iterations (the run's selected policy is its start)
    saved = load_trained(name, exp.scenario()).modules
    started = load_experiment(CONFIG, {**TINY, "algorithm.init_policy": name})
    algo = algorithm_config(started).build_algo()
    try:

        def weights(module_id):  # the env runner's module and the learner's
            path = f"{COMPONENT_LEARNER}/{COMPONENT_RL_MODULE}/{module_id}"
            learner = algo.learner_group.get_state(components=path)[COMPONENT_LEARNER][COMPONENT_RL_MODULE]
            return algo.get_module(module_id).state_dict(), learner[module_id]

        def same(got, want):
            return all(np.array_equal(np.asarray(v), want[k].numpy()) for k, v in got.items() if k.startswith("actor"))

        assert not same(weights("asp_0")[0], saved["asp_0"].state_dict())  # a fresh start is another policy
        start_from_policy(algo, initial_policy(started))
        for module_id, module in saved.items():
            for got in weights(module_id):
                assert same(got, module.state_dict())
    finally:
        algo.stop()
    wider = load_experiment(CONFIG, {**TINY, "algorithm.hidden": 16, "algorithm.init_policy": name})
    algo = algorithm_config(wider).build_algo()
    try:
        with pytest.raises(ConfigError, match="not the config's"):
            start_from_policy(algo, initial_policy(wider))
    finally:
        algo.stop()
    with pytest.raises(ConfigError, match="init_policy must start with"):
        load_experiment(CONFIG, {"algorithm.init_policy": "my_policy"})
    with pytest.raises(ConfigError, match="not found"):  # before any run starts
        initial_policy(load_experiment(CONFIG, {**TINY, "algorithm.init_policy": f"{name}-missing"}))


@pytest.mark.parametrize("sampler, module_id", [("agent_slots", "default_policy"), ("multi_agent", "shared")])
def test_shared_policy_sees_agent_ids_on_either_sampler(store, sampler, module_id):
    values = {**TINY, "algorithm.shared_policy": True, "resources.sampler": sampler, "tracking.register_model": False}
    exp = load_experiment(CONFIG, values)
    assert exp.scenario().agent_id_in_obs and exp.evaluation_scenario().day_split == "heldout"
    assert exp.agent_slots == (sampler == "agent_slots")
    outcome = train(exp)
    m = mlflow.get_run(outcome.run_id).data.metrics
    prefix = "learner." if module_id == "default_policy" else f"learner.{module_id}."
    assert f"{prefix}vf_loss" in m and not any(k.startswith("learner.asp_") for k in m)
    assert outcome.model_version is None and "eval.trained.utility" in m
    # the day's system metrics come from the env's ledger on both samplers
    assert m["episode_energy_cost"] > 0 and 0 <= m["episode_violation_rate"] <= 1
    path = mlflow.artifacts.download_artifacts(run_id=outcome.run_id, artifact_path="checkpoints/iter_000002")
    policy = trained_policy.load_policy_dir(path)
    assert set(policy.agent_module.values()) == {module_id} and policy.cfg.agent_id_in_obs


def test_held_out_days_are_disjoint_from_training_days():
    train_days, held_out = set(split_days("train").tolist()), set(split_days("heldout").tolist())
    assert not train_days & held_out and train_days | held_out == set(range(365))
    assert len(held_out) == 70 and min(held_out) < 60 and max(held_out) > 300  # spread over the year
    # the env only starts episodes on its split's days
    for split, days in (("train", train_days), ("heldout", held_out)):
        env = DataCenterEnv(episode_slots=1, day_split=split)
        assert {env.reset(seed=s) and env.day for s in range(60)} <= days


def test_datacenter_experiment_checks():
    with pytest.raises(ConfigError, match="day_split: train"):
        load_experiment(CONFIG, {"env.config.day_split": "all"})
    with pytest.raises(ConfigError, match="datacenter takes default, diffusion or mlp"):
        load_experiment(CONFIG, {"algorithm.module": "edge_scheduler"})
    with pytest.raises(ConfigError, match="unknown datacenter baseline.*greedy"):
        load_experiment(CONFIG, {"evaluation.baselines": ["local", "greedy"]})
    with pytest.raises(ConfigError, match="multi-agent envs"):
        load_experiment(None, {"algorithm.shared_policy": True, "stop": {"iterations": 1}})

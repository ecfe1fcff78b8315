"""Reward shaping through the platform's config: tiny sparse `datacenter` runs with the diffusion
reward model and with the curiosity bonus (the peer method), through `train`."""

from pathlib import Path

import mlflow
import numpy as np
import pytest

from aigcsched.platform.config import load_experiment
from aigcsched.platform.training import train

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "datacenter_ppo.yaml"
TINY = {
    "env.config.data_dir": None,
    "env.config.episode_slots": 12,
    "env.config.reward_mode": "sparse",
    "resources.num_envs_per_env_runner": 2,
    "algorithm.shared_policy": True,
    "resources.sampler": "multi_agent",  # the reward model per policy module of RLlib's multi-agent learner
    "algorithm.train_batch_size": 48,
    "algorithm.minibatch_size": 48,
    "algorithm.num_epochs": 1,
    "algorithm.hidden": 8,
    "evaluation.episodes": 1,
    "evaluation.baselines": ["local"],
    "tracking.register_model": False,
    "tracking.experiment": "shaping-test",
    "stop": {"iterations": 3},
}


@pytest.mark.parametrize(
    "kind, labels, network",
    [
        ("diffusion", "uniform", "diffusion"),
        ("diffusion_potential", "decomposition", "diffusion"),
        ("diffusion_replace", "decomposition", "mlp"),
    ],
    ids=["diffusion", "potential-decomposition", "replace-decomposition-mlp"],
)
def test_diffusion_shaping_trains_and_logs_the_reward_model(store, kind, labels, network):
    shaping = {"reward_shaping.kind": kind, "reward_shaping.steps": 2, "reward_shaping.width": 8}
    shaping |= {"reward_shaping.labels": labels, "reward_shaping.network": network, "reward_shaping.subset": 4}
    exp = load_experiment(CONFIG, {**TINY, **shaping, "reward_shaping.warmup_steps": 12})
    outcome = train(exp)
    client = mlflow.MlflowClient()
    m = client.get_run(outcome.run_id).data.metrics
    prefix = "learner._reward_model_shared."
    assert np.isfinite(m[f"{prefix}reward_model_loss"]) and np.isfinite(m["learner.shared.policy_loss"])
    # 4 episodes of 12 steps per iteration, each labelled when it ends: 3 iterations label 3 x 4 x 12 rows
    # per agent (3 providers share the policy)
    assert m[f"{prefix}labelled_rows"] == 3 * 4 * 12 * 3
    shaped = [p.value for p in client.get_metric_history(outcome.run_id, f"{prefix}shaping_active")]
    assert shaped[-1] == 1  # past the warm-up
    assert np.isfinite(m["episode_return_mean"]) and np.isfinite(m["episode_utility"])
    # the credit statistics, on the 12 provider-days finished in an iteration, and on stored subsets
    assert m[f"{prefix}r_hat_episode_spread"] >= 0 and -1 <= m[f"{prefix}held_out_return_corr"] <= 1
    assert m[f"{prefix}decomposition_loss"] >= 0
    assert (f"{prefix}decomposition_train_loss" in m) == (labels == "decomposition")


def test_curiosity_peer_method_trains(store):
    exp = load_experiment(CONFIG, {**TINY, "reward_shaping.kind": "curiosity", "reward_shaping.eta": 0.05})
    outcome = train(exp)
    m = mlflow.MlflowClient().get_run(outcome.run_id).data.metrics
    assert outcome.iterations == 3 and np.isfinite(m["learner.shared.vf_loss"])
    assert "learner._reward_model_shared.reward_model_loss" not in m


def test_diffusion_shaping_on_the_agent_slots_sampler(store):
    # one slot per (day, provider): each provider's settled utility labels its own steps
    values = {**TINY, "resources.sampler": "agent_slots", "reward_shaping.kind": "diffusion"}
    values |= {"reward_shaping.steps": 2, "reward_shaping.width": 8, "reward_shaping.warmup_steps": 12}
    outcome = train(load_experiment(CONFIG, values))
    m = mlflow.MlflowClient().get_run(outcome.run_id).data.metrics
    prefix = "learner._reward_model_default_policy."
    assert np.isfinite(m[f"{prefix}reward_model_loss"]) and np.isfinite(m["learner.policy_loss"])
    assert m[f"{prefix}labelled_rows"] == 3 * 4 * 12 * 3  # as on the multi-agent sampler
    assert m[f"{prefix}shaping_active"] == 1 and np.isfinite(m["episode_utility"])

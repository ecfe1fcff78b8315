"""`mec` through the platform: PPO with the diffusion actor and DSAC, tiny real runs (RLlib,
MLflow), the registered policy in `evaluate`, and the config checks of algorithms and modules."""

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
from cli_runner import run_cli

from aigcsched.algorithms.mec_heuristics import evaluate as evaluate_mec
from aigcsched.envs.mec import MECConfig, MECEnv
from aigcsched.platform import registry
from aigcsched.platform.config import ConfigError, load_experiment
from aigcsched.platform.policies import resolve_policy
from aigcsched.platform.training import train

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# 3 stations, 10-slot episodes: an iteration is a few episodes.
TINY = {
    "env.config.n_servers": 3,
    "env.config.episode_slots": 10,
    "resources.num_envs_per_env_runner": 2,
    "algorithm.hidden": 16,
    "algorithm.diffusion_steps": 2,
    "evaluation.episodes": 2,
    "tracking.checkpoint_every": 1,
    "tracking.experiment": "mec-test",
    "tracking.model_name": "mec-test",
    "stop": {"iterations": 2},
}
PPO = {**TINY, "algorithm.train_batch_size": 40, "algorithm.minibatch_size": 20, "algorithm.num_epochs": 1}
DSAC = {
    **TINY,
    "resources.num_envs_per_env_runner": 1,
    "algorithm.train_batch_size": 30,
    "algorithm.replay_batch_size": 16,
    "algorithm.learning_starts": 10,
    "tracking.model_name": "mec-dsac-test",
}


@pytest.fixture(scope="module")
def ppo_run(store):
    exp = load_experiment(CONFIGS / "mec_ppo.yaml", PPO)
    outcome = train(exp)
    if not outcome.promoted:  # below its best baseline: promoted by hand, as a user would
        registry.promote("mec-test", outcome.model_version)
    return exp, outcome


def test_ppo_with_the_diffusion_actor_trains_evaluates_and_registers(ppo_run):
    exp, outcome = ppo_run
    assert outcome.iterations == 2 and outcome.env_steps >= 2 * 40
    client = mlflow.MlflowClient()
    m = client.get_run(outcome.run_id).data.metrics
    # a shared policy samples on the agent-slots sampler: one RLlib module
    assert np.isfinite(m["learner.vf_loss"]) and np.isfinite(m["learner.policy_loss"])
    assert m["episode_mean_delay"] > 0 and 1 <= m["episode_mean_parts"] <= 2
    assert set(outcome.evaluation) == {"trained", "least_loaded", "smcoedge", "myopic", "anticipating_myopic"}
    trained, smcoedge = outcome.evaluation["trained"]["mean_delay"], outcome.evaluation["smcoedge"]["mean_delay"]
    assert m["eval.trained.mean_delay"] == pytest.approx(trained)
    best = min(outcome.evaluation[b]["mean_delay"] for b in exp.evaluation.baselines)
    assert (m["eval.gain_vs_best_baseline"] > 0) == (trained < best)  # lower delay is the better side
    assert smcoedge == pytest.approx(evaluate_mec("smcoedge", exp.scenario(), 2, exp.evaluation.seed)["mean_delay"])
    assert outcome.model_version == "1" and outcome.promoted == (m["eval.gain_vs_best_baseline"] > 0)
    version = client.get_model_version("mec-test", "1")
    assert version.tags["problem"] == "mec" and version.tags["eval_metric"] == "mean_delay"
    assert float(version.tags["eval_score"]) == pytest.approx(trained, abs=1e-4)


def test_registered_mec_policy_acts_like_the_trained_one(ppo_run, capsys, monkeypatch):
    exp, outcome = ppo_run
    policy = resolve_policy("models:/mec-test@champion", exp.scenario())
    again = evaluate_mec(policy, exp.scenario(), 2, exp.evaluation.seed)
    assert again["mean_delay"] == pytest.approx(outcome.evaluation["trained"]["mean_delay"])
    pyfunc = mlflow.pyfunc.load_model("models:/mec-test@champion")
    actions = pyfunc.predict(
        np.zeros((4, 3, pyfunc.metadata.signature.inputs.to_dict()[0]["tensor-spec"]["shape"][-1]), np.float32)
    )
    assert actions.shape == (4, 3) and actions.dtype == np.int64
    code, out, err = run_cli(
        capsys,
        monkeypatch,
        "evaluate",
        "mec",
        "-p",
        "models:/mec-test@champion",
        "-p",
        "smcoedge",
        "--episodes",
        "2",
        "--seed",
        str(exp.evaluation.seed),
        "--set",
        "n_servers=3",
        "--set",
        "episode_slots=10",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["models:/mec-test@champion"]["mean_delay"] == pytest.approx(again["mean_delay"])
    code, out, err = run_cli(capsys, monkeypatch, "evaluate", "mec", "-p", "models:/mec-test@champion")
    assert code == 2 and "takes n_servers=3, the scenario has n_servers=5" in err


def test_models_list_shows_the_problem_and_held_out_score_of_a_mec_model(ppo_run, capsys, monkeypatch):
    # the score column once read only edge's eval_reward tag and stayed blank for mec
    _, outcome = ppo_run
    code, out, err = run_cli(capsys, monkeypatch, "models", "list", "mec-test")
    assert code == 0, err
    row = next(line for line in out.splitlines() if "mec-test" in line and "champion" in line)
    assert "mec" in row and f"mean_delay {outcome.evaluation['trained']['mean_delay']:.4f}" in row


def test_a_champion_of_another_problem_is_never_replaced_by_comparison(ppo_run, register_policy):
    # a mec experiment registering under an edge model's name must not take its champion alias
    from aigcsched.envs import EdgeConfig
    from aigcsched.platform import registry
    from aigcsched.platform.promotion import maybe_promote

    exp, _ = ppo_run
    edge_version = register_policy("shared-name", EdgeConfig(n_servers=3, n_strong=1, observe_capabilities=True))
    registry.promote("shared-name", edge_version)
    mec_version = register_policy("shared-name", exp.scenario())
    promoted, reason = maybe_promote("shared-name", mec_version, 0.001, exp)
    assert not promoted and "cannot compare" in reason and "is one of edge, not of mec" in reason
    assert str(registry.champion_version("shared-name").version) == edge_version


def test_dsac_trains_with_finite_losses_and_registers(store):
    exp = load_experiment(CONFIGS / "mec_dsac.yaml", DSAC)
    outcome = train(exp)
    m = mlflow.MlflowClient().get_run(outcome.run_id).data.metrics
    assert outcome.iterations == 2
    for key in ("learner.qf_loss", "learner.policy_loss", "learner.alpha_value"):
        assert np.isfinite(m[key]), key
    assert outcome.model_version == "1" and outcome.evaluation["trained"]["tasks"] > 0


def test_both_samplers_train_a_shared_policy_with_the_same_metrics(store):
    keys = {}
    for sampler in ("multi_agent", "agent_slots"):
        values = {**PPO, "resources.sampler": sampler, "tracking.register_model": False, "stop": {"iterations": 1}}
        exp = load_experiment(CONFIGS / "mec_ppo.yaml", values)
        assert exp.agent_slots == (sampler == "agent_slots")
        outcome = train(exp)
        m = mlflow.MlflowClient().get_run(outcome.run_id).data.metrics
        # env steps count episode slots on both: one iteration samples the configured batch
        assert exp.algorithm.train_batch_size <= outcome.env_steps < 2 * exp.algorithm.train_batch_size
        assert m["episode_mean_delay"] > 0 and np.isfinite(m["eval.trained.mean_delay"])
        keys[sampler] = {k for k in m if k.startswith(("episode_", "eval."))}
    assert keys["multi_agent"] == keys["agent_slots"]


def test_a_central_critic_sees_the_global_state_and_the_actor_only_its_station(store):
    import torch
    from ray.rllib.core.columns import Columns

    values = {**PPO, "algorithm.central_critic": True, "tracking.register_model": False, "stop": {"iterations": 1}}
    exp = load_experiment(CONFIGS / "mec_ppo.yaml", values)
    outcome = train(exp)
    assert np.isfinite(outcome.evaluation["trained"]["mean_delay"])
    # the module as the learner builds it (the env runners' copy has no critic)
    from aigcsched.platform import agent_slots
    from aigcsched.platform.rllib_setup import module_spec

    slots = agent_slots.make_env(
        {**agent_slots.env_config("mec", exp.scenario().model_dump(), True), "num_envs": exp.slots_per_env_step}
    )
    spec = module_spec(exp)
    spec.observation_space, spec.action_space = slots.single_observation_space, slots.single_action_space
    module = spec.build()
    own, full = slots.obs_size, slots.single_observation_space.shape[0]
    assert full == own + slots.state_size and slots.state_size > 0  # [own observation | global state]
    obs = torch.rand(8, full)
    changed = obs.clone()
    changed[:, own:] += 1.0  # another global state
    with torch.no_grad():
        logits = module.forward_inference({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
        assert torch.equal(logits, module.forward_inference({Columns.OBS: changed})[Columns.ACTION_DIST_INPUTS])
        assert not torch.equal(module.compute_values({Columns.OBS: obs}), module.compute_values({Columns.OBS: changed}))
    # the trained policy acts on every station's own observation alone, as registered and served
    policy = resolve_policy(f"checkpoint:{_checkpoint(outcome)}", exp.scenario())
    env = MECEnv(exp.scenario())
    first, _ = env.reset(seed=3)
    assert all(np.isclose(policy(env, agent, first[agent]).sum(), 1.0) for agent in env.possible_agents)


def test_stations_deciding_in_turn_train_with_a_central_critic(store):
    values = {
        **PPO,
        "env.config.decision": "in_turn",
        "algorithm.central_critic": True,
        # each of the 2 x 3 episodes (one sampler slot each) steps a whole 10-slot episode of 3 turns
        "algorithm.train_batch_size": 60,
        "tracking.register_model": False,
        "stop": {"iterations": 1},
    }
    exp = load_experiment(CONFIGS / "mec_ppo.yaml", values)
    outcome = train(exp)
    # env steps still count slots (each of K station turns), so the batch is as configured
    assert exp.algorithm.train_batch_size <= outcome.env_steps < 2 * exp.algorithm.train_batch_size
    m = mlflow.MlflowClient().get_run(outcome.run_id).data.metrics
    assert m["episode_mean_delay"] > 0 and np.isfinite(m["learner.vf_loss"])
    assert np.isfinite(outcome.evaluation["trained"]["mean_delay"])
    report = mlflow.artifacts.load_text(f"runs:/{outcome.run_id}/evaluation.md")
    assert "stations decide in turn" in report


def _checkpoint(outcome) -> str:
    return mlflow.artifacts.download_artifacts(run_id=outcome.run_id, artifact_path=outcome.checkpoint)


@pytest.mark.parametrize(
    "config, override, message",
    [
        (None, {"algorithm.name": "DSAC", "algorithm.module": "diffusion"}, "edge's is (server, steps)"),
        ("edge_ppo.yaml", {"algorithm.name": "DSAC"}, "algorithm.lambda_: a PPO key; the replay-based"),
        ("mec_dsac.yaml", {"algorithm.module": "default"}, "DSAC's actor is the diffusion actor"),
        ("mec_dsac.yaml", {"algorithm.name": "DQN"}, "DQN uses RLlib's default module"),
        ("mec_dsac.yaml", {"env.config.action_mode": "weights"}, "DSAC needs a Discrete action"),
        ("mec_ppo.yaml", {"algorithm.module": "edge_scheduler"}, "edge_scheduler is edge's module"),
        ("mec_ppo.yaml", {"evaluation.baselines": ["greedy"]}, "unknown mec baseline(s) greedy"),
        ("mec_ppo.yaml", {"algorithm.diffusion_schedule": "sigmoid"}, "algorithm.diffusion_schedule"),
        (
            "mec_dsac.yaml",
            {"algorithm.name": "SAC", "algorithm.module": "default", "reward_shaping.kind": "diffusion"},
            "reward_shaping works with PPO and DSAC, not SAC",
        ),
        ("mec_ppo.yaml", {"reward_shaping.kind": "magic"}, "reward_shaping.kind"),
        ("edge_ppo.yaml", {"evaluation.actions": "sampled"}, "evaluation.actions: sampled applies to multi-agent"),
    ],
)
def test_bad_algorithm_choices_are_one_line_errors(config, override, message):
    with pytest.raises(ConfigError) as err:
        load_experiment(config and CONFIGS / config, override)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_x0_clip_and_training_intensity_reach_rllib():
    from aigcsched.platform.rllib_setup import algorithm_config, module_spec

    exp = load_experiment(
        CONFIGS / "mec_dsac.yaml", {"algorithm.training_intensity": 64, "algorithm.diffusion_x0_clip": 1.0}
    )
    config = algorithm_config(exp)
    assert config.training_intensity == 64 and config.model_config["x0_clip"] == 1.0
    assert config.get_rollout_fragment_length() == 4  # 256 replayed per update / 64 per env step
    ppo = load_experiment(CONFIGS / "mec_ppo.yaml", {"algorithm.diffusion_x0_clip": 2.0})
    assert module_spec(ppo).model_config["x0_clip"] == 2.0
    with pytest.raises(ConfigError, match="training_intensity"):
        load_experiment(CONFIGS / "mec_dsac.yaml", {"algorithm.training_intensity": 0})


def test_shipped_mec_configs_load():
    for name in ("mec_ppo.yaml", "mec_dsac.yaml"):
        exp = load_experiment(CONFIGS / name)
        assert exp.multi_agent and isinstance(exp.scenario(), MECConfig)

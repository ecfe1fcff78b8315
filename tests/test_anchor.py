"""Anchored policies (algorithm.anchor_scale): untrained, each acts as its problem's heuristic."""

from pathlib import Path

import pytest

from aigcsched.platform.config import ConfigError, load_experiment
from aigcsched.platform.policies import resolve_policy
from aigcsched.platform.rllib_setup import agent_modules, module_spec
from aigcsched.platform.trained_policy import TrainedPolicy

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def untrained_policy(exp) -> TrainedPolicy:
    """The policy as training starts: the experiment's module with its initial weights."""
    spec = module_spec(exp)
    spec.observation_space, spec.action_space = exp.problem.spaces(exp.scenario())
    agents = agent_modules(exp)
    modules = {module_id: spec.build() for module_id in set(agents.values())}
    return TrainedPolicy(modules, agents, exp.scenario())


@pytest.mark.parametrize(
    "config, overrides, heuristic",
    [
        ("edge_ppo.yaml", {"env.config.n_requests": 200}, "myopic"),
        (
            "edge_ppo.yaml",
            {"env.config.n_requests": 200, "env.config.mean_interarrival_s": 1.0, "algorithm.anchor_scale": 0.2},
            "myopic",
        ),
        (
            "mec_ppo.yaml",
            {
                "env.config.observe_lookahead": True,
                "env.config.lookahead_anticipation": 0.0,
                "env.config.episode_slots": 30,
                "evaluation.actions": "greedy",
            },
            "myopic",
        ),
        (
            "mec_ppo.yaml",
            {
                "env.config.observe_lookahead": True,
                "env.config.lookahead_anticipation": 0.0,
                "env.config.episode_slots": 30,
                "algorithm.module": "mlp",
            },
            "myopic",
        ),
        # on the queues each station expects: the prior is anticipating_myopic's
        (
            "mec_ppo.yaml",
            {
                "env.config.observe_lookahead": True,
                "env.config.lookahead_anticipation": 2.0,
                "env.config.episode_slots": 30,
                "algorithm.module": "mlp",
            },
            "anticipating_myopic",
        ),
        # deciding in turn, the look-ahead holds the slot's earlier bookings: the prior is sequential_myopic's
        (
            "mec_ppo.yaml",
            {"env.config.decision": "in_turn", "env.config.observe_lookahead": True, "env.config.episode_slots": 20},
            "sequential_myopic",
        ),
        (
            "datacenter_ppo.yaml",
            {"env.config.data_dir": None, "env.config.lookahead_plan": "combined", "algorithm.module": "mlp"},
            "combined",
        ),
        (
            "datacenter_ppo.yaml",
            {
                "env.config.data_dir": None,
                "env.config.lookahead_plan": "combined",
                "algorithm.module": "diffusion",
                "algorithm.shared_policy": True,
            },
            "combined",
        ),
        (
            "datacenter_ppo.yaml",
            {
                "env.config.data_dir": None,
                "env.config.observe_lookahead": True,
                "env.config.lookahead_plan": "value_handoff",
                "algorithm.module": "mlp",
            },
            "value_handoff",
        ),
        (
            "datacenter_ppo.yaml",
            {
                "env.config.data_dir": None,
                "env.config.observe_lookahead": True,
                "env.config.lookahead_plan": "planned_handoff",
                "algorithm.module": "mlp",
            },
            "planned_handoff",
        ),
    ],
)
def test_an_untrained_anchored_policy_scores_as_its_heuristic(config, overrides, heuristic):
    exp = load_experiment(CONFIGS / config, {"algorithm.anchor_scale": 1.0, **overrides})
    problem, cfg = exp.problem, exp.evaluation_scenario()
    episodes, seed = 3, exp.evaluation.seed
    metric = problem.score.metric
    anchored = problem.evaluate(problem.bind(untrained_policy(exp)), cfg, episodes, seed)[metric]
    reference = problem.evaluate(resolve_policy(heuristic, cfg, seed=seed), cfg, episodes, seed)[metric]
    assert anchored == pytest.approx(reference, rel=0.01)
    if cfg.model_dump().get("decision") == "in_turn":  # and as sequential_myopic scores with all deciding at once
        at_once = cfg.model_copy(update={"decision": "simultaneous"})
        assert anchored == pytest.approx(problem.evaluate(heuristic, at_once, episodes, seed)[metric], rel=0.01)
    # without the anchor, the same module starts far from the heuristic
    free = load_experiment(CONFIGS / config, {**overrides, "algorithm.anchor_scale": 0.0})
    unanchored = problem.evaluate(problem.bind(untrained_policy(free)), cfg, episodes, seed)[metric]
    assert unanchored != pytest.approx(reference, rel=0.01)


@pytest.mark.parametrize(
    "config, overrides, message",
    [
        (
            "edge_ppo.yaml",
            {"algorithm.module": "default"},
            "needs module edge_scheduler, mec_scheduler, diffusion or mlp",
        ),
        ("edge_ppo.yaml", {"algorithm.module": "mlp"}, "edge has none"),
        ("datacenter_ppo.yaml", {"env.config.observe_lookahead": False}, "set env.config.observe_lookahead: true"),
        ("mec_ppo.yaml", {"env.config.observe_lookahead": False}, "set env.config.observe_lookahead: true"),
        (
            "mec_ppo.yaml",
            {"algorithm.module": "default"},
            "needs module edge_scheduler, mec_scheduler, diffusion or mlp",
        ),
    ],
)
def test_anchor_needs_a_module_and_a_prior(config, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_experiment(CONFIGS / config, {"algorithm.anchor_scale": 1.0, **overrides})

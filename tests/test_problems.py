"""Each problem's descriptor agrees with its env and its evaluator (what the platform relies on)."""

import numpy as np
import pytest

from aigcsched.platform.config import ConfigError, load_experiment
from aigcsched.platform.policies import resolve_policy
from aigcsched.platform.problems import PROBLEMS, get_problem, problem_of

# Small scenarios, so that one episode of each problem takes well under a second.
SMALL = {
    "edge": {"n_requests": 20},
    "mec": {"n_servers": 3, "episode_slots": 10},
    "datacenter": {"episode_slots": 12, "data_dir": "embedded"},
}


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_descriptor_matches_its_env_and_evaluator(name):
    problem = get_problem(name)
    cfg = problem.scenario(SMALL[name])
    assert problem_of(cfg) is problem
    obs_space, action_space = problem.spaces(cfg)
    agents = problem.agents(cfg)
    assert len(agents) == len(set(agents)) >= 1 and (len(agents) > 1) == problem.multi_agent
    assert obs_space.shape and action_space.shape is not None
    # every default baseline and default policy resolves; the score and columns are what evaluate returns
    for policy_name in (*problem.default_baselines, *problem.default_evaluate):
        resolve_policy(policy_name, cfg, seed=0)
    result = problem.evaluate(resolve_policy(problem.default_baselines[0], cfg, seed=0), cfg, 1, 0)
    assert problem.score.metric in result and np.isfinite(result[problem.score.metric])
    assert {c.key for c in problem.columns} <= set(result)
    assert problem.curve in problem.iteration_metrics


def test_multi_agent_descriptors_name_the_envs_agents():
    from aigcsched.envs import DataCenterEnv, MECEnv

    for name, env_class in (("mec", MECEnv), ("datacenter", DataCenterEnv)):
        problem = get_problem(name)
        cfg = problem.scenario(SMALL[name])
        env = env_class(cfg)
        assert problem.agents(cfg) == env.possible_agents
        assert problem.spaces(cfg) == (
            env.observation_space(env.possible_agents[0]),
            env.action_space(env.possible_agents[0]),
        )


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_an_experiment_without_tracking_section_is_tracked_under_its_own_problem(name):
    # a mec or datacenter config without `tracking` once registered as aigcsched-edge
    values = {"env.id": name, "env.config": SMALL[name]}
    if name == "datacenter":
        values["env.config"] = {**SMALL[name], "day_split": "train"}
    exp = load_experiment(None, values)
    assert exp.tracking.experiment == exp.tracking.model_name == f"aigcsched-{name}"
    assert exp.evaluation.baselines == list(get_problem(name).default_baselines)


def test_unknown_problem_names_the_choices():
    with pytest.raises(ConfigError, match="unknown env 'moon'; choose from edge, datacenter, mec"):
        get_problem("moon")

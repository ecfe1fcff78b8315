"""The mec scheduler module: myopic's look-ahead plus learned per-server weights of booked work."""

from pathlib import Path

import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

from aigcsched.algorithms.mec_heuristics import make_spreading_myopic
from aigcsched.algorithms.mec_module import SERVER_FEATURES
from aigcsched.envs import MECEnv
from aigcsched.platform.config import ConfigError, load_experiment
from aigcsched.platform.rllib_setup import agent_modules, module_spec
from aigcsched.platform.trained_policy import TrainedPolicy

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
IN_TURN = {
    "env.config.decision": "in_turn",
    "env.config.observe_lookahead": True,
    "env.config.observe_booked_work": True,
    "env.config.episode_slots": 20,
    "algorithm.module": "mec_scheduler",
    "algorithm.anchor_scale": 5.0,
}


def experiment(**overrides):
    return load_experiment(CONFIGS / "mec_ppo.yaml", {**IN_TURN, **overrides})


def build(exp, bias: float = 0.0, capacity_slope: float = 0.0):
    """The module as training starts, or with server weights w_j = tanh(bias + capacity_slope x
    capacity_j / 50) through its last layer (a linear map of the server features)."""
    spec = module_spec(exp)
    spec.observation_space, spec.action_space = exp.problem.spaces(exp.scenario())
    module = spec.build()
    if bias or capacity_slope:
        linear = torch.nn.Linear(SERVER_FEATURES, 1)
        with torch.no_grad():
            linear.weight.zero_()
            linear.weight[0, 1] = capacity_slope  # feature 1: capacity / 50
            linear.bias.fill_(bias)
        module.weights = linear
    return module


def logits(module, obs: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = module.forward_inference({Columns.OBS: torch.as_tensor(obs[None])})
    return out[Columns.ACTION_DIST_INPUTS][0].numpy()


def play(env: MECEnv, choose, seed: int) -> list[int]:
    """One in-turn episode; `choose(env, i, obs)` -> the station's action; the actions taken."""
    obs, _ = env.reset(seed=seed)
    taken = []
    while env.agents:
        i = env.turn
        agent = env.possible_agents[i]
        action = choose(env, i, obs[agent]) if obs[agent][0] > 0 else 0
        taken.append(action)
        obs, *_ = env.step({a: action for a in env.agents})
    return taken


def test_the_booked_work_is_what_the_placement_books():
    env = MECEnv(decision="in_turn", observe_booked_work=True, episode_slots=5)
    env.reset(seed=4)
    env.free_at[:] = [3.0, 0.0, 1.5, 0.2, 6.0]
    i = env.turn
    booked = env.booked_work(i)
    assert booked.shape == (env.action_space("bs_0").n, env.cfg.n_servers)
    for action in range(len(booked)):
        x = env.shares(env.possible_agents[i], action)
        _, start, _ = env.part_times(i, x)
        trial = MECEnv(env.cfg)
        trial.reset(seed=4)
        trial.free_at = env.free_at.copy()
        trial.place(i, x)
        used = x > 0
        assert np.allclose(booked[action][used], trial.free_at[used] - start[used])
        assert not booked[action][~used].any()


def test_started_at_a_weight_it_is_spreading_myopic():
    exp = experiment(**{"algorithm.booked_work_start": 0.25})
    module, cfg = build(exp), exp.evaluation_scenario()
    trained = TrainedPolicy({m: module for m in set(agent_modules(exp).values())}, agent_modules(exp), cfg)
    score = exp.problem.evaluate(exp.problem.bind(trained), cfg, 3, exp.evaluation.seed)["mean_delay"]
    assert score == exp.problem.evaluate(make_spreading_myopic(0.25), cfg, 3, exp.evaluation.seed)["mean_delay"]
    assert score != exp.problem.evaluate("sequential_myopic", cfg, 3, exp.evaluation.seed)["mean_delay"]


def test_untrained_it_is_sequential_myopic():
    exp = experiment()
    module, cfg = build(exp), exp.evaluation_scenario()
    trained = TrainedPolicy({m: module for m in set(agent_modules(exp).values())}, agent_modules(exp), cfg)
    score = exp.problem.evaluate(exp.problem.bind(trained), cfg, 3, exp.evaluation.seed)["mean_delay"]
    assert score == exp.problem.evaluate("sequential_myopic", cfg, 3, exp.evaluation.seed)["mean_delay"]
    env = MECEnv(cfg)
    checked = []

    def choose(env, i, obs):
        checked.append(np.array_equal(logits(module, obs), 5.0 * env.lookahead(i).astype(np.float32)))
        return int(np.argmax(env.lookahead(i)))

    play(env, choose, seed=3)
    assert checked and all(checked)


@pytest.mark.parametrize("bias, capacity_slope", [(np.arctanh(0.2), 0.0), (-0.4, 1.5)])
def test_the_logits_weigh_each_server_s_booked_seconds(bias, capacity_slope):
    exp = experiment()
    module, env = build(exp, bias, capacity_slope), MECEnv(exp.scenario())
    rows = []

    def choose(env, i, obs):
        w = np.tanh(bias + capacity_slope * env.instance.capacity / 50.0)
        score = env.lookahead(i) + env.booked_work(i) @ w
        rows.append(np.allclose(logits(module, obs), 5.0 * score, atol=1e-4))
        return int(np.argmax(score))

    taken = play(env, choose, seed=2)
    assert rows and all(rows)
    # the weights change what is chosen: not every action is myopic's
    assert taken != play(env, lambda env, i, obs: int(np.argmax(env.lookahead(i))), seed=2)


def test_a_policy_with_booked_work_acts_the_same_on_a_scenario_without_the_block():
    exp = experiment()
    module = build(exp, -0.4, 1.5)
    trained = TrainedPolicy({m: module for m in set(agent_modules(exp).values())}, agent_modules(exp), exp.scenario())
    policy = exp.problem.bind(trained)
    plain = exp.scenario().model_copy(update={"observe_booked_work": False, "observe_lookahead": False})

    def first_shares(scenario):
        env = MECEnv(scenario)
        obs, _ = env.reset(seed=5)
        agent = env.possible_agents[env.turn]
        return policy(env, agent, obs[agent])

    assert np.array_equal(first_shares(plain), first_shares(exp.scenario()))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"env.config.observe_booked_work": False}, "set algorithm.anchor_scale > 0, env.config.observe_lookahead"),
        ({"algorithm.anchor_scale": 0.0}, "mec_scheduler scores on the look-ahead and the booked work"),
        ({"env.config.observe_lookahead": False}, "env.config.observe_booked_work: true"),
        ({"algorithm.module": "mlp", "algorithm.booked_work_start": 0.25}, "booked_work_start applies to module"),
        ({"algorithm.booked_work_start": 1.0}, "booked_work_start"),
    ],
)
def test_the_module_needs_both_blocks_and_an_anchor(overrides, message):
    with pytest.raises(ConfigError, match=message):
        experiment(**overrides)


def test_booked_work_needs_the_subset_action():
    with pytest.raises(ValueError, match="observe_booked_work needs action_mode 'subset'"):
        MECEnv(action_mode="weights", observe_booked_work=True)

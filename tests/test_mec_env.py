import numpy as np
import pytest
from pettingzoo.test import parallel_api_test
from pydantic import ValidationError

from aigcsched.algorithms.mec_heuristics import MEC_POLICIES, evaluate, make_policy, myopic, run_episode
from aigcsched.envs import MECConfig, MECEnv, MECInstance
from aigcsched.envs.mec import finish_together_shares


@pytest.mark.parametrize(
    "mode, decision", [("subset", "simultaneous"), ("weights", "simultaneous"), ("subset", "in_turn")]
)
def test_pettingzoo_parallel_api(mode, decision):
    parallel_api_test(MECEnv(action_mode=mode, decision=decision, episode_slots=30), num_cycles=40)


def test_subset_action_enumerates_subsets_times_rules():
    env = MECEnv(n_servers=5, max_split=2)
    assert env.action_space("bs_0").n == (5 + 10) * 2
    env.reset(seed=0)
    for action in range(env.action_space("bs_0").n):
        x = env.shares("bs_3", action)
        subset = env.cfg.subsets()[action // 2]
        assert np.isclose(x.sum(), 1.0) and set(np.flatnonzero(x)) == set(subset)


def tiny_instance() -> MECInstance:
    return MECInstance(
        capacity=np.array([10.0, 30.0]),
        link_mbps=np.array([[np.inf, 400.0], [400.0, np.inf]]),
        has_task=np.array([[True, True], [True, False]]),
        task_mbit=np.array([[4.0, 2.0], [5.0, 0.0]]),
        task_steps=np.array([[40, 30], [20, 0]]),
    )


@pytest.mark.parametrize("reward_mode", ["own", "team", "marginal"])
def test_hand_checked_delays(reward_mode):
    env = MECEnv(n_servers=2, episode_slots=2, action_mode="weights", weight_levels=5, reward_mode=reward_mode)
    env.reset(options={"instance": tiny_instance()})
    # Slot 0. bs_0 splits 1:3. Local part: 10 steps / 10 = 1 s. Remote part: 4 Mbit x 0.75 / 400 Mbps
    # = 0.0075 s, then 30 steps / 30 = 1 s: the task ends at 1.0075 s. bs_1 keeps its task local and
    # queues behind that part: 1.0075 + 30 / 30 = 2.0075 s.
    _, rewards, _, _, infos = env.step({"bs_0": np.array([1, 3]), "bs_1": np.array([0, 1])})
    assert infos["bs_0"]["delay"] == pytest.approx(1.0075)
    assert infos["bs_1"]["delay"] == pytest.approx(2.0075) and infos["bs_1"]["queueing"] == pytest.approx(1.0075)
    # marginal: bs_0's remote part pushed server 1 to 1.0075 s, and bs_1's task waited all of it
    expected = {
        "own": {"bs_0": -1.0075, "bs_1": -2.0075},
        "team": {"bs_0": -3.015, "bs_1": -3.015},
        "marginal": {"bs_0": -1.0075 - 1.0075, "bs_1": -2.0075},
    }[reward_mode]
    assert rewards == pytest.approx(expected)
    # Slot 1 (t = 1 s). bs_0 sends everything to server 1: arrives at 1 + 5 / 400 s, waits until
    # 2.0075 s, takes 20 / 30 s: delay 2.0075 + 0.6667 - 1.
    _, rewards, _, truncations, infos = env.step({"bs_0": np.array([0, 4]), "bs_1": np.array([2, 2])})
    assert infos["bs_0"]["delay"] == pytest.approx(1.0075 + 20 / 30)
    assert not infos["bs_1"]["has_task"]
    if reward_mode == "marginal":
        # without bs_1's 1 s of work server 1 is free at 1.0075 s, before the part arrives (1.0125 s)
        assert rewards == pytest.approx({"bs_0": -(1.0075 + 20 / 30), "bs_1": -(2.0075 - 1.0125)})
    assert all(truncations.values()) and env.agents == []


@pytest.mark.parametrize("mode", ["subset", "weights"])
def test_work_is_conserved_across_splits(mode):
    env = MECEnv(n_servers=6, action_mode=mode, max_split=3, episode_slots=50)
    obs, _ = env.reset(seed=3)
    multi_part = 0
    while env.agents:
        actions = {a: env.action_space(a).sample() for a in env.agents}
        obs, _, _, _, infos = env.step(actions)
        multi_part += sum(i.get("parts", 0) > 1 for i in infos.values())
    assert multi_part > 20
    assert env.arrived_steps == env.instance.task_steps[env.instance.has_task].sum()
    assert env.assigned_steps.sum() == pytest.approx(env.arrived_steps)


def test_finish_together_split_makes_parts_end_at_once():
    free_at, tx, proc = np.array([0.5, 0.0, 2.0]), np.array([0.0, 0.01, 0.02]), np.array([4.0, 1.5, 1.0])
    x = finish_together_shares(free_at, tx, proc, now=0.0)
    finish = np.maximum(tx * x, free_at) + proc * x
    used = x > 0
    assert x.sum() == pytest.approx(1.0) and np.ptp(finish[used]) < 1e-9
    assert not used[2]  # the server busy until 2 s is not worth a part: the others finish earlier
    assert finish[used].max() < 2.0


def test_heuristics_rank_as_expected_on_the_default_scenario():
    cfg = MECConfig(episode_slots=50)
    delays = {p: evaluate(p, cfg, episodes=3, seed=100)["mean_delay"] for p in MEC_POLICIES}
    assert (
        delays["sequential_myopic"] < delays["myopic"] < delays["smcoedge"] < delays["least_loaded"] < delays["local"]
    )
    assert all(np.isfinite(list(delays.values())))


def test_myopic_picks_the_action_whose_placement_finishes_first():
    import copy

    env = MECEnv(n_servers=4, max_split=3, episode_slots=30)
    env.reset(seed=11)
    checked = 0
    while env.agents:
        busy = env.free_at > env.now
        for i, agent in enumerate(env.agents):
            if not env.instance.has_task[env.slot, i]:
                continue
            # the env's own placement of each Discrete action, on copies of the current queues
            placed = [
                copy.deepcopy(env)._place(i, env.shares(agent, a))["delay"] for a in range(env.action_space(agent).n)
            ]
            assert env.finish_after(i, myopic(env, agent, None)) == pytest.approx(min(placed))
            checked += busy.any()
        env.step({a: env.action_space(a).sample() for a in env.agents})
    assert checked > 20  # most checks had queues to avoid


@pytest.mark.parametrize("overrides", [{}, {"n_servers": 6, "max_split": 3, "arrival_prob": 0.9}])
def test_marginal_reward_sums_to_the_team_delay_a_station_adds(overrides):
    """Over an episode, a station's marginal rewards are the team's delay without its tasks (the
    others booking the same shares) less the team's delay with them."""
    env = MECEnv(reward_mode="marginal", episode_slots=30, **overrides)
    env.reset(seed=3)
    inst, rng, agents = env.instance, np.random.default_rng(0), env.possible_agents
    booked, returns, total = [], dict.fromkeys(agents, 0.0), 0.0
    for _ in range(env.cfg.episode_slots):
        has = inst.has_task[env.slot]
        actions = {a: rng.integers(env.action_space(a).n) for a in agents}
        shares = {a: env.shares(a, actions[a]) for i, a in enumerate(agents) if has[i]}
        _, rewards, _, _, infos = env.step_shares(shares)
        booked.append(shares)
        total += sum(info.get("delay", 0.0) for info in infos.values())
        for a in agents:
            returns[a] += rewards[a]
    for k, agent in enumerate(agents):
        without = MECEnv(reward_mode="own", episode_slots=30, **overrides)
        has_task = inst.has_task.copy()
        has_task[:, k] = False
        without.reset(options={"instance": inst._replace(has_task=has_task)})
        total_without = 0.0
        for shares in booked:
            _, rewards, *_ = without.step_shares({a: x for a, x in shares.items() if a != agent})
            total_without -= sum(rewards.values())
        assert total_without < total  # every station had tasks that others queued behind
        assert returns[agent] == pytest.approx(total_without - total, rel=1e-9)


def test_bad_configs_and_inputs_are_clear_errors():
    with pytest.raises(ValidationError, match="max_split"):
        MECConfig(n_servers=3, max_split=4)
    with pytest.raises(ValidationError, match="link_mbps"):
        MECConfig(link_mbps=(500.0, 400.0))
    with pytest.raises(ValidationError, match="split_rules"):
        MECConfig(split_rules=("evenly",))
    with pytest.raises(ValidationError, match="extra"):
        MECConfig(n_server=5)
    with pytest.raises(ValueError, match="unknown mec policy"):
        make_policy("greedy")
    env = MECEnv(n_servers=2, episode_slots=2)
    with pytest.raises(ValueError, match="capacities"):
        env.reset(options={"instance": tiny_instance()._replace(capacity=np.array([10.0, 0.0]))})
    env.reset(options={"instance": tiny_instance()})
    with pytest.raises(ValueError, match="summing to 1"):
        env.step_shares({"bs_0": np.array([0.5, 0.2]), "bs_1": np.array([0.0, 1.0])})


def test_same_seed_same_episode():
    env = MECEnv(episode_slots=20)
    first = run_episode(env, make_policy("smcoedge"), seed=7)
    assert run_episode(env, make_policy("smcoedge"), seed=7) == first


def test_rllib_adapter_and_multi_agent_env_runner():
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner

    from aigcsched.envs.rllib_adapter import MECRLlibEnv

    env = MECRLlibEnv({"n_servers": 3, "episode_slots": 5})
    assert env.possible_agents == ["bs_0", "bs_1", "bs_2"]
    assert env.action_spaces["bs_1"] == MECEnv(n_servers=3).action_space("bs_1")
    config = (
        PPOConfig()
        .environment(MECRLlibEnv, env_config={"n_servers": 3, "episode_slots": 5})
        .multi_agent(policies={"shared"}, policy_mapping_fn=lambda agent_id, *args, **kwargs: "shared")
        .env_runners(num_env_runners=0)
        .rl_module(model_config={"fcnet_hiddens": [8]})
    )
    runner = MultiAgentEnvRunner(config=config)
    (episode,) = runner.sample(num_episodes=1)
    assert episode.is_done and episode.env_steps() == 5 and episode.agent_steps() == 15
    runner.stop()


def test_evaluate_mec_command(capsys, monkeypatch):
    import json
    import sys

    from aigcsched import cli

    def run(*args):
        monkeypatch.setattr(sys, "argv", ["aigcsched", "evaluate", "mec", *args])
        try:
            cli.main()
        except SystemExit as e:
            return e.code or 0, capsys.readouterr()
        return 0, capsys.readouterr()

    code, out = run("-p", "local", "-p", "smcoedge", "--episodes", "2", "--set", "episode_slots=20", "--json")
    assert code == 0, out.err
    result = json.loads(out.out)
    assert list(result) == ["local", "smcoedge"] and result["smcoedge"]["mean_parts"] == 2.0
    assert result["smcoedge"]["mean_delay"] < result["local"]["mean_delay"]
    code, out = run("-p", "greedy")
    assert code == 2 and "unknown policy 'greedy'" in out.out + out.err

from aigcsched.envs import DataCenterEnv


def test_adapter_sets_agents_and_spaces_before_reset():
    from aigcsched.envs.rllib_adapter import DataCenterRLlibEnv

    env = DataCenterRLlibEnv({"episode_slots": 3})
    par = DataCenterEnv(episode_slots=3)
    assert env.possible_agents == par.possible_agents
    assert env.observation_spaces == {a: par.observation_space(a) for a in par.possible_agents}
    assert env.action_spaces == {a: par.action_space(a) for a in par.possible_agents}
    assert env.get_observation_space("asp_1") == par.observation_space("asp_1")
    obs, _ = env.reset(seed=0)
    for _ in range(3):
        obs, rewards, terminateds, truncateds, _ = env.step({a: env.action_spaces[a].sample() for a in obs})
    assert terminateds["__all__"] and not truncateds["__all__"] and set(rewards) == set(env.possible_agents)
    assert env.agents == []


def test_rllib_multi_agent_env_runner_samples_through_the_adapter():
    """RLlib's own multi-agent env runner (new API stack, no Ray cluster needed) builds the RL
    module from the adapter's spaces and samples complete episodes of every agent."""
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner

    from aigcsched.envs.rllib_adapter import DataCenterRLlibEnv

    config = (
        PPOConfig()
        .environment(DataCenterRLlibEnv, env_config={"episode_slots": 24})
        .multi_agent(policies={"shared"}, policy_mapping_fn=lambda agent_id, *args, **kwargs: "shared")
        .env_runners(num_env_runners=0)
        .rl_module(model_config={"fcnet_hiddens": [16]})
    )
    runner = MultiAgentEnvRunner(config=config)
    episodes = runner.sample(num_timesteps=60)
    assert sum(e.env_steps() for e in episodes) == 60
    assert [e.agent_steps() for e in episodes[:2]] == [72, 72]  # 24 slots x 3 agents
    (episode,) = runner.sample(num_episodes=1)
    assert episode.is_done and set(episode.agent_episodes) == {"asp_0", "asp_1", "asp_2"}
    assert runner.get_metrics()["num_agent_steps_sampled_lifetime"]["asp_2"] == 60 + 24
    runner.stop()


def test_importing_the_envs_stays_light():
    import subprocess
    import sys

    code = "import sys, aigcsched.envs; print(sorted(m for m in ('ray', 'pandas', 'torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"

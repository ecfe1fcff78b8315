import numpy as np
import pytest
import torch
from ray.rllib.core.columns import Columns

from aigcsched.algorithms.diffusion.module import diffusion_module_spec
from aigcsched.envs.mec import MECConfig, MECEnv
from aigcsched.platform.trained_policy import TrainedPolicy, load_policy_dir, save_policy


@pytest.fixture(scope="module")
def mec_module():
    env = MECEnv(MECConfig(n_servers=3))
    spec = diffusion_module_spec(mlp=True, hidden=(16,), vf_hidden=(8,))
    spec.observation_space, spec.action_space = env.observation_space("bs_0"), env.action_space("bs_0")
    torch.manual_seed(0)
    module = spec.build()
    with torch.no_grad():  # a clearly non-uniform policy: the small head starts near uniform
        module.actor[-1].weight.mul_(300.0)
    obs, _ = env.reset(seed=0)
    return module, env.cfg, np.stack([obs[a] for a in env.possible_agents])


def policy(module, cfg, **kwargs):
    return TrainedPolicy({"shared": module}, {f"bs_{i}": "shared" for i in range(3)}, cfg, **kwargs)


def test_greedy_takes_the_most_likely_action_and_sampled_draws_from_the_distribution(mec_module):
    module, cfg, obs = mec_module
    logits = module.forward_inference({Columns.OBS: torch.as_tensor(obs)})[Columns.ACTION_DIST_INPUTS]
    probs = logits.softmax(-1).detach().numpy()
    greedy = policy(module, cfg).act(obs[None])[0]
    assert np.array_equal(greedy, probs.argmax(-1))

    draws = np.stack([policy(module, cfg, actions="sampled", seed=s).act(obs[None])[0] for s in range(2000)])
    assert len(np.unique(draws[:, 0])) > 1
    for agent in range(3):
        freq = np.bincount(draws[:, agent], minlength=probs.shape[1]) / len(draws)
        assert np.abs(freq - probs[agent]).max() < 0.04  # 2,000 draws: sd of a frequency <= 0.011


def test_sampled_actions_repeat_with_the_seed_and_survive_save_and_load(mec_module, tmp_path):
    module, cfg, obs = mec_module
    batch = np.repeat(obs[None], 50, axis=0)
    first = policy(module, cfg, actions="sampled", seed=7).act(batch)
    assert np.array_equal(first, policy(module, cfg, actions="sampled", seed=7).act(batch))
    assert not np.array_equal(first, policy(module, cfg, actions="sampled", seed=8).act(batch))
    loaded = load_policy_dir(save_policy(policy(module, cfg, actions="sampled", seed=7), tmp_path / "p"))
    assert loaded.actions == "sampled" and np.array_equal(loaded.act(batch), first)


def test_unknown_action_mode_is_an_error(mec_module):
    module, cfg, _ = mec_module
    with pytest.raises(Exception, match="greedy, sampled"):
        policy(module, cfg, actions="softmax")


def test_a_dqn_module_acts_by_its_q_argmax_in_both_modes(mec_module):
    from ray.rllib.algorithms.dqn import DQNConfig

    _, cfg, obs = mec_module
    env = MECEnv(cfg)
    config = DQNConfig().rl_module(model_config={"fcnet_hiddens": [16]})
    spec = config.get_default_rl_module_spec()
    spec.observation_space, spec.action_space = env.observation_space("bs_0"), env.action_space("bs_0")
    spec.model_config = config.model_config
    module = spec.build()
    q = module.compute_q_values({Columns.OBS: torch.as_tensor(obs)})["qf_preds"].detach().numpy()
    for actions in ("greedy", "sampled"):
        assert np.array_equal(policy(module, cfg, actions=actions).act(obs[None])[0], q.argmax(-1))

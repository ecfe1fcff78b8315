import gymnasium as gym
import numpy as np
import pytest
import torch

from aigcsched.algorithms.diffusion import SCHEDULES, DiffusionActor, betas, chain_constants
from aigcsched.algorithms.diffusion.module import DiffusionActorModule, diffusion_module_spec


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_schedules_are_valid_variance_schedules(schedule):
    beta = betas(schedule, 5)
    assert beta.shape == (5,) and np.all(beta > 0) and np.all(beta < 1)
    c = chain_constants(schedule, 5)
    # The last reverse step returns the predicted x0 itself.
    assert c["coef_x0"][0] == pytest.approx(1.0) and c["coef_xt"][0] == pytest.approx(0.0)


@pytest.mark.parametrize("batch_shape", [(), (1,), (7,), (3, 4)])
@pytest.mark.parametrize("stochastic", [False, True])
def test_reverse_chain_gives_distributions_for_every_batch_shape(batch_shape, stochastic):
    torch.manual_seed(0)
    actor = DiffusionActor(obs_dim=6, action_dim=5, n_steps=5, hidden=(32, 32), stochastic=stochastic)
    obs = torch.randn(*batch_shape, 6) * 10
    logits = actor(obs)
    assert logits.shape == (*batch_shape, 5)
    probs = logits.softmax(-1)
    assert torch.all(torch.isfinite(probs)) and torch.all(probs >= 0)
    assert torch.allclose(probs.sum(-1), torch.ones(batch_shape))


def test_gradients_reach_every_parameter_through_the_chain():
    actor = DiffusionActor(obs_dim=3, action_dim=4, hidden=(16,))
    actor(torch.randn(8, 3)).logsumexp(-1).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in actor.parameters())


def test_deterministic_actor_starts_near_uniform_like_its_mlp_twin():
    # Without a small output layer the first reverse step multiplies eps by 12.5 (vp, T = 5) and
    # PPO starts from a peaked random policy; on mec that policy collapsed (delay 13 s vs 2.5 s).
    from aigcsched.algorithms.diffusion.denoiser import mlp_actor

    torch.manual_seed(0)
    obs = torch.rand(64, 23)
    for actor in (DiffusionActor(23, 30, hidden=(64, 64)), mlp_actor(23, 30, (64, 64))):
        probs = actor(obs).softmax(-1)
        entropy = -(probs * probs.log()).sum(-1)
        assert entropy.min() > 0.99 * np.log(30)


def test_deterministic_chain_is_a_function_of_the_observation_and_the_stochastic_one_is_not():
    obs = torch.randn(4, 3)
    det = DiffusionActor(3, 4, hidden=(16,))
    assert torch.equal(det(obs), det(obs))
    sto = DiffusionActor(3, 4, hidden=(16,), stochastic=True)
    assert not torch.equal(sto(obs), sto(obs))
    start = torch.randn(4, 4)  # LAD-TS: a given start latent makes the chain repeatable
    sto_det_noise = DiffusionActor(3, 4, hidden=(16,), stochastic=False)
    assert torch.equal(sto_det_noise(obs, x_start=start), sto_det_noise(obs, x_start=start))


@pytest.mark.parametrize(
    "space",
    [gym.spaces.Discrete(3), gym.spaces.MultiDiscrete([4, 2, 5])],
    ids=["discrete", "multidiscrete"],
)
def test_module_forward_passes_and_actions_in_space(space):
    from ray.rllib.core.columns import Columns

    obs_space = gym.spaces.Box(-1.0, 1.0, (2, 3), np.float32)  # flattened by the module
    spec = diffusion_module_spec(hidden=(32, 32), vf_hidden=(16,))
    spec.observation_space, spec.action_space = obs_space, space
    module = spec.build()
    assert isinstance(module, DiffusionActorModule)
    batch = {Columns.OBS: torch.as_tensor(np.stack([obs_space.sample() for _ in range(9)]))}
    for forward in (module.forward_inference, module.forward_exploration, module.forward_train):
        out = forward(batch)
        dist = module.get_exploration_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
        actions = dist.sample().numpy()
        assert all(space.contains(a.astype(space.dtype)) for a in actions)
        assert torch.all(torch.isfinite(dist.logp(torch.as_tensor(actions))))
    assert module.compute_values(batch).shape == (9,)
    clone = spec.build()
    clone.set_state(module.get_state())
    assert torch.equal(clone.forward_inference(batch)[Columns.ACTION_DIST_INPUTS], out[Columns.ACTION_DIST_INPUTS])


@pytest.mark.parametrize(
    "options, message",
    [
        ({"n_steps": 0}, "n_steps"),
        ({"schedule": "sigmoid"}, "schedule"),
        ({"hidden": []}, "hidden"),
        ({"x0_clip": -1.0}, "x0_clip"),
        ({"widht": 3}, "unknown diffusion actor option"),
    ],
)
def test_bad_options_are_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        diffusion_module_spec(**options)


def test_continuous_actions_are_refused():
    spec = diffusion_module_spec()
    spec.observation_space, spec.action_space = gym.spaces.Box(-1, 1, (3,)), gym.spaces.Box(-1, 1, (2,))
    with pytest.raises(ValueError, match="Discrete"):
        spec.build()


def test_ppo_trains_two_iterations_on_cartpole_with_the_diffusion_actor(local_ray):
    from ray.rllib.algorithms.ppo import PPOConfig

    config = (
        PPOConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=0)
        .training(train_batch_size_per_learner=256, minibatch_size=64, num_epochs=2)
        .rl_module(rl_module_spec=diffusion_module_spec(n_steps=3, hidden=(32, 32), vf_hidden=(32,)))
        .debugging(seed=0)
    )
    algo = config.build_algo()
    try:
        for _ in range(2):
            result = algo.train()
        learner = result["learners"]["default_policy"]
        assert np.isfinite(learner["policy_loss"]) and np.isfinite(learner["vf_loss"])
        assert result["env_runners"]["num_env_steps_sampled_lifetime"] >= 512
        assert isinstance(algo.get_module(), DiffusionActorModule)
    finally:
        algo.stop()

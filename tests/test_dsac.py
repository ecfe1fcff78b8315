import gymnasium as gym
import numpy as np
import pytest


def test_dsac_trains_two_iterations_on_cartpole_with_finite_losses(local_ray):
    from aigcsched.algorithms.diffusion.denoiser import DiffusionActor
    from aigcsched.algorithms.diffusion.dsac import DiffusionSACModule, DSACConfig

    config = (
        DSACConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=0)
        .training(
            learn_alpha=False,
            initial_alpha=0.1,
            num_steps_sampled_before_learning_starts=16,
            train_batch_size_per_learner=16,
        )
        .reporting(min_sample_timesteps_per_iteration=24)
        .rl_module(model_config={"n_steps": 2, "hidden": (16, 16), "fcnet_hiddens": [16]})
        .debugging(seed=0)
    )
    algo = config.build_algo()
    try:
        for _ in range(2):
            result = algo.train()
        learner = result["learners"]["default_policy"]
        for key in ("policy_loss", "qf_loss", "qf_twin_loss"):
            assert np.isfinite(float(np.asarray(learner[key]))), key
        assert float(np.asarray(learner["alpha_value"])) == pytest.approx(0.1)  # fixed alpha stays put
        module = algo.get_module()
        assert isinstance(module, DiffusionSACModule) and isinstance(module.pi, DiffusionActor)
        assert module.pi.stochastic  # the published actor samples its chain
    finally:
        algo.stop()


def test_dsac_config_errors_are_clear():
    from aigcsched.algorithms.diffusion.dsac import DSACConfig

    with pytest.raises(ValueError, match="target_entropy_ratio"):
        DSACConfig().training(target_entropy_ratio=1.5)
    config = DSACConfig().environment("CartPole-v1").training(twin_q=False)
    with pytest.raises(ValueError, match="twin_q"):
        config.validate()
    spec = DSACConfig().get_default_rl_module_spec()
    spec.observation_space, spec.action_space = gym.spaces.Box(-1, 1, (4,)), gym.spaces.Box(-1, 1, (2,))
    spec.model_config = {"twin_q": True}
    with pytest.raises(ValueError, match="Discrete"):
        spec.build()

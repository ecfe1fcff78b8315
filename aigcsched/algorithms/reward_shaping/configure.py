"""`add_reward_shaping`: turns validated reward-shaping settings into an RLlib AlgorithmConfig."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.algorithms.sac import SACConfig
from ray.rllib.examples.connectors.classes.euclidian_distance_based_curiosity import EuclidianDistanceBasedCuriosity

from aigcsched.algorithms.reward_shaping.connectors import DATASET_ROWS
from aigcsched.algorithms.reward_shaping.learner import SETTINGS_KEY, shaping_learner_class
from aigcsched.algorithms.reward_shaping.settings import RewardShapingConfig


class ContinuingCuriosity(EuclidianDistanceBasedCuriosity):
    """RLlib's example piece, on every batch: as shipped it returns batches unchanged after its
    first 11 calls (a counter `_test`, left over from its example), so the bonus stopped within the
    first few iterations of a run."""

    def __call__(self, **kwargs):
        self._test = 0
        return super().__call__(**kwargs)


def add_reward_shaping(config: AlgorithmConfig, settings: RewardShapingConfig | Mapping[str, Any]) -> AlgorithmConfig:
    """Turn on reward shaping `settings.kind` in `config`; returns the same config. Call it after
    the rest of the config (it sets the learner class or the learner connector).

    - none: the config unchanged.
    - curiosity: RLlib's example piece EuclidianDistanceBasedCuriosity (eta per unit of distance to
      recently seen observations) as the custom learner connector, replacing any set before.
    - diffusion (r + eta r_hat(s, a)), diffusion_potential (r + gamma Phi(s') - Phi(s),
      Phi = eta r_hat(s, null)) or diffusion_replace (r_hat(s, a) alone): a PPOConfig or
      SACConfig / DSACConfig (single- or multi-agent) on RLlib's new API stack gets a learner class
      that trains a reward model per policy module, on `labels` uniform or decomposition, generated
      by `network` diffusion or mlp. `steps` (T) and `width` size its denoiser (the MLP has the
      same width), `lr` its Adam, `subset` the decomposition's steps per episode. Warm-up is counted in labelled rows
      (steps of finished episodes, the only ones that carry a target): a module's rewards are
      shaped once its reward model has `warmup_steps` of them over its lifetime and has taken an
      update.

    A plain mapping is validated into RewardShapingConfig (a validated model passes through as it is).
    """
    settings = RewardShapingConfig.model_validate(settings)
    if settings.kind == "none":
        return config
    if settings.kind == "curiosity":
        eta = settings.eta  # the float alone travels to the learners, not the settings
        return config.learners(
            learner_connector=lambda *args, **kwargs: ContinuingCuriosity(intrinsic_reward_coeff=eta)
        )
    # What the settings cannot know: whether this algorithm config can carry the reward model.
    if not isinstance(config, PPOConfig | SACConfig):
        raise ValueError(f"reward shaping works with PPO and SAC/DSAC configs, got {type(config).__name__}")
    if not config.enable_rl_module_and_learner or config.framework_str != "torch":
        raise ValueError("reward shaping needs RLlib's new API stack (RLModule and Learner) with torch")
    if config.num_aggregator_actors_per_learner:
        raise ValueError("reward shaping needs the learner connector on the learner (no aggregator actors)")
    # A plain dict: what the learners read, shipped with the config to remote learners.
    learner_settings = {**settings.model_dump(), "dataset_rows": DATASET_ROWS}
    return config.learners(
        learner_class=shaping_learner_class(config.learner_class),
        learner_config_dict={SETTINGS_KEY: learner_settings},
    )

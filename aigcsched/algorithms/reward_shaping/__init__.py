"""Reward shaping for sparse rewards (RLlib new API stack, PPO and SAC/DSAC).

After Fu et al. 2026, "Joint Energy Management and Coordinated AIGC Workload Scheduling for
Distributed Data Centers: A Diffusion-Aided Reward Shaping Approach": when a provider's utility
arrives only at settlement (`reward_mode: sparse`), a conditional diffusion model synthesizes
complementary per-step reward signals through multi-step denoising, and the RL learner trains on
the shaped rewards. `curiosity` is the peer method, RLlib's distance-based novelty bonus.

    config = add_reward_shaping(PPOConfig().environment(...), RewardShapingConfig(kind="diffusion", eta=0.4))
    algo = config.build_algo()

- `settings`: `RewardShapingConfig`, validated once (the experiment's `reward_shaping` section).
- `model`: `DiffusionRewardModel`, the reward model (one learner-only RLModule per policy module), and
  its ablation `MLPRewardModel`; `labels` uniform (return / length on every step) or decomposition
  (randomized return decomposition).
- `connectors`: `EpisodeOutcomeLabeller` (labels from observed episode outcomes) and
  `DiffusionRewardShaping` (rewrites the batch rewards), learner connector pieces.
- `learner`: `RewardShapingLearner`, the TorchLearner mixin that wires the two in.
- `configure`: `add_reward_shaping`.

Everything lives on the learner; the env runners never build, run or see any of it, so the
episode returns they report stay the environment's own.

Logged under `result["learners"]["_reward_model_<module id>"]`: `reward_model_loss`,
`shaping_bonus_mean` (shaped minus original reward over the batch's real steps),
`r_hat_target_corr` (Pearson, r_hat vs target on the labelled rows of the update),
`labelled_rows` (lifetime), `shaping_active`, `decomposition_loss`, `held_out_return_corr`,
`r_hat_episode_spread` (and with decomposition labels `decomposition_train_loss`).

Not kept in checkpoints: the labelled rows and unfinished episode buffers (they refill); the model,
its optimizer, normalization statistics and counters are. With several learners each keeps its own
rows. Stateful (recurrent) policy modules are not supported.

Only the settings are imported eagerly: the experiment config reads them without loading RLlib.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from aigcsched.algorithms.reward_shaping.settings import DIFFUSION_KINDS, SHAPING_KINDS, RewardShapingConfig

if TYPE_CHECKING:
    from aigcsched.algorithms.reward_shaping.configure import add_reward_shaping
    from aigcsched.algorithms.reward_shaping.connectors import (
        DATASET_ROWS,
        FRESH_EPISODES,
        DiffusionRewardShaping,
        EpisodeOutcomeLabeller,
        LabelledRows,
        held_out_metrics,
        original_episode_id,
        pearson,
        potential_shaping,
    )
    from aigcsched.algorithms.reward_shaping.learner import SETTINGS_KEY, RewardShapingLearner, shaping_learner_class
    from aigcsched.algorithms.reward_shaping.model import (
        GROUPS,
        LENGTHS,
        NULL_ACTION_PROB,
        REWARD_MODEL_PREFIX,
        REWARD_MODELS,
        TARGETS,
        X0_CLIP,
        DiffusionRewardModel,
        MLPRewardModel,
        RewardModel,
        action_sizes,
        decomposition_loss,
        is_reward_model_id,
        observation_size,
        reward_model_id,
    )

__all__ = [
    "DATASET_ROWS",
    "DIFFUSION_KINDS",
    "FRESH_EPISODES",
    "GROUPS",
    "LENGTHS",
    "NULL_ACTION_PROB",
    "REWARD_MODELS",
    "REWARD_MODEL_PREFIX",
    "SETTINGS_KEY",
    "SHAPING_KINDS",
    "TARGETS",
    "X0_CLIP",
    "DiffusionRewardModel",
    "DiffusionRewardShaping",
    "EpisodeOutcomeLabeller",
    "LabelledRows",
    "MLPRewardModel",
    "RewardModel",
    "RewardShapingConfig",
    "RewardShapingLearner",
    "action_sizes",
    "add_reward_shaping",
    "decomposition_loss",
    "held_out_metrics",
    "is_reward_model_id",
    "observation_size",
    "original_episode_id",
    "pearson",
    "potential_shaping",
    "reward_model_id",
    "shaping_learner_class",
]

_RLLIB_SUBMODULES = ("model", "connectors", "learner", "configure")


def __getattr__(name: str):
    # Everything but the settings needs RLlib: imported on first use of one of its names.
    if name in __all__:
        for submodule in _RLLIB_SUBMODULES:
            module = importlib.import_module(f"{__name__}.{submodule}")
            if name in vars(module):
                globals()[name] = value = vars(module)[name]  # later lookups skip this hook
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

"""The learner side of diffusion shaping: a TorchLearner mixin that adds a reward model per policy
module, the two connector pieces and the reward model's own optimizer step.

One model per policy module (`_reward_model_<module id>`, learner_only): per module because
modules may have different spaces and reward scales, and a shared policy already gets one shared
model. The settings come from `config.learner_config_dict["reward_shaping"]`, a plain dict that
`add_reward_shaping` writes from validated settings.
"""

from __future__ import annotations

import torch
from ray.rllib.connectors.common.add_observations_from_episodes_to_batch import AddObservationsFromEpisodesToBatch
from ray.rllib.connectors.learner import AddNextObservationsFromEpisodesToTrainBatch, GeneralAdvantageEstimation
from ray.rllib.core.learner.torch.torch_learner import TorchLearner

from aigcsched.algorithms.reward_shaping.connectors import DiffusionRewardShaping, EpisodeOutcomeLabeller, LabelledRows
from aigcsched.algorithms.reward_shaping.model import REWARD_MODELS, is_reward_model_id, reward_model_id

SETTINGS_KEY = "reward_shaping"  # in config.learner_config_dict


class RewardShapingLearner:
    """Mixin for a TorchLearner (PPO's, SAC's, DSAC's): adds a reward model per policy module, the
    two connector pieces, and the reward model's own optimizer step."""

    def _shaping(self) -> dict:
        return self.config.learner_config_dict[SETTINGS_KEY]

    def _make_module(self):
        module = super()._make_module()
        required = self.rl_module_required_apis()
        self._shaped_ids = [
            mid
            for mid in module.keys()
            if not is_reward_model_id(mid) and all(isinstance(module[mid], api) for api in required)
        ]
        if not self._shaped_ids:
            raise ValueError(f"reward shaping found no module implementing {[api.__name__ for api in required]}")
        settings = self._shaping()
        for mid in self._shaped_ids:
            policy = module[mid]
            if policy.is_stateful():
                raise ValueError(f"reward shaping does not support stateful (recurrent) modules, got {mid!r}")
            if reward_model_id(mid) not in module:
                model = REWARD_MODELS[settings.get("network", "diffusion")](
                    observation_space=policy.observation_space,
                    action_space=policy.action_space,
                    learner_only=True,
                    model_config={
                        "steps": settings["steps"],
                        "width": settings["width"],
                        "labels": settings.get("labels", "uniform"),
                        "bias_correction": settings.get("bias_correction", True),
                        # r_hat(s, null) is read only by the potential
                        "null_action": settings["kind"] == "diffusion_potential",
                    },
                )
                module.add_module(reward_model_id(mid), model)
        self._map_module_to_device(module)
        return module

    def build(self) -> None:
        super().build()
        settings, pipeline = self._shaping(), self._learner_connector
        if pipeline is None or not self.config.add_default_connectors_to_learner_pipeline:
            raise ValueError("reward shaping needs the learner connector pipeline with RLlib's default pieces")
        datasets = {mid: LabelledRows(settings["dataset_rows"]) for mid in self._shaped_ids}
        # First: the episodes as sampled (real ends, ids, no artificial step).
        pipeline.prepend(EpisodeOutcomeLabeller(datasets=datasets, max_open_rows=settings["dataset_rows"]))
        classes = [type(c) for c in pipeline.connectors]
        needs_next_obs = settings["kind"] == "diffusion_potential"  # Phi(s'); SAC's pipeline has s' already
        if needs_next_obs and AddNextObservationsFromEpisodesToTrainBatch not in classes:
            pipeline.insert_after(AddObservationsFromEpisodesToBatch, AddNextObservationsFromEpisodesToTrainBatch())
        shaping = DiffusionRewardShaping(
            kind=settings["kind"],
            eta=settings["eta"],
            gamma=self.config.gamma,
            warmup_steps=settings["warmup_steps"],
            datasets=datasets,
            seed=self.config.seed,
            labels=settings.get("labels", "uniform"),
            subset=settings.get("subset", 64),
        )
        if GeneralAdvantageEstimation in classes:
            pipeline.insert_before(GeneralAdvantageEstimation, shaping)
        else:
            pipeline.append(shaping)

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        if not is_reward_model_id(module_id):
            return super().configure_optimizers_for_module(module_id, config)
        params = self.get_parameters(self.module[module_id])
        self.register_optimizer(
            module_id=module_id,
            optimizer_name="reward_model",
            optimizer=torch.optim.Adam(params),
            params=params,
            lr_or_lr_schedule=self._shaping()["lr"],
        )

    def should_module_be_updated(self, module_id, multi_agent_batch=None):
        return is_reward_model_id(module_id) or super().should_module_be_updated(module_id, multi_agent_batch)

    def compute_gradients(self, loss_per_module, **kwargs):
        # The algorithm's own gradient step sees only its modules (SAC's looks up a loss per
        # optimizer); each reward model's loss is back-propagated separately into its own net.
        own = {mid: loss for mid, loss in loss_per_module.items() if is_reward_model_id(mid)}
        rest = {mid: loss for mid, loss in loss_per_module.items() if mid not in own}
        grads = super().compute_gradients(rest, **kwargs) if rest else {}
        # TorchLearner returns every parameter's grad, None for a reward model without a batch yet.
        grads = {pid: g for pid, g in grads.items() if g is not None}
        for mid, loss in own.items():
            for _, optimizer in self.get_optimizers_for_module(mid):
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                grads.update(
                    {pid: p.grad for pid, p in self.filter_param_dict_for_optimizer(self._params, optimizer).items()}
                )
        return grads


_SHAPING_LEARNERS: dict[type, type] = {}


def shaping_learner_class(base: type) -> type:
    """`base` (a TorchLearner subclass) with RewardShapingLearner mixed in (one class per base)."""
    if issubclass(base, RewardShapingLearner):
        return base
    if not issubclass(base, TorchLearner):
        raise ValueError(f"reward shaping needs a torch Learner, got {base.__name__}")
    if base not in _SHAPING_LEARNERS:
        _SHAPING_LEARNERS[base] = type(f"{base.__name__}WithRewardShaping", (RewardShapingLearner, base), {})
    return _SHAPING_LEARNERS[base]

"""Diffusion SAC (DSAC): discrete soft actor-critic whose actor is the diffusion denoiser.

As in DDRL-ATS (Xu et al.) and D2SAC (Du et al. 2023): twin Q(s, .) critics with soft target
updates, actor loss E_s[-(alpha * H(pi(.|s)) + sum_a pi(a|s) min(Q1, Q2)(s, a))], alpha fixed or
learned. Built on RLlib's SAC, whose discrete branch already computes these losses: this file
swaps the policy network for the diffusion actor, takes log-probabilities with log_softmax (the
stock softmax().log() gives -inf for underflowing probabilities), sets the discrete target entropy
to a share of log |A| and lets alpha be fixed.

    config = DSACConfig().environment("CartPole-v1").training(learn_alpha=False, initial_alpha=0.05)
    algo = config.build_algo()
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
from ray.rllib.algorithms.sac import SAC, SACConfig
from ray.rllib.algorithms.sac.sac_learner import (
    ACTION_LOG_PROBS,
    ACTION_LOG_PROBS_NEXT,
    ACTION_PROBS,
    ACTION_PROBS_NEXT,
    QF_PREDS,
    QF_TARGET_NEXT,
    QF_TWIN_PREDS,
)
from ray.rllib.algorithms.sac.torch.default_sac_torch_rl_module import DefaultSACTorchRLModule
from ray.rllib.algorithms.sac.torch.sac_torch_learner import SACTorchLearner
from ray.rllib.core.columns import Columns
from ray.rllib.core.models.base import ENCODER_OUT
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from torch import nn

from aigcsched.algorithms.diffusion.module import DEFAULTS, build_actor, diffusion_model_config

# The published actor samples its chain from noise (D2SAC); SAC needs no repeatable logits.
DSAC_ACTOR_DEFAULTS = {"stochastic": True}


class FlattenObs(nn.Module):
    """Stands in for SAC's policy encoder: the diffusion actor conditions on the raw observation."""

    def forward(self, batch: dict) -> dict:
        return {ENCODER_OUT: batch[Columns.OBS].flatten(start_dim=1).float()}


class DiffusionSACModule(DefaultSACTorchRLModule):
    """RLlib's SAC module (its twin Q(s, .) critics and targets) with the diffusion actor as `pi`."""

    def setup(self):
        if not isinstance(self.action_space, gym.spaces.Discrete):
            raise ValueError(f"DSAC needs a Discrete action space, got {self.action_space}")
        super().setup()
        options = {**DSAC_ACTOR_DEFAULTS, **{k: v for k, v in self.model_config.items() if k in DEFAULTS}}
        self.pi_encoder = FlattenObs()
        self.pi = build_actor(self.observation_space, self.action_space, diffusion_model_config(**options))

    def _policy(self, obs_batch: dict) -> tuple[Any, Any]:
        logits = self.pi(self.pi_encoder(obs_batch)[ENCODER_OUT])
        return logits.softmax(-1), logits.log_softmax(-1)

    def _forward_train_discrete(self, batch: dict[str, Any]) -> dict[str, Any]:
        curr, nxt = {Columns.OBS: batch[Columns.OBS]}, {Columns.OBS: batch[Columns.NEXT_OBS]}
        out = {}
        out[ACTION_PROBS_NEXT], out[ACTION_LOG_PROBS_NEXT] = self._policy(nxt)
        out[QF_TARGET_NEXT] = self.forward_target(nxt, squeeze=False)
        out[QF_PREDS] = self._qf_forward_train_helper(curr, self.qf_encoder, self.qf, squeeze=False)
        if self.twin_q:
            out[QF_TWIN_PREDS] = self._qf_forward_train_helper(curr, self.qf_twin_encoder, self.qf_twin, squeeze=False)
        out[ACTION_PROBS], out[ACTION_LOG_PROBS] = self._policy(curr)
        return out


class DSACConfig(SACConfig):
    """SACConfig with the diffusion actor; `training()` also takes `learn_alpha` and
    `target_entropy_ratio`. Actor options (n_steps, schedule, hidden, stochastic, x0_clip) go in
    `rl_module(model_config={...})`."""

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or DSAC)
        self.learn_alpha = True
        # Discrete SAC aims at 0.98 log|A| (Christodoulou 2019), which keeps the policy near
        # uniform on small action sets; a lower share is a common fix. "auto" target entropy uses it.
        self.target_entropy_ratio = 0.5
        self.twin_q = True

    def training(self, *, learn_alpha: bool | None = None, target_entropy_ratio: float | None = None, **kwargs):
        super().training(**kwargs)
        if learn_alpha is not None:
            self.learn_alpha = learn_alpha
        if target_entropy_ratio is not None:
            if not 0.0 <= target_entropy_ratio <= 1.0:
                raise ValueError(f"target_entropy_ratio must be in [0, 1], got {target_entropy_ratio}")
            self.target_entropy_ratio = target_entropy_ratio
        return self

    def validate(self) -> None:
        super().validate()
        if not self.twin_q:
            raise ValueError("DSAC uses twin Q critics; twin_q must stay True")
        if not self.initial_alpha > 0:
            raise ValueError(f"initial_alpha must be > 0, got {self.initial_alpha}")

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        return RLModuleSpec(module_class=DiffusionSACModule)

    def get_default_learner_class(self):
        return DSACTorchLearner


class DSACTorchLearner(SACTorchLearner):
    """SAC's torch learner, with the discrete target entropy and an optionally fixed alpha."""

    def _get_target_entropy(self, module_id):
        config = self.config.get_config_for_module(module_id)
        space = self._module_spec.module_specs[module_id].action_space
        if config.target_entropy in (None, "auto") and isinstance(space, gym.spaces.Discrete):
            return config.target_entropy_ratio * math.log(space.n)
        return super()._get_target_entropy(module_id)

    def configure_optimizers_for_module(self, module_id, config=None) -> None:
        if config.learn_alpha:
            return super().configure_optimizers_for_module(module_id, config)
        # As SAC's, minus the temperature's optimizer.
        import torch

        module = self._module[module_id]
        groups = {"qf": [module.qf_encoder, module.qf], "qf_twin": [module.qf_twin_encoder, module.qf_twin]}
        for name, parts in groups.items():
            params = [p for part in parts for p in self.get_parameters(part)]
            self.register_optimizer(
                module_id=module_id,
                optimizer_name=name,
                optimizer=torch.optim.Adam(params, eps=1e-7),
                params=params,
                lr_or_lr_schedule=config.critic_lr,
            )
        params = self.get_parameters(module.pi_encoder) + self.get_parameters(module.pi)
        self.register_optimizer(
            module_id=module_id,
            optimizer_name="policy",
            optimizer=torch.optim.Adam(params, eps=1e-7),
            params=params,
            lr_or_lr_schedule=config.actor_lr,
        )

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        loss = super().compute_loss_for_module(module_id=module_id, config=config, batch=batch, fwd_out=fwd_out)
        if not config.learn_alpha:
            self._temp_losses.pop((module_id, "alpha_loss"))  # no optimizer consumes it
        return loss


class DSAC(SAC):
    """RLlib's SAC algorithm run with DSACConfig's module and learner."""

    @classmethod
    def get_default_config(cls) -> DSACConfig:
        return DSACConfig()

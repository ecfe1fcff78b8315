"""The reward model: a conditional DDPM over a scalar reward, one learner-only RLModule per policy.

`DiffusionRewardModel` conditions on (flattened observation, action one-hot(s)) and is trained with
the epsilon-prediction loss on running-normalized targets. r_hat(s, a) is its reverse chain run
deterministically (x_T = 0, posterior means), de-normalized. During training the action is
replaced by a null (all-zero) encoding with probability 1/2, as in classifier-free guidance, so the
same network also predicts r_hat(s, null) ~ E_a[r | s], the potential Phi(s) = eta * r_hat(s, null).
Its denoiser is the project's `DiffusionActor` with a 1-d "action" (the reward). As in RLlib's
intrinsic-curiosity example it implements `SelfSupervisedLossAPI`, so the Learner computes its
loss, gives it its own optimizer, checkpoints it with the policies and places it on the learner's
device; no agent maps to it and the algorithm's loss never trains it.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.apis import SelfSupervisedLossAPI
from ray.rllib.core.rl_module.torch import TorchRLModule
from torch.nn import functional as F

from aigcsched.algorithms.diffusion.denoiser import DiffusionActor

REWARD_MODEL_PREFIX = "_reward_model_"
TARGETS = "reward_targets"  # batch column of the reward model: the labels
NULL_ACTION_PROB = 0.5  # share of training rows whose action is dropped (for Phi(s))
X0_CLIP = 5.0  # the chain's x0 estimates, in normalized units (std of the targets)


def reward_model_id(module_id: str) -> str:
    return REWARD_MODEL_PREFIX + module_id


def is_reward_model_id(module_id: str) -> bool:
    return module_id.startswith(REWARD_MODEL_PREFIX)


def observation_size(space: gym.Space) -> int:
    if not isinstance(space, gym.spaces.Box):
        raise ValueError(f"reward shaping needs a Box observation space, got {space}")
    return int(np.prod(space.shape))


def action_sizes(space: gym.Space) -> list[int]:
    """Sizes of the one-hot blocks encoding an action: [n] (Discrete) or nvec (1-d MultiDiscrete)."""
    if isinstance(space, gym.spaces.Discrete):
        return [int(space.n)]
    if isinstance(space, gym.spaces.MultiDiscrete) and space.nvec.ndim == 1:
        return [int(n) for n in space.nvec]
    raise ValueError(f"reward shaping needs a Discrete or 1-d MultiDiscrete action space, got {space}")


class DiffusionRewardModel(TorchRLModule, SelfSupervisedLossAPI):
    """Conditional DDPM over a scalar reward; model_config: `steps` (T) and `width` (two layers)."""

    def setup(self):
        cfg = self.model_config or {}
        self.sizes = action_sizes(self.action_space)
        self.n_steps = int(cfg.get("steps", 5))
        width = int(cfg.get("width", 64))
        cond_dim = observation_size(self.observation_space) + sum(self.sizes)
        self.chain = DiffusionActor(
            cond_dim, 1, n_steps=self.n_steps, hidden=(width, width), stochastic=False, x0_clip=X0_CLIP
        )
        # Forward-noising constants sqrt(abar_t), sqrt(1 - abar_t), derived from the chain's own.
        sqrt_abar = 1.0 / self.chain.sqrt_recip_abar
        self.register_buffer("sqrt_abar", sqrt_abar, persistent=False)
        self.register_buffer("sqrt_1m_abar", self.chain.sqrt_recipm1_abar * sqrt_abar, persistent=False)
        # Running statistics of the targets (Chan et al.'s parallel Welford) and counters; buffers,
        # so they are checkpointed with the weights.
        for name in ("target_count", "target_mean", "target_m2"):
            self.register_buffer(name, torch.zeros((), dtype=torch.float64))
        self.register_buffer("num_labelled", torch.zeros((), dtype=torch.int64))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.int64))

    # --- targets

    def observe_targets(self, targets: np.ndarray) -> None:
        """Fold newly labelled targets into the running mean / variance and the row count."""
        n = len(targets)
        if n == 0:
            return
        mean, m2 = float(np.mean(targets)), float(np.var(targets)) * n
        count = float(self.target_count)
        delta, total = mean - float(self.target_mean), count + n
        self.target_mean.fill_(float(self.target_mean) + delta * n / total)
        self.target_m2.fill_(float(self.target_m2) + m2 + delta**2 * count * n / total)
        self.target_count.fill_(total)
        self.num_labelled += n

    def _std(self) -> torch.Tensor:
        var = self.target_m2 / self.target_count.clamp(min=1.0)
        return var.sqrt().clamp(min=1e-6).float()

    def ready(self, warmup_steps: int) -> bool:
        return int(self.num_labelled) >= warmup_steps and int(self.num_updates) > 0

    # --- network

    def condition(self, obs: torch.Tensor, actions: torch.Tensor | None, keep: torch.Tensor | None = None):
        """[flattened obs, action one-hots]; the null action (actions None, or keep == 0) is all zeros."""
        obs = obs.reshape(obs.shape[0], -1).float()
        if actions is None:
            return torch.cat([obs, obs.new_zeros(obs.shape[0], sum(self.sizes))], dim=-1)
        actions = actions.long().reshape(obs.shape[0], len(self.sizes))
        onehots = torch.cat([F.one_hot(actions[:, i], n) for i, n in enumerate(self.sizes)], dim=-1).float()
        if keep is not None:
            onehots = onehots * keep[:, None]
        return torch.cat([obs, onehots], dim=-1)

    def predict(self, obs: torch.Tensor, actions: torch.Tensor | None = None) -> torch.Tensor:
        """r_hat(s, a), or r_hat(s, null) without actions: the deterministic reverse chain, de-normalized."""
        x0 = self.chain(self.condition(obs, actions)).squeeze(-1)
        return self.target_mean.float() + self._std() * x0

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return {"r_hat": self.predict(batch[Columns.OBS], batch.get(Columns.ACTIONS))}

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        x0 = ((batch[TARGETS].float() - self.target_mean.float()) / self._std()).unsqueeze(-1)
        n = x0.shape[0]
        i = torch.randint(0, self.n_steps, (n,), device=x0.device)  # chain index t - 1
        noise = torch.randn_like(x0)
        xt = self.sqrt_abar[i, None] * x0 + self.sqrt_1m_abar[i, None] * noise
        keep = (torch.rand(n, device=x0.device) >= NULL_ACTION_PROB).float()
        cond = self.condition(batch[Columns.OBS], batch[Columns.ACTIONS], keep)
        return {"eps_pred": self.chain.eps(xt, i, cond), "eps": noise}

    @staticmethod
    def denoising_loss(fwd_out: dict[str, Any]) -> torch.Tensor:
        return F.mse_loss(fwd_out["eps_pred"], fwd_out["eps"])

    def compute_self_supervised_loss(self, *, learner, module_id, config, batch, fwd_out, **kwargs):
        loss = self.denoising_loss(fwd_out)
        learner.metrics.log_value((module_id, "reward_model_loss"), loss.detach(), window=1)
        self.num_updates += 1
        return loss

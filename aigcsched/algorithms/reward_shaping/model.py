"""The reward model: a conditional DDPM over a scalar reward (or its ablation, a plain MLP regressor),
one learner-only RLModule per policy.

`DiffusionRewardModel` conditions on (flattened observation, action one-hot(s)) and is trained with
the epsilon-prediction loss on running-normalized targets. r_hat(s, a) is its reverse chain run
deterministically (x_T = 0, posterior means), de-normalized. During training the action is
replaced by a null (all-zero) encoding with probability 1/2, as in classifier-free guidance, so the
same network also predicts r_hat(s, null) ~ E_a[r | s], the potential Phi(s) = eta * r_hat(s, null).
Its denoiser is the project's `DiffusionActor` with a 1-d "action" (the reward). As in RLlib's
intrinsic-curiosity example it implements `SelfSupervisedLossAPI`, so the Learner computes its
loss, gives it its own optimizer, checkpoints it with the policies and places it on the learner's
device; no agent maps to it and the algorithm's loss never trains it.

Two objectives (`labels`):
- uniform: every labelled row regresses its episode's return / length (the denoising loss on that
  target; the MLP's squared error).
- decomposition: randomized return decomposition (Ren et al., ICLR 2022): rows come in groups, each a
  random subset I of one episode's steps, and the loss is (R/T - mean_{t in I} r_hat(s_t, a_t))^2,
  minus the subset mean's sampling variance (1 - K/T) s^2 / K (their bias-corrected variant). No
  per-step target exists to denoise towards, so the diffusion model is trained end to end through
  its deterministic reverse chain, the same chain that generates r_hat for shaping. r_hat(s, null)
  (the potential's input) is trained on the same loss with the action left out.
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

from aigcsched.algorithms.diffusion.denoiser import DiffusionActor, mlp_actor

REWARD_MODEL_PREFIX = "_reward_model_"
TARGETS = "reward_targets"  # batch column of the reward model: the labels (an episode's return / length)
GROUPS = "reward_groups"  # decomposition: the subset (one episode's sampled steps) each row belongs to
LENGTHS = "episode_lengths"  # decomposition: the length T of each row's episode
NULL_ACTION_PROB = 0.5  # share of training rows whose action is dropped (for Phi(s))
X0_CLIP = 5.0  # the chain's x0 estimates, in normalized units (std of the targets)
# Decomposed per-step rewards may carry a whole episode's return on one step: far wider than return / length.
DECOMPOSITION_X0_CLIP = 50.0


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


def decomposition_loss(
    r_hat: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor, lengths: torch.Tensor, bias_correction: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Randomized return decomposition over the row groups (one group: K steps of one episode of
    length T, target R/T): (loss, plain loss), plain = mean over groups of (R/T - mean r_hat)^2;
    loss subtracts from it the unbiased estimate (1 - K/T) s^2 / K of the subset mean's variance
    (Ren et al. 2022), for groups of K >= 2. A minibatch may hold part of a group: still a random
    subset of its episode."""
    _, inv = torch.unique(groups, return_inverse=True)
    n_groups = int(inv.max()) + 1 if len(inv) else 0

    def group_sum(x):
        return x.new_zeros(n_groups).index_add(0, inv, x)

    counts = group_sum(torch.ones_like(r_hat))
    means = group_sum(r_hat) / counts
    error = (group_sum(targets.to(r_hat.dtype)) / counts - means) ** 2
    plain = error.mean()
    if not bias_correction:
        return plain, plain
    length = group_sum(lengths.to(r_hat.dtype)) / counts
    variance = group_sum((r_hat - means[inv]) ** 2) / (counts - 1).clamp(min=1)
    correction = torch.where(counts >= 2, (1 - counts / length).clamp(min=0) / counts * variance, 0.0)
    return (error - correction).mean(), plain


class RewardModel(TorchRLModule, SelfSupervisedLossAPI):
    """What both reward models share: target statistics, the condition, r_hat, the decomposition
    loss. model_config: `steps`, `width`, `labels` (uniform or decomposition), `bias_correction`,
    `null_action` (decomposition: also train r_hat(s, null))."""

    def setup(self):
        cfg = self.model_config or {}
        self.sizes = action_sizes(self.action_space)
        self.labels = cfg.get("labels", "uniform")
        if self.labels not in ("uniform", "decomposition"):
            raise ValueError(f"labels must be uniform or decomposition, got {self.labels!r}")
        self.bias_correction = bool(cfg.get("bias_correction", True))
        self.null_action = bool(cfg.get("null_action", True))
        self.build_network(observation_size(self.observation_space) + sum(self.sizes), int(cfg.get("width", 64)), cfg)
        # Running statistics of the targets (Chan et al.'s parallel Welford) and counters; buffers,
        # so they are checkpointed with the weights.
        for name in ("target_count", "target_mean", "target_m2"):
            self.register_buffer(name, torch.zeros((), dtype=torch.float64))
        self.register_buffer("num_labelled", torch.zeros((), dtype=torch.int64))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.int64))

    def build_network(self, cond_dim: int, width: int, cfg: dict) -> None:
        raise NotImplementedError

    def generate(self, cond: torch.Tensor) -> torch.Tensor:
        """r_hat in normalized units, one per row of `cond`."""
        raise NotImplementedError

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

    def normalize(self, targets: torch.Tensor) -> torch.Tensor:
        return (targets.float() - self.target_mean.float()) / self._std()

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
        """r_hat(s, a), or r_hat(s, null) without actions, de-normalized."""
        return self.target_mean.float() + self._std() * self.generate(self.condition(obs, actions))

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        return {"r_hat": self.predict(batch[Columns.OBS], batch.get(Columns.ACTIONS))}

    def _forward_train(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        if self.labels == "uniform":
            return self.uniform_forward_train(batch)
        out = {"r_hat": self.generate(self.condition(batch[Columns.OBS], batch[Columns.ACTIONS]))}
        if self.null_action:
            out["r_null"] = self.generate(self.condition(batch[Columns.OBS], None))
        return out

    def uniform_forward_train(self, batch: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def uniform_loss(self, fwd_out: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def decomposition_loss(self, fwd_out: dict[str, Any], batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, plain loss of r_hat(s, a)) in normalized units; the loss adds r_hat(s, null)'s."""
        columns = (self.normalize(batch[TARGETS]), batch[GROUPS], batch[LENGTHS], self.bias_correction)
        loss, plain = decomposition_loss(fwd_out["r_hat"], *columns)
        if "r_null" in fwd_out:
            loss = loss + decomposition_loss(fwd_out["r_null"], *columns)[0]
        return loss, plain

    def compute_self_supervised_loss(self, *, learner, module_id, config, batch, fwd_out, **kwargs):
        if self.labels == "uniform":
            loss = self.uniform_loss(fwd_out)
        else:
            loss, plain = self.decomposition_loss(fwd_out, batch)
            learner.metrics.log_value((module_id, "decomposition_train_loss"), plain.detach(), window=1)
        learner.metrics.log_value((module_id, "reward_model_loss"), loss.detach(), window=1)
        self.num_updates += 1
        return loss

    def _null_dropout(self, batch: dict[str, Any], n: int, device) -> torch.Tensor:
        keep = (torch.rand(n, device=device) >= NULL_ACTION_PROB).float()
        return self.condition(batch[Columns.OBS], batch[Columns.ACTIONS], keep)


class DiffusionRewardModel(RewardModel):
    """Conditional DDPM over a scalar reward; r_hat is its deterministic reverse chain (x_T = 0,
    posterior means) of `steps` (T) steps, the denoiser two layers of `width`."""

    def build_network(self, cond_dim: int, width: int, cfg: dict) -> None:
        self.n_steps = int(cfg.get("steps", 5))
        clip = X0_CLIP if self.labels == "uniform" else DECOMPOSITION_X0_CLIP
        self.chain = DiffusionActor(
            cond_dim, 1, n_steps=self.n_steps, hidden=(width, width), stochastic=False, x0_clip=clip
        )
        # Forward-noising constants sqrt(abar_t), sqrt(1 - abar_t), derived from the chain's own.
        sqrt_abar = 1.0 / self.chain.sqrt_recip_abar
        self.register_buffer("sqrt_abar", sqrt_abar, persistent=False)
        self.register_buffer("sqrt_1m_abar", self.chain.sqrt_recipm1_abar * sqrt_abar, persistent=False)

    def generate(self, cond: torch.Tensor) -> torch.Tensor:
        return self.chain(cond).squeeze(-1)

    def uniform_forward_train(self, batch: dict[str, Any]) -> dict[str, Any]:
        x0 = self.normalize(batch[TARGETS]).unsqueeze(-1)
        n = x0.shape[0]
        i = torch.randint(0, self.n_steps, (n,), device=x0.device)  # chain index t - 1
        noise = torch.randn_like(x0)
        xt = self.sqrt_abar[i, None] * x0 + self.sqrt_1m_abar[i, None] * noise
        return {"eps_pred": self.chain.eps(xt, i, self._null_dropout(batch, n, x0.device)), "eps": noise}

    @staticmethod
    def denoising_loss(fwd_out: dict[str, Any]) -> torch.Tensor:
        return F.mse_loss(fwd_out["eps_pred"], fwd_out["eps"])

    def uniform_loss(self, fwd_out: dict[str, Any]) -> torch.Tensor:
        return self.denoising_loss(fwd_out)


class MLPRewardModel(RewardModel):
    """The ablation: a plain regressor r_hat(s, a), two Mish layers of `width` (the denoiser's size)."""

    def build_network(self, cond_dim: int, width: int, cfg: dict) -> None:
        self.net = mlp_actor(cond_dim, 1, (width, width))

    def generate(self, cond: torch.Tensor) -> torch.Tensor:
        return self.net(cond).squeeze(-1)

    def uniform_forward_train(self, batch: dict[str, Any]) -> dict[str, Any]:
        x0 = self.normalize(batch[TARGETS])
        return {"x0_pred": self.generate(self._null_dropout(batch, x0.shape[0], x0.device)), "x0": x0}

    def uniform_loss(self, fwd_out: dict[str, Any]) -> torch.Tensor:
        return F.mse_loss(fwd_out["x0_pred"], fwd_out["x0"])


REWARD_MODELS = {"diffusion": DiffusionRewardModel, "mlp": MLPRewardModel}

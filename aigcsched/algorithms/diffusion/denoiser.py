"""The diffusion actor: a conditional denoiser whose reverse chain turns noise into action logits.

After the actor of D2SAC / AGOD (Du et al., "Diffusion-based Reinforcement Learning for Edge-enabled
AI-Generated Content Services", 2023), itself after Diffusion-QL (Wang et al. 2023): an
epsilon-prediction MLP eps(x_t, t, s) with a sinusoidal time embedding runs the DDPM reverse
chain x_T -> x_0 for T (default 5) steps, conditioned on the observation s; x_0 are the logits of
the action distribution (one block per branch of a MultiDiscrete action). Gradients flow through
the whole chain, so a policy-gradient or soft-Q loss on the logits trains the denoiser.

Two ways to run the chain:
- `stochastic=False` starts from x_T = 0 (the mean of the prior) and takes the posterior mean at
  every step, so the logits are a function of s alone; PPO needs this, because its importance
  ratio compares pi(a|s) computed when sampling with pi(a|s) recomputed in the learner.
- `stochastic=True` starts from N(0, I) and adds the posterior noise (the published actor).
A caller may also pass x_T itself (LAD-TS starts from the previous latent action).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from aigcsched.algorithms.diffusion.schedule import chain_constants


class SinusoidalTimeEmbedding(nn.Module):
    """t -> [sin(t w_k), cos(t w_k)] with geometric frequencies (Vaswani et al. 2017)."""

    def __init__(self, dim: int):
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"time embedding size must be an even number >= 2, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / max(half - 1, 1))
        self.register_buffer("freqs", freqs)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        angles = t.float()[..., None] * self.freqs
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class EpsilonMLP(nn.Module):
    """eps(x_t, t, s): Mish MLP on [x_t, embed(t), s]."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...] = (256, 256), time_dim: int = 16):
        super().__init__()
        if not hidden or any(h < 1 for h in hidden):
            raise ValueError(f"hidden needs one or more positive layer widths, got {hidden}")
        self.time_mlp = nn.Sequential(
            SinusoidalTimeEmbedding(time_dim),
            nn.Linear(time_dim, 2 * time_dim),
            nn.Mish(),
            nn.Linear(2 * time_dim, time_dim),
        )
        layers, width = [], action_dim + time_dim + obs_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.Mish()]
            width = h
        self.net = nn.Sequential(*layers, small_head(width, action_dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, self.time_mlp(t).expand(*x.shape[:-1], -1), obs], dim=-1))


class DiffusionActor(nn.Module):
    """obs (..., obs_dim) -> logits (..., action_dim) through T reverse denoising steps."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        n_steps: int = 5,
        schedule: str = "vp",
        hidden: tuple[int, ...] = (256, 256),
        stochastic: bool = False,
        x0_clip: float | None = None,
    ):
        super().__init__()
        if x0_clip is not None and not x0_clip > 0:
            raise ValueError(f"x0_clip must be > 0 or None, got {x0_clip}")
        self.n_steps, self.action_dim = n_steps, action_dim
        self.stochastic, self.x0_clip = stochastic, x0_clip
        for name, value in chain_constants(schedule, n_steps).items():
            self.register_buffer(name, torch.tensor(value, dtype=torch.float32))
        self.eps = EpsilonMLP(obs_dim, action_dim, tuple(hidden))

    def forward(self, obs: torch.Tensor, x_start: torch.Tensor | None = None) -> torch.Tensor:
        shape = (*obs.shape[:-1], self.action_dim)
        if x_start is not None:
            x = x_start
        elif self.stochastic:
            x = torch.randn(shape, device=obs.device)
        else:
            x = torch.zeros(shape, device=obs.device)
        for i in reversed(range(self.n_steps)):  # i = t - 1
            t = torch.tensor(i, device=obs.device)
            x0 = self.sqrt_recip_abar[i] * x - self.sqrt_recipm1_abar[i] * self.eps(x, t, obs)
            if self.x0_clip is not None:
                x0 = x0.clamp(-self.x0_clip, self.x0_clip)
            x = self.coef_x0[i] * x0 + self.coef_xt[i] * x
            if self.stochastic and i > 0:
                x = x + torch.exp(0.5 * self.log_var[i]) * torch.randn_like(x)
        return x


def mlp_actor(obs_dim: int, action_dim: int, hidden: tuple[int, ...] = (256, 256)) -> nn.Sequential:
    """The plain actor of the same width, for comparisons."""
    layers, width = [], obs_dim
    for h in hidden:
        layers += [nn.Linear(width, h), nn.Mish()]
        width = h
    return nn.Sequential(*layers, small_head(width, action_dim))


def small_head(width: int, out: int) -> nn.Linear:
    """Output layer with weights scaled to 1% and no bias, so the policy starts near uniform (as
    RLlib's default policy head). Without it the deterministic chain's first step, which multiplies
    eps by sqrt(1/abar_T - 1) (12.5 for vp, T = 5), starts PPO from a peaked random policy."""
    layer = nn.Linear(width, out)
    with torch.no_grad():
        layer.weight.mul_(0.01)
        layer.bias.zero_()
    return layer

"""The diffusion actor as an RLlib RLModule (new API stack) with a value function, for PPO.

`ACTION_DIST_INPUTS` are the denoised logits: a categorical for a `Discrete` action, one
categorical per branch for a `MultiDiscrete` one. The chain runs deterministically by default
(see `denoiser.py` for why PPO needs that). Plug it in with
`config.rl_module(rl_module_spec=diffusion_module_spec(...))`.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchCategorical, TorchMultiCategorical
from ray.rllib.core.rl_module.apis import ValueFunctionAPI
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.core.rl_module.torch import TorchRLModule
from torch import nn

from aigcsched.algorithms.diffusion.denoiser import DiffusionActor, mlp_actor
from aigcsched.algorithms.diffusion.settings import DEFAULTS, diffusion_model_config
from aigcsched.algorithms.few_explorers import FewExplorersMixin


def logit_layout(action_space: gym.Space) -> tuple[int, type]:
    """Number of logits and the RLlib distribution over them, for a (Multi)Discrete space."""
    if isinstance(action_space, gym.spaces.Discrete):
        return int(action_space.n), TorchCategorical
    if isinstance(action_space, gym.spaces.MultiDiscrete) and action_space.nvec.ndim == 1:
        lens = [int(n) for n in action_space.nvec]
        return sum(lens), TorchMultiCategorical.get_partial_dist_cls(input_lens=lens)
    raise ValueError(f"the diffusion actor needs a Discrete or 1-d MultiDiscrete action space, got {action_space}")


def obs_dim(observation_space: gym.Space) -> int:
    if not isinstance(observation_space, gym.spaces.Box):
        raise ValueError(f"the diffusion actor needs a Box observation space, got {observation_space}")
    return int(np.prod(observation_space.shape))


def actor_inputs(observation_space: gym.Space, mc: dict) -> int:
    """How many leading observation entries the actor reads (all, unless a centralized critic sees more)."""
    return mc.get("actor_obs_size") or obs_dim(observation_space)


def build_actor(observation_space: gym.Space, action_space: gym.Space, mc: dict) -> DiffusionActor:
    n_logits, _ = logit_layout(action_space)
    return DiffusionActor(
        actor_inputs(observation_space, mc),
        n_logits,
        n_steps=mc["n_steps"],
        schedule=mc["schedule"],
        hidden=mc["hidden"],
        stochastic=mc["stochastic"],
        x0_clip=mc["x0_clip"],
    )


class DiffusionActorModule(FewExplorersMixin, TorchRLModule, ValueFunctionAPI):
    """Diffusion actor + MLP critic (tanh), both on the flattened observation; with
    `actor_obs_size`, the actor reads only its leading entries (the agent's own observation) and
    the critic all of it (own observation and global state: a centralized critic).

    With `anchor_scale` > 0 the policy is a residual on a heuristic (residual policy learning:
    Silver et al. 2018, "Residual Policy Learning"; Johannink et al. 2019): the last n_logits
    entries of the actor's observation are the heuristic's prior logits (the env appends them),
    logits = actor(obs) + anchor_scale * prior, and the actor's output layer starts at zero, so
    the untrained policy's most likely action is the heuristic's."""

    def setup(self):
        mc = diffusion_model_config(**{k: v for k, v in (self.model_config or {}).items() if k in DEFAULTS})
        n_logits, self.action_dist_cls = logit_layout(self.action_space)
        self.actor_in = actor_inputs(self.observation_space, mc)
        self.actor = self._build_actor(mc)
        self.anchor_scale = mc["anchor_scale"]
        if self.anchor_scale:
            if n_logits > self.actor_in:
                raise ValueError(f"an anchored actor needs {n_logits} prior logits; it sees {self.actor_in} entries")
            self.prior = slice(self.actor_in - n_logits, self.actor_in)
            head = self.actor.eps.net[-1] if isinstance(self.actor, DiffusionActor) else self.actor[-1]
            nn.init.zeros_(head.weight)  # a zero epsilon keeps the deterministic chain at x = 0
        if not self.inference_only:
            layers, width = [], obs_dim(self.observation_space)
            for h in mc["vf_hidden"]:
                layers += [nn.Linear(width, h), nn.Tanh()]
                width = h
            self.critic = nn.Sequential(*layers, nn.Linear(width, 1))

    def _build_actor(self, mc: dict) -> nn.Module:
        return build_actor(self.observation_space, self.action_space, mc)

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        obs = batch[Columns.OBS].flatten(start_dim=1).float()[:, : self.actor_in]
        logits = self.actor(obs)
        if self.anchor_scale:
            logits = logits + self.anchor_scale * obs[:, self.prior]
        return {Columns.ACTION_DIST_INPUTS: logits}

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None):
        return self.critic(batch[Columns.OBS].flatten(start_dim=1).float()).squeeze(-1)


class MLPActorModule(DiffusionActorModule):
    """The same module with a plain MLP actor of the same widths (the reference)."""

    def _build_actor(self, mc: dict) -> nn.Module:
        return mlp_actor(self.actor_in, logit_layout(self.action_space)[0], mc["hidden"])


def diffusion_module_spec(mlp: bool = False, **options: Any) -> RLModuleSpec:
    """RLModuleSpec of the diffusion actor module (or its MLP twin) with checked options."""
    return RLModuleSpec(
        module_class=MLPActorModule if mlp else DiffusionActorModule, model_config=diffusion_model_config(**options)
    )

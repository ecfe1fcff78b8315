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


class DiffusionActorModule(TorchRLModule, ValueFunctionAPI):
    """Diffusion actor + MLP critic (tanh), both on the flattened observation; with
    `actor_obs_size`, the actor reads only its leading entries (the agent's own observation) and
    the critic all of it (own observation and global state: a centralized critic)."""

    def setup(self):
        mc = diffusion_model_config(**{k: v for k, v in (self.model_config or {}).items() if k in DEFAULTS})
        _, self.action_dist_cls = logit_layout(self.action_space)
        self.actor_in = actor_inputs(self.observation_space, mc)
        self.actor = build_actor(self.observation_space, self.action_space, mc)
        if not self.inference_only:
            layers, width = [], obs_dim(self.observation_space)
            for h in mc["vf_hidden"]:
                layers += [nn.Linear(width, h), nn.Tanh()]
                width = h
            self.critic = nn.Sequential(*layers, nn.Linear(width, 1))

    def _forward(self, batch: dict[str, Any], **kwargs) -> dict[str, Any]:
        obs = batch[Columns.OBS].flatten(start_dim=1).float()[:, : self.actor_in]
        return {Columns.ACTION_DIST_INPUTS: self.actor(obs)}

    def compute_values(self, batch: dict[str, Any], embeddings: Any = None):
        return self.critic(batch[Columns.OBS].flatten(start_dim=1).float()).squeeze(-1)


class MLPActorModule(DiffusionActorModule):
    """The same module with a plain MLP actor of the same widths (the reference)."""

    def setup(self):
        super().setup()
        mc = diffusion_model_config(**{k: v for k, v in (self.model_config or {}).items() if k in DEFAULTS})
        self.actor = mlp_actor(self.actor_in, logit_layout(self.action_space)[0], mc["hidden"])


def diffusion_module_spec(mlp: bool = False, **options: Any) -> RLModuleSpec:
    """RLModuleSpec of the diffusion actor module (or its MLP twin) with checked options."""
    return RLModuleSpec(
        module_class=MLPActorModule if mlp else DiffusionActorModule, model_config=diffusion_model_config(**options)
    )

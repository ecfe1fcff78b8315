"""Diffusion-model actors (denoising chain over action logits) and diffusion SAC."""

from aigcsched.algorithms.diffusion.denoiser import DiffusionActor, EpsilonMLP, SinusoidalTimeEmbedding, mlp_actor
from aigcsched.algorithms.diffusion.schedule import SCHEDULES, betas, chain_constants

__all__ = [
    "SCHEDULES",
    "DiffusionActor",
    "EpsilonMLP",
    "SinusoidalTimeEmbedding",
    "betas",
    "chain_constants",
    "mlp_actor",
]

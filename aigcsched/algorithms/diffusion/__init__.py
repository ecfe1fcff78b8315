"""Diffusion-model actors (denoising chain over action logits) and diffusion SAC.

The torch parts are imported on first use, so that configs can read the actor's settings cheaply.
"""

from __future__ import annotations

import importlib

from aigcsched.algorithms.diffusion.schedule import SCHEDULES, betas, chain_constants
from aigcsched.algorithms.diffusion.settings import DiffusionActorConfig

_LAZY = {name: "denoiser" for name in ("DiffusionActor", "EpsilonMLP", "SinusoidalTimeEmbedding", "mlp_actor")}

__all__ = ["SCHEDULES", "DiffusionActorConfig", "betas", "chain_constants", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

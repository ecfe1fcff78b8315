"""Options of the diffusion actor, validated once (torch-free, so configs read them cheaply)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from aigcsched.algorithms.diffusion.schedule import SCHEDULES


class DiffusionActorConfig(BaseModel):
    """Options of the diffusion actor (and of its MLP twin), checked once here."""

    model_config = ConfigDict(extra="forbid")

    n_steps: int = Field(5, ge=1, description="T, denoising steps of the chain (D2SAC / DDRL-ATS use 5)")
    schedule: Literal[SCHEDULES] = Field("vp", description="beta schedule of the chain")
    hidden: tuple[PositiveInt, ...] = Field((256, 256), min_length=1, description="actor layer widths")
    stochastic: bool = Field(
        False, description="sample the chain's noise (DSAC) instead of running it deterministically"
    )
    x0_clip: float | None = Field(
        None, gt=0, description="clip each step's denoised logits to [-c, c] (D2SAC clips to 1); none: no clip"
    )
    vf_hidden: tuple[PositiveInt, ...] = Field((256, 256), min_length=1, description="critic layer widths")
    actor_obs_size: PositiveInt | None = Field(
        None, description="the actor reads only the first n observation entries (a centralized critic reads all)"
    )
    anchor_scale: float = Field(
        0.0,
        ge=0,
        description="residual policy: logits = actor + anchor_scale x the prior logits that end the actor's "
        "observation (one per action logit), the actor's output starting at zero; 0: no anchor",
    )


DEFAULTS = DiffusionActorConfig().model_dump()


def diffusion_model_config(**overrides: Any) -> dict:
    """The actor's options with overrides, checked (ValueError on unknown keys or impossible values)."""
    try:
        return DiffusionActorConfig(**overrides).model_dump()
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc']))}: "
            + ("unknown diffusion actor option" if err["type"] == "extra_forbidden" else err["msg"])
            for err in e.errors()
        )
        raise ValueError(f"diffusion actor options: {problems}; known: {', '.join(DEFAULTS)}") from None

"""The settings of reward shaping, validated once: the experiment's `reward_shaping` section and
the argument of `add_reward_shaping`. Nothing downstream checks these numbers again."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

ShapingKind = Literal["none", "diffusion", "diffusion_potential", "diffusion_replace", "curiosity"]
SHAPING_KINDS = get_args(ShapingKind)
DIFFUSION_KINDS = ("diffusion", "diffusion_potential", "diffusion_replace")  # the kinds that train a reward model
Labels = Literal["uniform", "decomposition"]
Network = Literal["diffusion", "mlp"]


class RewardShapingConfig(BaseModel):
    """Reward shaping for sparse rewards: the diffusion reward model, or the curiosity bonus."""

    # NaN or inf would poison every shaped reward.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: ShapingKind = Field(
        "none",
        description="none; diffusion: r + eta * r_hat(s, a); diffusion_potential: r + gamma Phi(s') - Phi(s); "
        "diffusion_replace: r_hat(s, a) alone, for rewards paid only at the end (eta unused); "
        "curiosity: RLlib's distance-based novelty bonus (the peer method)",
    )
    eta: float = Field(
        0.4,
        gt=0,
        description="weight of the shaping term (the paper's 0.4); no shaping is kind: none, not a weight of 0",
    )
    # strict: a count is never a bool (lax mode reads True as 1) or a float
    steps: int = Field(5, ge=1, strict=True, description="denoising steps of the reward model")
    width: int = Field(64, ge=1, strict=True, description="hidden width of the reward model")
    warmup_steps: int = Field(
        1000, ge=0, strict=True, description="labelled steps (of finished episodes) before shaping starts"
    )
    lr: float = Field(1e-3, gt=0, description="Adam step size of the reward model")
    labels: Labels = Field(
        "uniform",
        description="the reward model's objective. uniform: every step of a finished episode regresses its "
        "return / length (IRCR's redistribution); decomposition: randomized return decomposition (Ren et al. "
        "2022), the mean r_hat over a random subset of an episode's steps regresses return / length, so the "
        "per-step r_hat sum to the return and differ between the actions of an episode",
    )
    network: Network = Field(
        "diffusion",
        description="what generates r_hat(s, a): diffusion (conditional DDPM, r_hat from its reverse chain) or "
        "mlp (a plain regressor of the same width, the ablation)",
    )
    subset: int = Field(
        64, ge=2, strict=True, description="decomposition: steps drawn per episode for the reward model's batch"
    )
    bias_correction: bool = Field(
        True,
        description="decomposition: subtract the subset mean's sampling variance (Ren et al.'s bias-corrected "
        "loss), so the loss estimates the whole episode's",
    )

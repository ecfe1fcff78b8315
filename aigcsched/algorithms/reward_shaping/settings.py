"""The settings of reward shaping, validated once: the experiment's `reward_shaping` section and
the argument of `add_reward_shaping`. Nothing downstream checks these numbers again."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

ShapingKind = Literal["none", "diffusion", "diffusion_potential", "curiosity"]
SHAPING_KINDS = get_args(ShapingKind)
DIFFUSION_KINDS = ("diffusion", "diffusion_potential")  # the kinds that train a reward model


class RewardShapingConfig(BaseModel):
    """Reward shaping for sparse rewards: the diffusion reward model, or the curiosity bonus."""

    # NaN or inf would poison every shaped reward.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    kind: ShapingKind = Field(
        "none",
        description="none; diffusion: r + eta * r_hat(s, a); diffusion_potential: r + gamma Phi(s') - Phi(s); "
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

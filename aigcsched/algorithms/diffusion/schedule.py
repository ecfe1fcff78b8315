"""Noise schedules of the denoising chain: beta_1..beta_T and the constants derived from them."""

from __future__ import annotations

import math

import numpy as np

SCHEDULES = ("vp", "linear", "cosine")


def betas(schedule: str, n_steps: int) -> np.ndarray:
    """beta_t for t = 1..T (float64); n_steps >= 1 is checked by DiffusionActorConfig."""
    t = np.arange(1, n_steps + 1, dtype=np.float64)
    if schedule == "vp":
        # Variance-preserving SDE discretized to T steps (Song et al. 2021), with the
        # b_min = 0.1, b_max = 10 of Diffusion-QL (Wang et al. 2023) and D2SAC (Du et al. 2023).
        b_min, b_max = 0.1, 10.0
        alphas = np.exp(-b_min / n_steps - 0.5 * (b_max - b_min) * (2 * t - 1) / n_steps**2)
        return 1.0 - alphas
    if schedule == "linear":
        # DDPM's 1e-4..0.02 over 1000 steps (Ho et al. 2020), rescaled to T steps.
        scale = 1000.0 / n_steps
        return np.linspace(scale * 1e-4, min(scale * 0.02, 0.999), n_steps)
    if schedule == "cosine":
        # Nichol & Dhariwal 2021, offset s = 0.008, betas capped at 0.999.
        s = 0.008
        f = np.cos((np.arange(n_steps + 1) / n_steps + s) / (1 + s) * math.pi / 2) ** 2
        return np.clip(1.0 - f[1:] / f[:-1], 0.0, 0.999)
    raise ValueError(f"unknown beta schedule {schedule!r}; choose from {', '.join(SCHEDULES)}")


def chain_constants(schedule: str, n_steps: int) -> dict[str, np.ndarray]:
    """What one reverse step needs, indexed by t - 1: x0 from (x_t, eps), and the Gaussian
    posterior q(x_{t-1} | x_t, x0) = N(c0 * x0 + ct * x_t, var)."""
    beta = betas(schedule, n_steps)
    alpha = 1.0 - beta
    abar = np.cumprod(alpha)
    abar_prev = np.concatenate([[1.0], abar[:-1]])
    var = beta * (1.0 - abar_prev) / (1.0 - abar)
    return {
        "sqrt_recip_abar": np.sqrt(1.0 / abar),
        "sqrt_recipm1_abar": np.sqrt(1.0 / abar - 1.0),
        "coef_x0": beta * np.sqrt(abar_prev) / (1.0 - abar),
        "coef_xt": (1.0 - abar_prev) * np.sqrt(alpha) / (1.0 - abar),
        # var is 0 at t = 1; its log is clipped there as in DDPM implementations.
        "log_var": np.log(np.maximum(var, 1e-20)),
    }

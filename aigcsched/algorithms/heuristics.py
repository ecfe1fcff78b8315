"""Reference schedulers for `edge`: the paper's random and greedy baselines, and myopic.

Each policy maps a batch of scheduling states (busy time and capability of every server, the
request's due window and penalty kind) to env actions (server, steps - 1), shape (B, 2).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from aigcsched.envs.edge import LATE_TOLERANCE_S, EdgeConfig, SchedulingState, penalty

Policy = Callable[[np.ndarray, SchedulingState], np.ndarray]  # (observations, state) -> actions

RANDOM_STEPS = 120  # the paper's random baseline always uses 120 inference steps


def random_policy(cfg: EdgeConfig, seed: int | None = None) -> Policy:
    """Paper's random baseline: a uniformly random server, 120 steps."""
    rng = np.random.default_rng(seed)
    steps = min(RANDOM_STEPS, cfg.max_steps)

    def act(obs: np.ndarray, state: SchedulingState) -> np.ndarray:
        batch = np.shape(state.due_in)
        server = rng.integers(0, cfg.n_servers, size=batch)
        return np.stack([server, np.full(batch, steps - 1)], axis=-1)

    return act


def greedy_policy(cfg: EdgeConfig) -> Policy:
    """Paper's greedy baseline: the server with the shortest remaining busy time (ties: lowest
    index), with the largest step count that still meets the due time (at least 1).

    One convention the paper leaves open: if that server cannot meet the due time even with one
    step but another server can, the request goes to the server whose one-step finish is
    earliest, so greedy is never late when lateness was avoidable."""

    def act(obs: np.ndarray, state: SchedulingState) -> np.ndarray:
        busy, cap = np.atleast_2d(state.busy_for), np.atleast_2d(state.capability)
        due_in = np.atleast_1d(state.due_in)
        rows = np.arange(len(due_in))
        server = np.argmin(busy, axis=1)
        one_step_finish = busy + 1.0 / cap
        can_meet = one_step_finish <= due_in[:, None] + LATE_TOLERANCE_S
        fallback = ~can_meet[rows, server] & can_meet.any(axis=1)
        earliest = np.argmin(one_step_finish, axis=1)
        server = np.where(fallback, earliest, server)
        slack = due_in - busy[rows, server]
        steps = np.clip(np.floor(slack * cap[rows, server]), 1, cfg.max_steps).astype(np.int64)
        return _shape_like(np.stack([server, steps - 1], axis=-1), state)

    return act


def myopic_policy(cfg: EdgeConfig) -> Policy:
    """For this request alone, the (server, steps) pair with the highest reward
    (ties: lowest server index, then fewest steps)."""
    steps = np.arange(1, cfg.max_steps + 1, dtype=np.float64)
    quality = cfg.quality_table()[1:]

    def act(obs: np.ndarray, state: SchedulingState) -> np.ndarray:
        busy, cap = np.atleast_2d(state.busy_for), np.atleast_2d(state.capability)
        due_in, kind = np.atleast_1d(state.due_in), np.atleast_1d(state.penalty)
        finish = busy[:, :, None] + steps / cap[:, :, None]  # (B, J, S) seconds after arrival
        tardiness = finish - due_in[:, None, None]
        tardiness[tardiness <= LATE_TOLERANCE_S] = 0.0
        reward = quality - cfg.tardiness_weight * penalty(tardiness, kind[:, None, None])
        best = reward.reshape(len(due_in), -1).argmax(axis=1)
        return _shape_like(np.stack(np.divmod(best, cfg.max_steps), axis=-1), state)

    return act


def _shape_like(actions: np.ndarray, state: SchedulingState) -> np.ndarray:
    """Drop the batch dimension again for an unbatched state."""
    return actions[0] if np.ndim(state.due_in) == 0 else actions


HEURISTICS: dict[str, Callable[..., Policy]] = {
    "random": random_policy,
    "greedy": greedy_policy,
    "myopic": myopic_policy,
}


def make_heuristic(name: str, cfg: EdgeConfig, seed: int | None = None) -> Policy:
    if name not in HEURISTICS:
        raise ValueError(f"unknown policy {name!r}; choose from {', '.join(HEURISTICS)}")
    return random_policy(cfg, seed) if name == "random" else HEURISTICS[name](cfg)

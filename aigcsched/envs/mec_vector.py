"""The `mec` problem batched: B independent episodes of all K stations stepped together with numpy."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from aigcsched.envs.mec import MECConfig, MECEnv, draw_instance

# numpy sums up to 7 values left to right (pairwise from 8 on): a sum written out column by
# column, or over a row padded with trailing zeros, then matches MECEnv's sums bit for bit.
_SEQUENTIAL_SUM = 7


# Reductions over a short last axis cost numpy a loop call per row; one elementwise operation
# per column is many times faster at these shapes.
def max_last(values: np.ndarray) -> np.ndarray:
    out = values[..., 0]
    for j in range(1, values.shape[-1]):
        out = np.maximum(out, values[..., j])
    return out


def min_last(values: np.ndarray) -> np.ndarray:
    out = values[..., 0]
    for j in range(1, values.shape[-1]):
        out = np.minimum(out, values[..., j])
    return out


def sum_last(values: np.ndarray) -> np.ndarray:
    """Sum over the last axis, left to right."""
    out = values[..., 0]
    for j in range(1, values.shape[-1]):
        out = out + values[..., j]
    return out


def count_last(values: np.ndarray) -> np.ndarray:
    """Number of True values over the last axis."""
    out = values[..., 0].astype(np.int64)
    for j in range(1, values.shape[-1]):
        out += values[..., j]
    return out


def row_sums(values: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Sum over the last axis of the first `size` entries (the rest are zeros), bit for bit as numpy
    sums the unpadded row. values: (..., M); size: values.shape[:size.ndim]."""
    if values.shape[-1] <= _SEQUENTIAL_SUM:
        return sum_last(values)
    out = np.empty(values.shape[:-1])
    for s in np.unique(size):
        rows = size == s
        out[rows] = values[rows][..., :s].sum(axis=-1)
    return out


def finish_together_batch(
    free_at: np.ndarray, tx: np.ndarray, proc: np.ndarray, now: float, size: np.ndarray
) -> np.ndarray:
    """`finish_together_shares` for R rows at once, with the same float operations per row.

    free_at, tx, proc: (R, M) values of each row's servers, the first size[r] valid (the rest
    padding); returns (R, M) shares, zeros in the padding."""
    valid = np.arange(free_at.shape[1]) < size[:, None]
    # padding never takes work: free at +inf, so done_by gives it max(0, -inf) = 0
    f = np.where(valid, free_at, np.inf)
    a = np.where(valid, tx, 0.0)
    b = np.where(valid, proc, 1.0)
    ab = a + b

    def done_by(T: np.ndarray) -> np.ndarray:  # T: (R, k) -> (R, k, M)
        T = T[..., None]
        return np.maximum(0.0, np.minimum((T - f[:, None]) / b[:, None], (T - now) / ab[:, None]))

    high = np.maximum(max_last(np.where(valid, f, -np.inf)), now) + min_last(np.where(valid, ab, np.inf))
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = np.where(a > 0, (f * ab - now * b) / a, np.inf)
    kinks = np.concatenate([np.full((len(f), 1), now), high[:, None], f, cross], axis=1)
    keep = np.isfinite(kinks) & (kinks >= now) & (kinks <= high[:, None])
    # dropped kinks become copies of `high`, the largest kept one; duplicates are skipped below
    kinks = np.sort(np.where(keep, kinks, high[:, None]), axis=1)
    total = row_sums(done_by(kinks), size)
    # total is non-decreasing along the sorted kinks (rounding is monotone), so the first kink
    # with total >= 1 comes after all those below 1; none: the last (high)
    i = np.minimum(count_last(total < 1.0), kinks.shape[1] - 1)
    rows = np.arange(len(f))
    hi = kinks[rows, i]
    j = count_last(kinks < hi[:, None]) - 1  # the previous distinct kink
    lo = kinks[rows, j]
    T = lo + (1.0 - total[rows, j]) * (hi - lo) / (total[rows, i] - total[rows, j])
    x = done_by(T[:, None])[:, 0]
    return x / row_sums(x, size)[:, None]


class MECVectorEnv:
    """B copies of `MECEnv` in one set of arrays: same spaces, observations, rewards, infos and tally.

    Episode i is seeded with seed + i and then draws exactly what `MECEnv` draws, so it replays the
    single env's episodes step for step; reset without a seed draws each episode's next instance
    from its own stream. All episodes last `episode_slots` slots and end together; there is no
    autoreset (call reset).

    Arrays: observations (B, K, obs_size) float32, actions (B, K) (subset) or (B, K, N) (weights),
    rewards (B, K), terminated / truncated (B,). Infos: arrays (B, K) of has_task, delay, transfer,
    queueing, processing (seconds, 0 without a task) and parts (0 without a task). tally: per
    episode running totals "tasks", "delay_s", "parts", arrays (B, K).

    Global state (B, state_size) float32, for a centralized critic, in blocks:
      [0, N)              every server's backlog, seconds until free (as in the observation)
      [N, 2N)             capacities / 50
      [2N, 2N + P)        core link rates / 500 of the P = N (N - 1) / 2 pairs i < j, row by row
      next K, K, K        every station's has_task, task Mbit / 5, task steps / 60 (0 without a task)
      last 1              slot / episode_slots (1 after the last slot)
    """

    def __init__(self, num_envs: int, config: MECConfig | dict | None = None, **overrides: Any):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        single = MECEnv(config, **overrides)
        self.cfg = cfg = single.cfg
        self.num_envs = B = num_envs
        self.possible_agents = list(single.possible_agents)
        self.n_agents = K = N = cfg.n_servers
        self.single_observation_space = single.observation_space(self.possible_agents[0])
        self.single_action_space = single.action_space(self.possible_agents[0])
        self._pairs = np.triu_indices(N, 1)
        self.state_size = 2 * N + len(self._pairs[0]) + 3 * K + 1
        self.state_space = spaces.Box(0.0, np.inf, shape=(self.state_size,), dtype=np.float32)
        if cfg.action_mode == "subset":
            # per Discrete action: its servers (padded with N), their number, mask, and rule
            rules, subsets = cfg.split_rules, cfg.subsets()
            n_actions = len(subsets) * len(rules)
            self._act_members = np.full((n_actions, cfg.max_split), N, dtype=np.int64)
            self._act_size = np.zeros(n_actions, dtype=np.int64)
            self._act_mask = np.zeros((n_actions, N), dtype=bool)
            self._act_splits = np.zeros(n_actions, dtype=bool)  # finish-together rule
            for action in range(n_actions):
                subset_idx, rule_idx = divmod(action, len(rules))
                members = subsets[subset_idx]
                self._act_members[action, : len(members)] = members
                self._act_size[action] = len(members)
                self._act_mask[action, list(members)] = True
                self._act_splits[action] = rules[rule_idx] == "finish_together"
        self._eye = np.eye(N)
        self._rows = np.arange(B)
        self._rngs = [np.random.default_rng() for _ in range(B)]
        self._slot = -1  # no episode yet

    # episode arrays -------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self._rngs = [np.random.default_rng(seed + i) for i in range(self.num_envs)]
        episodes = zip(*(draw_instance(rng, self.cfg) for rng in self._rngs), strict=True)
        self._cap, self._links, self._has_task, self._mbit, self._steps = (np.stack(field) for field in episodes)
        B, K, N = self.num_envs, self.n_agents, self.cfg.n_servers
        self._slot = 0
        self._free = np.zeros((B, N))  # absolute time each server's queue empties
        self.tally = {
            "tasks": np.zeros((B, K), dtype=np.int64),
            "delay_s": np.zeros((B, K)),
            "parts": np.zeros((B, K), dtype=np.int64),
        }
        # the parts of the observation fixed for the episode: capacities, own links, station index
        static = np.zeros((B, K, 3 + 4 * N), dtype=np.float32)
        static[:, :, 3 + N : 3 + 2 * N] = (self._cap / 50.0)[:, None, :]
        static[:, :, 3 + 2 * N : 3 + 3 * N] = np.minimum(self._links / 500.0, 1.0)  # own server (inf) shows as 1
        static[:, :, 3 + 3 * N :] = self._eye
        self._static_obs = static
        return self._observations(), {}

    @property
    def now(self) -> float:
        return self._slot * self.cfg.slot_s

    def _task(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """has_task, Mbit / 5 and steps / 60 of every station's task now, zeros without one."""
        if self._slot >= self.cfg.episode_slots:
            shape = (self.num_envs, self.n_agents)
            return np.zeros(shape, dtype=bool), np.zeros(shape), np.zeros(shape)
        t = self._slot
        has = self._has_task[:, t]
        return has, np.where(has, self._mbit[:, t] / 5.0, 0.0), np.where(has, self._steps[:, t] / 60.0, 0.0)

    def _observations(self) -> np.ndarray:
        N = self.cfg.n_servers
        obs = self._static_obs.copy()
        has, mbit, steps = self._task()
        obs[:, :, 0], obs[:, :, 1], obs[:, :, 2] = has, mbit, steps
        obs[:, :, 3 : 3 + N] = np.maximum(self._free - self.now, 0.0)[:, None, :]
        return obs

    def global_state(self) -> np.ndarray:
        """The system state of the slot, (B, state_size) float32; layout in the class docstring."""
        i, j = self._pairs
        has, mbit, steps = self._task()
        progress = np.full((self.num_envs, 1), self._slot / self.cfg.episode_slots)
        parts = [np.maximum(self._free - self.now, 0.0), self._cap / 50.0, self._links[:, i, j] / 500.0]
        return np.concatenate(parts + [has, mbit, steps, progress], axis=1).astype(np.float32)

    # stepping -------------------------------------------------------------------------------

    def step(self, actions: np.ndarray):
        cfg = self.cfg
        if not 0 <= self._slot < cfg.episode_slots:
            raise RuntimeError("no running episode: call reset() first")
        B, K, N = self.num_envs, self.n_agents, cfg.n_servers
        t, now = self._slot, self.now
        has = self._has_task[:, t]
        # transfer and processing seconds of each station's whole task on each server (B, K, N)
        tx = self._mbit[:, t, :, None] / self._links  # inf link -> 0 s
        proc = self._steps[:, t, :, None] / self._cap[:, None, :]
        actions = np.asarray(actions)
        if cfg.action_mode == "weights":
            shares = self._weight_shares(actions, has)
        else:
            shares = self._subset_shares(actions, has, tx, proc)

        placed = (shares > 0) & has[:, :, None]
        arrive = now + tx * shares
        work = proc * shares
        # tasks join the queues in station order (the shares were all chosen on the queues at the
        # start of the slot, as in MECEnv), so one station at a time over all episodes
        free = self._free
        start, end = np.empty((2, B, K, N))
        for k in range(K):
            np.maximum(arrive[:, k], free, out=start[:, k])
            np.add(start[:, k], work[:, k], out=end[:, k])
            np.copyto(free, end[:, k], where=placed[:, k])

        delay = max_last(np.where(placed, end, now)) - now
        infos = {
            "has_task": has.copy(),
            "delay": delay,
            "transfer": max_last(np.where(placed, arrive - now, 0.0)),
            "queueing": max_last(np.where(placed, start - arrive, 0.0)),
            "processing": max_last(np.where(placed, work, 0.0)),
            "parts": count_last(placed),
        }
        tally = self.tally
        tally["tasks"] += has
        tally["delay_s"] += delay  # 0 without a task
        tally["parts"] += infos["parts"]

        self._slot += 1
        done = self._slot >= cfg.episode_slots
        if cfg.reward_mode == "team":
            # left to right over stations, as MECEnv's sum() of the slot's delays
            rewards = np.repeat(-np.cumsum(delay, axis=1)[:, -1:], K, axis=1)
        elif cfg.reward_mode == "sparse":
            rewards = -tally["delay_s"] if done else np.zeros((B, K))
        else:
            rewards = -delay
        terminated = np.zeros(B, dtype=bool)
        truncated = np.full(B, done)
        return self._observations(), rewards, terminated, truncated, infos

    def _weight_shares(self, w: np.ndarray, has: np.ndarray) -> np.ndarray:
        """x_j ~ weight j; all zeros: the own server. (B, K, N)"""
        cfg = self.cfg
        if w.shape != (self.num_envs, self.n_agents, cfg.n_servers):
            raise ValueError(f"weights actions must have shape {(self.num_envs, self.n_agents, cfg.n_servers)}")
        if np.any(has[:, :, None] & ((w < 0) | (w >= cfg.weight_levels))):
            raise ValueError(f"weights must lie in 0..{cfg.weight_levels - 1}")
        w = w.astype(np.float64)
        total = sum_last(w)[..., None]  # sums of small integers: exact in any order
        return np.where(total > 0, w / np.where(total > 0, total, 1.0), self._eye)

    def _subset_shares(self, actions: np.ndarray, has: np.ndarray, tx: np.ndarray, proc: np.ndarray) -> np.ndarray:
        """A server subset and a split rule per station; (B, K, N) shares."""
        n_actions, B, K, N = len(self._act_size), self.num_envs, self.n_agents, self.cfg.n_servers
        if actions.shape != (B, K):
            raise ValueError(f"subset actions must have shape {(B, K)}")
        if np.any(has & ((actions < 0) | (actions >= n_actions))):
            raise ValueError(f"subset actions must lie in 0..{n_actions - 1}")
        actions = np.where(has, actions, 0)
        members, size = self._act_members[actions], self._act_size[actions]
        cap = np.concatenate([self._cap, np.zeros((B, 1))], axis=1)  # padding (server N) adds 0
        own_cap = row_sums(cap[self._rows[:, None, None], members], size)
        shares = np.where(self._act_mask[actions], self._cap[:, None, :] / own_cap[..., None], 0.0)  # x_j ~ c_j
        split = np.flatnonzero(has & self._act_splits[actions])
        if len(split):
            b, k = split // K, split % K
            idx = members[b, k]
            near = np.minimum(idx, N - 1)  # any server for the padding, which the split ignores
            x = finish_together_batch(
                self._free[b[:, None], near],
                tx[b[:, None], k[:, None], near],
                proc[b[:, None], k[:, None], near],
                self.now,
                size[b, k],
            )
            padded = np.zeros((len(split), N + 1))  # the padding lands in the extra column
            padded[np.arange(len(split))[:, None], idx] = x
            shares[b, k] = padded[:, :N]
        return shares

"""The `mec` problem batched: B independent episodes of all K stations stepped together with numpy."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from aigcsched.envs.mec import MECConfig, MECEnv, draw_instance

# Inside, arrays keep the batch axis last ((N, K, B): server, station, episode), so every numpy
# call loops over B contiguous values; the few, short server and station axes are walked in Python.
# The public arrays are (B, ...) as usual.

# numpy sums up to 7 values left to right (pairwise from 8 on): a sum written out term by term,
# with zeros for padding, then matches MECEnv's sums of the unpadded values bit for bit.
_SEQUENTIAL_SUM = 7


def sum_first(values: np.ndarray) -> np.ndarray:
    """Sum over the first axis, left to right."""
    out = values[0]
    for v in values[1:]:
        out = out + v
    return out


def max_first(values: np.ndarray) -> np.ndarray:
    out = values[0]
    for v in values[1:]:
        out = np.maximum(out, v)
    return out


def min_first(values: np.ndarray) -> np.ndarray:
    out = values[0]
    for v in values[1:]:
        out = np.minimum(out, v)
    return out


def count_first(values: np.ndarray) -> np.ndarray:
    """Number of True values over the first axis."""
    out = values[0].astype(np.int64)
    for v in values[1:]:
        out += v
    return out


def row_sums(values: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Sum over the first axis of the first `size` entries (the rest are zeros), bit for bit as numpy
    sums those entries alone. values: (M, ...); size broadcasts to values.shape[1:]."""
    if len(values) <= _SEQUENTIAL_SUM:
        return sum_first(values)
    size = np.broadcast_to(size, values.shape[1:])
    out = np.empty(values.shape[1:])
    for s in np.unique(size):
        cols = size == s
        out[cols] = np.ascontiguousarray(values[:s, cols].T).sum(axis=1)  # numpy's order: a contiguous row
    return out


def finish_together_batch(
    free_at: np.ndarray, tx: np.ndarray, proc: np.ndarray, now: float, size: np.ndarray
) -> np.ndarray:
    """`finish_together_shares` for R splits at once, with the same float operations per split.

    free_at, tx, proc: (M, R), column r holding split r's servers, the first size[r] valid (the
    rest padding); returns (M, R) shares, zeros in the padding."""
    valid = np.arange(len(free_at))[:, None] < size
    # padding never takes work: free at +inf, so done_by gives it max(0, -inf) = 0
    f = np.where(valid, free_at, np.inf)
    a = np.where(valid, tx, 0.0)
    b = np.where(valid, proc, 1.0)
    ab = a + b

    def done_by(T: np.ndarray) -> np.ndarray:  # T: (k, R) -> (M, k, R)
        return np.maximum(0.0, np.minimum((T - f[:, None]) / b[:, None], (T - now) / ab[:, None]))

    high = np.maximum(max_first(np.where(valid, f, -np.inf)), now) + min_first(np.where(valid, ab, np.inf))
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = np.where(a > 0, (f * ab - now * b) / a, np.inf)
    kinks = np.concatenate([np.full((1, len(high)), now), high[None], f, cross])
    keep = np.isfinite(kinks) & (kinks >= now) & (kinks <= high)
    # dropped kinks become copies of `high`, the largest kept one; duplicates are skipped below
    kinks = np.sort(np.where(keep, kinks, high), axis=0)
    total = row_sums(done_by(kinks), size)
    # total is non-decreasing along the sorted kinks (rounding is monotone), so the first kink
    # with total >= 1 comes after all those below 1; none: the last (high)
    i = np.minimum(count_first(total < 1.0), len(kinks) - 1)
    cols = np.arange(len(high))
    hi = kinks[i, cols]
    j = count_first(kinks < hi) - 1  # the previous distinct kink
    lo = kinks[j, cols]
    T = lo + (1.0 - total[j, cols]) * (hi - lo) / (total[i, cols] - total[j, cols])
    x = done_by(T[None])[:, 0]
    return x / row_sums(x, size)


class MECVectorEnv:
    """B copies of `MECEnv` in one set of arrays: same spaces, observations, rewards, infos and tally.

    Episode i is seeded with seed + i and then draws exactly what `MECEnv` draws, so it replays the
    single env's episodes step for step; reset without a seed draws each episode's next instance
    from its own stream. All episodes last `episode_slots` slots and end together; there is no
    autoreset (call reset).

    Arrays: observations (B, K, obs_size) float32, actions (B, K) (subset) or (B, K, N) (weights),
    rewards (B, K), terminated / truncated (B,). Infos: arrays (B, K) of has_task, delay, transfer,
    queueing, processing (seconds, 0 without a task) and parts (0 without a task). tally: per
    episode running totals "tasks", "delay_s", "parts", arrays (B, K) (new arrays at each reset).
    As in MECEnv, the action of a station without a task is ignored; an action outside the action
    space for a station with a task is an error.

    With `observe_lookahead`, the last A = #actions entries of each observation are MECEnv's
    look-ahead, and with `observe_booked_work` the A x N entries before it MECEnv's booked work,
    computed for all episodes, stations and actions at once (`_action_blocks`).

    With `decision: in_turn`, each step is one turn, the same station's (`turn`) in every episode:
    only its action counts, as in MECEnv; a slot takes K steps.

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
        self.num_envs = num_envs
        self.in_turn = cfg.decision == "in_turn"
        self.possible_agents = list(single.possible_agents)
        self.n_agents = N = cfg.n_servers
        self.single_observation_space = single.observation_space(self.possible_agents[0])
        self.single_action_space = single.action_space(self.possible_agents[0])
        self._pairs = np.triu_indices(N, 1)
        self.state_size = 2 * N + len(self._pairs[0]) + 3 * N + 1
        self.state_space = spaces.Box(0.0, np.inf, shape=(self.state_size,), dtype=np.float32)
        if cfg.action_mode == "subset":
            # per Discrete action: its servers (padded with N), their number, mask, and rule
            rules, subsets = cfg.split_rules, cfg.subsets()
            n_actions = len(subsets) * len(rules)
            self._act_members = np.full((cfg.max_split, n_actions), N, dtype=np.int64)
            self._act_size = np.zeros(n_actions, dtype=np.int64)
            self._act_mask = np.zeros((N, n_actions), dtype=bool)
            self._act_splits = np.zeros(n_actions, dtype=bool)  # finish-together rule
            for action in range(n_actions):
                subset_idx, rule_idx = divmod(action, len(rules))
                members = subsets[subset_idx]
                self._act_members[: len(members), action] = members
                self._act_size[action] = len(members)
                self._act_mask[list(members), action] = True
                self._act_splits[action] = rules[rule_idx] == "finish_together"
            self._act_by_cap = np.flatnonzero(~self._act_splits)
            self._act_ft_one = np.flatnonzero(self._act_splits & (self._act_size == 1))
            self._act_ft_many = np.flatnonzero(self._act_splits & (self._act_size > 1))
        self._splits = None  # (slot, k, b, shares by member) of the look-ahead, for step
        self._own = np.eye(N)[:, :, None]  # (N, K, 1): station k's own server
        self._rngs = [np.random.default_rng() for _ in range(num_envs)]
        self._slot = -1  # no episode yet

    # episodes -------------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self._rngs = [np.random.default_rng(seed + i) for i in range(self.num_envs)]
        episodes = zip(*(draw_instance(rng, self.cfg) for rng in self._rngs), strict=True)
        cap, links, has_task, mbit, steps = (np.stack(field, axis=-1) for field in episodes)  # episode axis last
        B, N = self.num_envs, self.cfg.n_servers
        self._cap = cap  # (N, B)
        self._links = links.transpose(1, 0, 2).copy()  # (server, station, B)
        self._has_task, self._mbit, self._steps = has_task, mbit, steps  # (slots, K, B)
        self._slot = 0
        self.turn = 0  # the station on turn (in_turn; always 0 when all decide at once)
        self._free = np.zeros((N, B))  # absolute time each server's queue empties
        self._pushed = np.zeros((N, N, B))  # reward_mode marginal: MECEnv.pushed (server, station)
        self.tally = {
            "tasks": np.zeros((B, N), dtype=np.int64),
            "delay_s": np.zeros((B, N)),
            "parts": np.zeros((B, N), dtype=np.int64),
        }
        # the parts of the observation fixed for the episode: capacities, own links, station index
        static = np.zeros((B, N, self.single_observation_space.shape[0]), dtype=np.float32)
        static[:, :, 3 + N : 3 + 2 * N] = (cap / 50.0).T[:, None, :]
        static[:, :, 3 + 2 * N : 3 + 3 * N] = np.minimum(links / 500.0, 1.0).transpose(2, 0, 1)  # own (inf): 1
        static[:, :, 3 + 3 * N : 3 + 4 * N] = np.eye(N)
        self._static_obs = static
        return self._observations(), {}

    @property
    def now(self) -> float:
        return self._slot * self.cfg.slot_s

    def _deciding(self) -> np.ndarray:
        """(K, B): the stations whose task this step books (all with a task, or the one on turn)."""
        has = self._has_task[self._slot]
        if not self.in_turn:
            return has
        return has & (np.arange(self.n_agents) == self.turn)[:, None]

    def _task(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """has_task, Mbit / 5 and steps / 60 of every station's task now (K, B), zeros without one."""
        if self._slot >= self.cfg.episode_slots:
            zeros = np.zeros((self.n_agents, self.num_envs))
            return zeros.astype(bool), zeros, zeros
        t = self._slot
        has = self._has_task[t]
        return has, np.where(has, self._mbit[t] / 5.0, 0.0), np.where(has, self._steps[t] / 60.0, 0.0)

    def _observations(self) -> np.ndarray:
        N = self.cfg.n_servers
        obs = self._static_obs.copy()
        has, mbit, steps = self._task()
        obs[:, :, 0], obs[:, :, 1], obs[:, :, 2] = has.T, mbit.T, steps.T
        obs[:, :, 3 : 3 + N] = np.maximum(self._free - self.now, 0.0).T[:, None, :]
        if self.cfg.observe_lookahead or self.cfg.observe_booked_work:
            lookahead, work = self._action_blocks()
            if self.cfg.observe_booked_work:
                obs[:, :, 3 + 4 * N : 3 + 4 * N + work[0, 0].size] = work.reshape(*work.shape[:2], -1)
            if self.cfg.observe_lookahead:
                obs[:, :, -lookahead.shape[-1] :] = lookahead
        return obs

    def _action_blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """MECEnv.lookahead (B, K, A) and MECEnv.booked_work (B, K, A, N) of every station with a task
        now, zeros elsewhere; with `lookahead_anticipation`, on the queues each station expects
        (MECEnv.expected_queues)."""
        B, K, N, A = self.num_envs, self.n_agents, self.cfg.n_servers, len(self._act_size)
        lookahead, work = np.zeros((B, K, A)), np.zeros((B, K, A, N))
        self._splits = None
        if self._slot >= self.cfg.episode_slots:
            return lookahead, work
        t = self._slot
        k, b = np.nonzero(self._deciding())
        anticipation = self.cfg.anticipation
        free = self._expected_free(anticipation)[k, :, b].T if anticipation else self._free[:, b]
        steps = self._steps[t, k, b]
        x, finish = self._action_splits(k, b, self._mbit[t, k, b], steps, free)
        lookahead[b, k] = (min_first(finish) - finish).T
        if self.cfg.observe_booked_work:
            # processing seconds by member (M, A, P), scattered to the servers (the padding row N drops)
            P, members = len(k), self._act_members[:, :, None]
            proc = np.ones((N + 1, P))
            proc[:N] = steps / self._cap[:, b]  # as MECEnv.part_costs
            at = members, np.arange(A)[:, None], np.arange(P)
            booked = np.zeros((N + 1, A, P))
            booked[at] = proc[members, at[2]] * x
            work[b, k] = booked[:N].transpose(2, 1, 0)
        if not anticipation:  # splits on the actual queues: `step` then only picks the chosen ones
            self._splits = (t, self.turn, k, b, x)
        return lookahead, work

    def _action_splits(
        self, k: np.ndarray, b: np.ndarray, mbit: np.ndarray, steps: np.ndarray, queues: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Every action's split (M, A, P), by member as `_act_members`, and finish time from now
        (A, P) of P tasks (station k[p] of episode b[p], `mbit`, `steps`) on `queues` (N, P), with
        the same float operations as MECEnv.split and finish_after."""
        B, N, A, now = self.num_envs, self.cfg.n_servers, len(self._act_size), self.now
        P = len(k)
        # per server (N, then a padding server that never takes work) and task column
        tx, proc, free = np.zeros((N + 1, P)), np.ones((N + 1, P)), np.zeros((N + 1, P))
        tx[:N] = mbit / self._links[:, k, b]  # inf link -> 0 s
        proc[:N] = steps / self._cap[:, b]
        free[:N] = queues
        members = self._act_members
        x = np.zeros((len(members), A, P))
        # capacity rule: x_j ~ c_j, the same for every station of an episode
        acts = self._act_by_cap
        cap = np.concatenate([self._cap, np.zeros((1, B))])[members[:, acts]]  # (M, a, B), padding 0
        x[:, acts] = (cap / row_sums(cap, self._act_size[acts, None]))[..., b]
        # finish-together rule: one server takes it all (v / v = 1 in MECEnv), else a column per
        # (action, task)
        x[0, self._act_ft_one] = 1.0
        acts = self._act_ft_many
        if len(acts) and P:
            idx = np.repeat(members[:, acts], P, axis=1)  # (M, a * P), action-major
            col = np.tile(np.arange(P), len(acts))
            size = np.repeat(self._act_size[acts], P)
            x[:, acts] = finish_together_batch(free[idx, col], tx[idx, col], proc[idx, col], now, size).reshape(
                len(members), len(acts), P
            )
        at = members[:, :, None], np.arange(P)
        end = np.maximum(now + tx[at] * x, free[at]) + proc[at] * x
        return x, max_first(np.where(x > 0, end, -np.inf)) - now

    def _expected_free(self, load: float) -> np.ndarray:
        """(K, N, B) MECEnv.expected_queues(load) of every episode: station by station, each books a
        task of `load` x the mean expected one where myopic would put it on the queues so far."""
        cfg, B, K, N = self.cfg, self.num_envs, self.n_agents, self.cfg.n_servers
        scale = load * cfg.arrival_prob
        mbit, steps = np.full(B, scale * sum(cfg.task_mbit) / 2), np.full(B, scale * sum(cfg.task_steps) / 2)
        b, now = np.arange(B), self.now
        free = self._free.copy()
        rows = np.empty((K, N, B))
        for k in range(K):
            rows[k] = free
            if k + 1 == K:
                break
            x, finish = self._action_splits(np.full(B, k), b, mbit, steps, free)
            best = np.argmin(finish, axis=0)  # the first of the earliest, as np.argmin in MECEnv
            shares = np.zeros((N + 1, B))  # row N: the padding
            shares[self._act_members[:, best], b] = x[:, best, b]
            x = shares[:N]
            # MECEnv._place: arrive, start and end of the parts on the servers with x_j > 0
            start = np.maximum(now + mbit / self._links[:, k] * x, free)
            free = np.where(x > 0, start + steps / self._cap * x, free)
        return rows

    def global_state(self) -> np.ndarray:
        """The system state of the slot, (B, state_size) float32; layout in the class docstring."""
        i, j = self._pairs
        backlog = np.maximum(self._free - self.now, 0.0)
        progress = np.full((1, self.num_envs), self._slot / self.cfg.episode_slots)
        state = np.concatenate([backlog, self._cap / 50.0, self._links[j, i] / 500.0, *self._task(), progress])
        return np.ascontiguousarray(state.T, dtype=np.float32)

    # steps ----------------------------------------------------------------------------------

    def step(self, actions: np.ndarray):
        cfg = self.cfg
        if not 0 <= self._slot < cfg.episode_slots:
            raise RuntimeError("no running episode: call reset() first")
        K = self.n_agents
        t, now = self._slot, self.now
        has = self._deciding()  # (K, B)
        # transfer and processing seconds of each station's whole task on each server (N, K, B)
        tx = self._mbit[t] / self._links  # inf link -> 0 s
        proc = self._steps[t] / self._cap[:, None, :]
        actions = np.asarray(actions)
        if cfg.action_mode == "weights":
            shares = self._weight_shares(actions, has)
        else:
            shares = self._subset_shares(actions, has, tx, proc)

        placed = (shares > 0) & has
        arrive = now + tx * shares
        work = proc * shares
        # tasks join the queues in station order (the shares were all chosen on the queues at the
        # start of the slot, as in MECEnv), so one station at a time over all episodes
        free = self._free
        marginal = cfg.reward_mode == "marginal"
        added = np.zeros((K, self.num_envs))  # marginal: delay each station's bookings added this step
        start, end = np.zeros((2, *shares.shape))  # zeros where no task is booked
        for k in [self.turn] if self.in_turn else range(K):
            np.maximum(arrive[:, k], free, out=start[:, k])
            np.add(start[:, k], work[:, k], out=end[:, k])
            if marginal:
                self._push(k, placed[:, k], arrive[:, k], end[:, k], work[:, k], added)
            np.copyto(free, end[:, k], where=placed[:, k])

        delay = max_first(np.where(placed, end, now)) - now  # (K, B), 0 without a task
        parts = count_first(placed)
        infos = {
            "has_task": has.T.copy(),
            "delay": delay.T.copy(),
            "transfer": max_first(np.where(placed, arrive - now, 0.0)).T.copy(),
            "queueing": max_first(np.where(placed, start - arrive, 0.0)).T.copy(),
            "processing": max_first(np.where(placed, work, 0.0)).T.copy(),
            "parts": parts.T.copy(),
        }
        tally = self.tally
        tally["tasks"] += infos["has_task"]
        tally["delay_s"] += infos["delay"]
        tally["parts"] += infos["parts"]

        self.turn += self.in_turn
        if self.turn == K or not self.in_turn:
            self._slot, self.turn = self._slot + 1, 0
        done = self._slot >= cfg.episode_slots
        if cfg.reward_mode == "team":
            # left to right over stations, as MECEnv's sum() of the slot's delays
            rewards = np.repeat(-sum_first(delay)[:, None], K, axis=1)
        elif cfg.reward_mode == "sparse":
            rewards = -tally["delay_s"] if done else np.zeros((self.num_envs, K))
        elif marginal:
            rewards = -(delay + added).T
        else:
            rewards = -infos["delay"]
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.full(self.num_envs, done)
        return self._observations(), rewards, terminated, truncated, infos

    def _push(
        self, k: int, placed: np.ndarray, arrive: np.ndarray, end: np.ndarray, work: np.ndarray, added: np.ndarray
    ) -> None:
        """MECEnv._push for station k's task in every episode (placed, arrive, end, work: (N, B)):
        adds to `added` (K, B) and updates the pushes, where the task has parts."""
        free, pushed = self._free[:, None], self._pushed
        shift = np.minimum(np.maximum(free - arrive[:, None], 0.0), pushed)  # (N, K, B)
        now = self.now
        finish = max_first(np.where(placed, end, now))  # (B,)
        without = max_first(np.where(placed[:, None], end[:, None] - shift, now))  # (K, B)
        has = placed.any(axis=0)
        gain = np.where(has, finish - without, 0.0)
        gain[k] = 0.0
        added += gain
        shift[:, k] = np.maximum(arrive - free[:, 0], 0.0) + pushed[:, k] + work
        np.copyto(pushed, shift, where=placed[:, None])

    def _weight_shares(self, actions: np.ndarray, has: np.ndarray) -> np.ndarray:
        """x_j ~ weight j; all zeros: the own server. (N, K, B)"""
        cfg, shape = self.cfg, (self.num_envs, self.n_agents, self.cfg.n_servers)
        if actions.shape != shape:
            raise ValueError(f"weights actions must have shape {shape}")
        w = actions.transpose(2, 1, 0).astype(np.float64, order="C")
        if np.any(has & ((w < 0) | (w >= cfg.weight_levels))):
            raise ValueError(f"weights must lie in 0..{cfg.weight_levels - 1}")
        total = sum_first(w)  # sums of small integers: exact in any order
        return np.where(total > 0, w / np.where(total > 0, total, 1.0), self._own)

    def _subset_shares(self, actions: np.ndarray, has: np.ndarray, tx: np.ndarray, proc: np.ndarray) -> np.ndarray:
        """A server subset and a split rule per station; (N, K, B) shares."""
        n_actions, B, K, N = len(self._act_size), self.num_envs, self.n_agents, self.cfg.n_servers
        if actions.shape != (B, K):
            raise ValueError(f"subset actions must have shape {(B, K)}")
        actions = actions.T
        if np.any(has & ((actions < 0) | (actions >= n_actions))):
            raise ValueError(f"subset actions must lie in 0..{n_actions - 1}")
        if self._splits is not None and self._splits[:2] == (self._slot, self.turn):
            # the look-ahead split every action on these queues: pick the chosen ones
            _, _, k, b, x = self._splits
            chosen = actions[k, b]
            shares = np.zeros((N + 1, K, B))  # row N: the padding
            shares[self._act_members[:, chosen], k, b] = x[:, chosen, np.arange(len(k))]
            return shares[:N]  # stations without a task: no shares (ignored)
        actions = np.where(has, actions, 0)
        members, size = self._act_members[:, actions], self._act_size[actions]  # (M, K, B), (K, B)
        cap = np.concatenate([self._cap, np.zeros((1, B))])  # the padding (server N) adds 0
        subset_cap = row_sums(cap[members, np.arange(B)], size)
        shares = np.where(self._act_mask[:, actions], self._cap[:, None, :] / subset_cap, 0.0)  # x_j ~ c_j
        split = np.flatnonzero(has & self._act_splits[actions])
        if len(split):
            k, b = split // B, split % B
            idx = members[:, k, b]  # (M, R)
            near = np.minimum(idx, N - 1)  # any server for the padding, which the split ignores
            x = finish_together_batch(self._free[near, b], tx[near, k, b], proc[near, k, b], self.now, size[k, b])
            padded = np.zeros((N + 1, len(split)))  # the padding lands in the extra row
            padded[idx, np.arange(len(split))] = x
            shares[:, k, b] = padded[:N]
        return shares

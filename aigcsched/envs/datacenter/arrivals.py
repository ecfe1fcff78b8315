"""A slot's new jobs: each provider keeps a share in its own queue and hands the rest to one other
provider, where they land after the hand-off delay; the sender pays the receiver a fee per job.

Queues are (executor, age bucket, class, origin) integer arrays: bucket 0 holds late jobs, bucket
1 + a the jobs of age A - 1 - a slots (oldest first), so the newest jobs go to bucket A.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from aigcsched.envs.datacenter.config import DataCenterConfig
from aigcsched.envs.datacenter.queues import QueueLayout


class Arrived(NamedTuple):
    """Per provider (as origin) this slot."""

    arrivals: list[int]
    handed_out: list[int]
    fees_paid: list[float]
    fees_received: list[float]


class Arrivals:
    def __init__(self, cfg: DataCenterConfig):
        k = cfg.n_asps
        self._mix = np.asarray(cfg.class_mix)
        self._handoff_share = (1.0 - np.asarray(cfg.keep_levels)).tolist()
        self._others = [[j for j in range(k) if j != i] for i in range(k)]  # action target -> provider
        self._n_classes = len(cfg.deadline_slots)
        self._newest = max(cfg.deadline_slots)
        self._delay = cfg.handoff_delay_slots
        self._fee = cfg.handoff_fee
        # for route_batch: the same tables as arrays
        self._share_arr = 1.0 - np.asarray(cfg.keep_levels)
        self._others_arr = np.array(self._others, dtype=np.int64).reshape(k, k - 1)
        self._places = QueueLayout(cfg)

    def draw(self, rng: np.random.Generator, rate: np.ndarray) -> np.ndarray:
        """Arrivals of a whole episode, (slot, origin, class), from mean rates (K, T): they do not
        depend on actions, and one draw is much faster than one per slot."""
        lam = (rate.T[:, :, None] * self._mix).copy()
        return rng.poisson(lam)

    def route(self, q: np.ndarray, transit: np.ndarray, arrivals: list, keep: list, target: list, t: int) -> Arrived:
        """Put slot t's arrivals [origin][class] into the queues q, by each provider's keep level
        and hand-off target; `transit` is the ring of jobs on their way, (delay, exec, class, origin).
        Nested lists, not numpy: a handful of numbers."""
        k, n_classes = len(arrivals), self._n_classes
        share = [self._handoff_share[j] for j in keep]
        handed = [[int(n * share[i] + 0.5) for n in row] for i, row in enumerate(arrivals)]
        dest = [self._others[i][target[i]] for i in range(k)]
        kept = [[[0] * k for _ in range(n_classes)] for _ in range(k)]  # [exec][class][origin]
        sent = [[[0] * k for _ in range(n_classes)] for _ in range(k)]
        for i in range(k):
            row, gone, to = arrivals[i], handed[i], dest[i]
            for c in range(n_classes):
                kept[i][c][i] = row[c] - gone[c]
                sent[to][c][i] = gone[c]
        newest, delay = self._newest, self._delay
        if delay:
            ring = transit[t % delay]
            q[:, newest - delay] += ring  # jobs sent `delay` slots ago land, aged by their transit
            ring[:] = sent
            q[:, newest] = kept
        else:
            q[:, newest] = np.add(kept, sent)

        n_handed = [sum(row) for row in handed]
        fees = [n * self._fee for n in n_handed]
        fees_received = [0.0] * k
        for i in range(k):
            fees_received[dest[i]] += fees[i]
        return Arrived([sum(row) for row in arrivals], n_handed, fees, fees_received)

    def route_batch(
        self, queue: np.ndarray, transit: np.ndarray, arrivals: np.ndarray, keep: np.ndarray, target: np.ndarray, t: int
    ) -> Arrived:
        """`route` for B episodes at once: queue (B, exec, places) as laid out by `QueueLayout`,
        transit (B, delay, exec, class, origin), arrivals (B, origin, class), keep and target (B, K).
        Arrived holds (B, K) arrays, the same numbers as `route`'s."""
        b, k = keep.shape
        envs, sites = np.arange(b)[:, None], np.arange(k)
        handed = (arrivals * self._share_arr[keep][..., None] + 0.5).astype(np.int64)  # int() of a share >= 0
        dest = self._others_arr[sites, target]  # (B, origin)
        newest = self._places.newest.T  # (origin, class); empty here (aged last slot)
        queue[envs[..., None], sites[:, None], newest] = arrivals - handed
        if self._delay:
            ring = transit[:, t % self._delay]  # (B, exec, class, origin)
            queue[..., self._places.landing.ravel()] += ring.reshape(b, k, -1)  # aged by their transit
            ring[:] = 0
            ring[envs, dest, :, sites] = handed
        else:
            queue[envs[..., None], dest[..., None], newest] = handed

        # sums over classes with einsum: numpy's reduce is slow on many short rows
        n_handed = np.einsum("...c->...", handed)
        fees = n_handed * self._fee
        # summed over senders in index order, from 0.0, as `route` does
        fees_received = np.bincount((envs * k + dest).ravel(), weights=fees.ravel(), minlength=b * k).reshape(b, k)
        return Arrived(np.einsum("...c->...", arrivals), n_handed, fees, fees_received)

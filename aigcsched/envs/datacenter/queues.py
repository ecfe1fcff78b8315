"""The batched env's queues: each executor's waiting jobs as one row of places in serving order.

DataCenterEnv keeps (executor, bucket, class, origin) arrays (bucket 0: late jobs, bucket 1 + a: the
jobs of age A - 1 - a slots). A job of class c is never in buckets 1 .. A - d_c (it is late by
then), so the batched env leaves those (bucket, class) pairs out: a row holds, in the same serving
order, bucket 0's classes, then each bucket's classes that can wait there, each with one place per
origin. With deadlines (2, 4, 12) that is 21 of 39 pairs, and every pass over the queues (the most
time of a batched slot) reads about half as much. `QueueLayout` gives each phase the places it needs.
"""

from __future__ import annotations

import numpy as np

from aigcsched.envs.datacenter.config import DataCenterConfig


class QueueLayout:
    """Flat indices into an executor's row of `size` places; arrays over (class, origin) are (C, K)."""

    def __init__(self, cfg: DataCenterConfig):
        deadlines, k = cfg.deadline_slots, cfg.n_asps
        newest = max(deadlines)
        pairs = [(0, c) for c in range(len(deadlines))]
        pairs += [(b, c) for b in range(1, newest + 1) for c, d in enumerate(deadlines) if b > newest - d]
        index = {pair: i for i, pair in enumerate(pairs)}
        origins = np.arange(k)

        def places(bucket_of_class) -> np.ndarray:
            """(C, K): the places of (bucket_of_class(c, d), c) for each origin."""
            rows = [index[(bucket_of_class(c, d), c)] for c, d in enumerate(deadlines)]
            return np.array(rows)[:, None] * k + origins

        self.size = len(pairs) * k
        self.late = places(lambda c, d: 0)  # the first C x K places
        self.newest = places(lambda c, d: newest)  # where this slot's jobs go
        self.landing = places(lambda c, d: newest - cfg.handoff_delay_slots)  # jobs sent `delay` slots ago
        self.due = places(lambda c, d: newest + 1 - d)  # age deadline - 1: late after this slot's service
        self.late_or_due = np.zeros(self.size, dtype=bool)  # (size,): what this slot must serve
        self.late_or_due[np.concatenate([self.late.ravel(), self.due.ravel()])] = True
        # aging: every place but the late and the newest takes the jobs of the same class one bucket
        # newer, as a few runs of consecutive places (slices copy faster than index arrays)
        self.aging: list[tuple[slice, slice]] = []
        for b, c in pairs:
            if 0 < b < newest:
                dst, src = index[(b, c)] * k, index[(b + 1, c)] * k
                last = self.aging[-1] if self.aging else None
                if last and last[0].stop == dst and last[1].stop == src:
                    self.aging[-1] = (slice(last[0].start, dst + k), slice(last[1].start, src + k))
                else:
                    self.aging.append((slice(dst, dst + k), slice(src, src + k)))
        # the (bucket, class) pairs after the late ones, by class; one-hot maps of the places: their
        # origin; their class, or late (last column)
        waiting = [c for b, c in pairs if b]
        self.pairs_of_class = [np.flatnonzero(np.equal(waiting, c)) for c in range(len(deadlines))]
        self.origin_of = np.tile(np.eye(k), (len(pairs), 1))
        self.class_of = np.eye(len(deadlines) + 1)[np.repeat([c if b else len(deadlines) for b, c in pairs], k)]

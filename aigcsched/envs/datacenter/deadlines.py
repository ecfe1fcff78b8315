"""Deadlines: after service, jobs of class c still waiting at age deadline - 1 become late and pay
their penalty, once (they stay queued, to be served first); the rest grow a slot older. At the
episode's end every job not yet late, queued or in transit, pays its penalty then."""

from __future__ import annotations

import numpy as np

from aigcsched.envs.datacenter.config import DataCenterConfig


class Deadlines:
    def __init__(self, cfg: DataCenterConfig):
        n_classes, k = len(cfg.deadline_slots), cfg.n_asps
        # bucket of the jobs of age deadline - 1 (bucket 0: late, bucket 1 + a: age A - 1 - a), and
        # their places in an executor's queue flattened to (bucket, class, origin)
        deadline_row = 1 + max(cfg.deadline_slots) - np.asarray(cfg.deadline_slots)
        self._due = (((deadline_row * n_classes + np.arange(n_classes)) * k)[:, None] + np.arange(k)).ravel()
        self._late = n_classes * k  # bucket 0's places
        self._class_origin = (n_classes, k)
        self._penalty_and_count = np.stack([np.asarray(cfg.late_penalty), np.ones(n_classes)])  # (2, C)

    def age(self, queue: np.ndarray, transit: np.ndarray, settle: bool) -> np.ndarray:
        """Age the queues in place: `queue` (exec, bucket x class x origin) is each executor's queue
        flattened in serving order, a view of the (exec, bucket, class, origin) array; with `settle`
        (the last slot), move everything pending, in transit (delay, exec, class, origin) too, to
        late. Any leading axes are episodes. Returns (..., 2, origin): penalty USD and violations."""
        bucket = self._late  # places per bucket; bucket 0 holds the late jobs
        missed = queue[..., self._due]  # (exec, C x origin)
        queue[..., :bucket] += missed
        queue[..., self._due] = 0
        # over executors: for one episode sum is faster, for many einsum (numpy's reduce is slow on short rows)
        missed_oc = missed.sum(axis=0) if missed.ndim == 2 else np.einsum("...ep->...p", missed)
        queue[..., bucket:-bucket] = queue[..., 2 * bucket :]  # one slot older; the oldest bucket is empty here
        queue[..., -bucket:] = 0
        if settle:
            q = queue.reshape(queue.shape[:-1] + (-1,) + self._class_origin)
            pending = q[..., 1:, :, :].sum(axis=-3) + transit.sum(axis=-4)  # (exec, C, origin)
            missed_oc = missed_oc + pending.sum(axis=-3).reshape(missed_oc.shape)
            q[..., 0, :, :] += pending
            q[..., 1:, :, :] = 0
            transit[:] = 0
        return self._penalty_and_count @ missed_oc.reshape(missed_oc.shape[:-1] + self._class_origin)

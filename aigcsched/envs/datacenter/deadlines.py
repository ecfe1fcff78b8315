"""Deadlines: after service, jobs of class c still waiting at age deadline - 1 become late and pay
their penalty, once (they stay queued, to be served first); the rest grow a slot older. At the
episode's end every job not yet late, queued or in transit, pays its penalty then."""

from __future__ import annotations

import numpy as np

from aigcsched.envs.datacenter.config import DataCenterConfig
from aigcsched.envs.datacenter.queues import QueueLayout


def due_places(cfg: DataCenterConfig) -> np.ndarray:
    """(bucket, class) bool over DataCenterEnv's queue layout: the places whose jobs are late after
    this slot's service unless it serves them, the late bucket and each class's deadline bucket."""
    due = np.zeros((max(cfg.deadline_slots) + 1, len(cfg.deadline_slots)), dtype=bool)
    due[0] = True
    due[1 + max(cfg.deadline_slots) - np.asarray(cfg.deadline_slots), np.arange(len(cfg.deadline_slots))] = True
    return due


def jobs_due(waiting: np.ndarray, due: np.ndarray, last: bool = False) -> np.ndarray:
    """(...,) the jobs a slot's service must run so that none pays its penalty: waiting (..., places)
    in serving order, due (places,) bool; every job up to the last due place that holds one (first
    come first served runs the ones before it first), or in the episode's `last` slot every job."""
    ahead = np.cumsum(waiting, axis=-1)
    return ahead[..., -1] if last else np.max(np.where(due & (waiting > 0), ahead, 0), axis=-1)


class Deadlines:
    def __init__(self, cfg: DataCenterConfig):
        n_classes = len(cfg.deadline_slots)
        # bucket of the jobs of age deadline - 1 (bucket 0: late, bucket 1 + a: age A - 1 - a)
        self._deadline_row = 1 + max(cfg.deadline_slots) - np.asarray(cfg.deadline_slots)
        self._classes = np.arange(n_classes)
        self._penalty_and_count = np.stack([np.asarray(cfg.late_penalty), np.ones(n_classes)])  # (2, C)
        self._layout = QueueLayout(cfg)
        self._class_origin = (n_classes, cfg.n_asps)

    def age(self, q: np.ndarray, transit: np.ndarray, settle: bool) -> tuple[list[float], list[float]]:
        """Age the queues q (exec, bucket, class, origin) in place; with `settle` (the last slot),
        move everything pending, in transit too, to late. (penalty USD, violations) per origin."""
        rows, cls = self._deadline_row, self._classes
        missed = q[:, rows, cls, :]  # (exec, C, origin)
        q[:, 0] += missed
        q[:, rows, cls, :] = 0
        missed_oc = missed.sum(axis=0)  # (C, origin)
        q[:, 1:-1] = q[:, 2:]  # one slot older; the oldest bucket is empty here
        q[:, -1] = 0
        if settle:
            pending = q[:, 1:].sum(axis=1) + transit.sum(axis=0)  # (exec, C, origin)
            missed_oc = missed_oc + pending.sum(axis=0)
            q[:, 0] += pending
            q[:, 1:] = 0
            transit[:] = 0
        penalty, violations = (self._penalty_and_count @ missed_oc).tolist()
        return penalty, violations

    def age_batch(self, queue: np.ndarray, transit: np.ndarray, settle: bool) -> np.ndarray:
        """`age` for B episodes at once: queue (B, exec, places) as laid out by `QueueLayout`,
        transit (B, delay, exec, class, origin). Returns (B, 2, origin): penalty USD and violations,
        the same numbers as `age`'s."""
        places = self._layout
        missed = queue[..., places.due.ravel()]  # (B, exec, C x origin)
        queue[..., : places.late.size] += missed
        # one slot older (each run's source lies after its places and after every earlier run's); the
        # due places take newer jobs or are the newest, so they end up emptied
        for older, newer in places.aging:
            queue[..., older] = queue[..., newer]
        queue[..., places.newest.ravel()] = 0
        missed_oc = np.einsum("...ep->...p", missed)  # over executors; numpy's sum is slow on short rows
        if settle:
            b, k = queue.shape[:2]
            waiting = queue[..., places.late.size :].reshape(b, k, -1, k)  # (B, exec, pair, origin)
            pending = np.stack([waiting[:, :, pairs].sum(axis=2) for pairs in places.pairs_of_class], axis=2)
            pending = (pending + transit.sum(axis=1)).reshape(b, k, -1)  # (B, exec, C x origin)
            missed_oc = missed_oc + pending.sum(axis=1)
            queue[..., : places.late.size] += pending
            queue[..., places.late.size :] = 0
            transit[:] = 0
        return self._penalty_and_count @ missed_oc.reshape(missed_oc.shape[:-1] + self._class_origin)

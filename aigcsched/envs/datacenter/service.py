"""Service: each data center runs its queue first come first served (late jobs first) on its GPUs,
at this slot's inference steps and power cap; a job partly done at the end of a slot carries over."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from aigcsched.envs.datacenter.config import DataCenterConfig
from aigcsched.envs.datacenter.queues import QueueLayout


class Served(NamedTuple):
    """executed, remaining, busy: per data center; revenue, quality_sum, served: per origin."""

    executed: list[int]  # jobs run on this data center's GPUs
    remaining: list[int]  # jobs still waiting there
    busy: list[float]  # GPUs busy over the slot (GPU-equivalents)
    revenue: list[float]  # USD
    quality_sum: list[float]
    served: list[float]


class Service:
    def __init__(self, cfg: DataCenterConfig):
        self._slot_s = cfg.slot_minutes * 60.0
        self._gpus = [float(g) for g in cfg.n_gpus]
        self._gpu_s = (np.asarray(cfg.n_gpus, dtype=np.float64) * self._slot_s).tolist()  # GPU seconds per slot
        self._sec_per_job = cfg.seconds_per_job().tolist()  # [k][level][cap]
        quality = cfg.quality()
        self._quality = quality.tolist()
        self._revenue = (cfg.revenue_per_quality * quality).tolist()
        # for serve_batch: the same tables as arrays
        self._sec_arr = cfg.seconds_per_job()
        self._gpus_arr = np.asarray(self._gpus)
        self._gpu_s_arr = np.asarray(self._gpu_s)
        self._per_job_arr = np.stack([cfg.revenue_per_quality * quality, quality, np.ones_like(quality)], axis=1)
        self._origin_of = QueueLayout(cfg).origin_of
        self._work_arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def serve(self, q: np.ndarray, level: list, cap: list, carry: list[float]) -> Served:
        """Serve from the queues q (exec, bucket, class, origin) in place, oldest bucket first;
        `carry` (per data center, updated) is the fraction of a job already processed."""
        k = len(q)
        sec = [self._sec_per_job[i][level[i]][cap[i]] for i in range(k)]
        capacity = [self._gpu_s[i] / sec[i] + carry[i] for i in range(k)]
        flat = q.reshape(k, -1)
        reached = np.minimum(np.cumsum(flat, axis=1), np.array([[int(c)] for c in capacity]))
        served_flat = reached.copy()
        served_flat[:, 1:] -= reached[:, :-1]
        flat -= served_flat
        executed = reached[:, -1].tolist()
        remaining = flat.sum(axis=1).tolist()
        served_eo = served_flat.reshape(k, -1, k).sum(axis=1)  # [exec, origin]
        busy = []
        for i in range(k):
            if remaining[i] > 0:  # jobs remain: the GPUs were busy all slot
                busy.append(self._gpus[i])
                carry[i] = capacity[i] - int(capacity[i])
            else:
                busy.append(min(max(executed[i] - carry[i], 0.0) * sec[i] / self._slot_s, self._gpus[i]))
                carry[i] = 0.0
        # the executor's model and steps decide quality and revenue; the origin gets them
        per_job = [
            [self._revenue[i][level[i]] for i in range(k)],
            [self._quality[i][level[i]] for i in range(k)],
            [1.0] * k,
        ]
        revenue, quality_sum, served = (np.array(per_job) @ served_eo).tolist()
        return Served(executed, remaining, busy, revenue, quality_sum, served)

    def serve_batch(self, queue: np.ndarray, level: np.ndarray, cap: np.ndarray, carry: np.ndarray) -> Served:
        """`serve` for B episodes at once: queue (B, exec, places) as laid out by `QueueLayout`, level,
        cap and carry (B, K); Served holds (B, K) arrays, the same numbers as `serve`'s."""
        b, k = level.shape
        sites = np.arange(k)
        sec = self._sec_arr[sites, level, cap]
        capacity = self._gpu_s_arr / sec + carry
        whole = capacity.astype(np.int64)  # int() of a positive capacity
        flat = queue.reshape(b * k, -1)  # a row per data center
        reached, served_flat, as_float = self._work(flat.shape)
        # every row's prefix sums as one 1-D cumsum (one long loop instead of B x K short ones): a row
        # serves the jobs up to the jobs of the rows before it (`before`) plus its capacity
        np.cumsum(flat.ravel(), out=reached.ravel())
        before = reached[:, 0] - flat[:, 0]
        waiting = reached[:, -1] - before
        np.minimum(reached, (before + whole.ravel())[:, None], out=reached)
        np.subtract(reached.ravel()[1:], reached.ravel()[:-1], out=served_flat.ravel()[1:])
        served_flat[:, 0] = reached[:, 0] - before
        flat -= served_flat
        executed = (reached[:, -1] - before).reshape(b, k)
        remaining = waiting.reshape(b, k) - executed
        # per (exec, origin), as one matrix product of floats: sums of whole numbers, exact in any order
        np.copyto(as_float, served_flat)
        served_eo = (as_float @ self._origin_of).reshape(b, k, k)
        full = remaining > 0  # jobs remain: the GPUs were busy all slot
        done = np.maximum(executed - carry, 0.0) * sec / self._slot_s
        busy = np.where(full, self._gpus_arr, np.minimum(done, self._gpus_arr))
        carry[:] = np.where(full, capacity - whole, 0.0)
        # one (3, exec) @ (exec, origin) product per episode, as in `serve`
        per_job = self._per_job_arr[sites, :, level].swapaxes(-1, -2)  # (B, 3, exec)
        revenue, quality_sum, served = np.moveaxis(per_job @ served_eo, -2, 0)
        return Served(executed, remaining, busy, revenue, quality_sum, served)

    def _work(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """serve_batch's work arrays, kept from slot to slot: allocating arrays of this size every
        slot costs more (page faults) than the arithmetic on them."""
        if self._work_arrays is None or self._work_arrays[0].shape != shape:
            self._work_arrays = (np.empty(shape, np.int64), np.empty(shape, np.int64), np.empty(shape))
        return self._work_arrays

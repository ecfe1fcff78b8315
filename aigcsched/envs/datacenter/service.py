"""Service: each data center runs its queue first come first served (late jobs first) on its GPUs,
at this slot's inference steps and power cap; a job partly done at the end of a slot carries over."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from aigcsched.envs.datacenter.config import DataCenterConfig


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

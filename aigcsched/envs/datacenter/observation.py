"""The agents' observations, float32 rows of `obs_size` columns: own queue per deadline class, own
late backlog, busy GPU share, battery state of charge | price now and ahead, on-site renewable
power, sin and cos of the local time | last slot's arrivals | the others' queues | the others'
prices | (optional) one-hot of the agent. Columns known in advance are computed once per episode."""

from __future__ import annotations

import numpy as np

from aigcsched.envs.datacenter.config import DataCenterConfig
from aigcsched.envs.datacenter.inputs import EpisodeInputs


class Observations:
    def __init__(self, cfg: DataCenterConfig):
        k = cfg.n_asps
        self._cfg = cfg
        self._n_classes = len(cfg.deadline_slots)
        self._others = np.array([[j for j in range(k) if j != i] for i in range(k)])
        self._others_l = self._others.tolist()
        # normalizers: jobs over a slot's capacity at the middle step level, power over peak IT load
        gpus = np.asarray(cfg.n_gpus, dtype=np.float64)
        sec_per_job = cfg.seconds_per_job()[:, len(cfg.step_levels) // 2, int(np.argmax(cfg.power_cap_levels))]
        self._jobs = np.maximum(gpus * (cfg.slot_minutes * 60.0) / sec_per_job, 1.0).tolist()
        self._kw = np.maximum(gpus * (np.asarray(cfg.gpu_power_w) + cfg.host_power_w) / 1000.0, 1e-9)
        self._gpus = [float(g) for g in cfg.n_gpus]
        self._battery_kwh = np.maximum(np.asarray(cfg.battery_kwh, dtype=np.float64), 1e-12).tolist()
        self._col_static = self._n_classes + 3  # first column known in advance
        self._col_arrivals = self._col_static + 1 + len(cfg.forecast_hours) + 3

    def known_in_advance(self, inputs: EpisodeInputs) -> np.ndarray:
        """(T, K, obs_size): the episode's observations with the columns that do not depend on
        actions filled in (day-ahead prices are known in advance)."""
        cfg, k = self._cfg, self._cfg.n_asps
        static = np.zeros((cfg.episode_slots, k, cfg.obs_size), dtype=np.float32)
        c0, c1 = self._col_static, self._col_arrivals
        static[:, :, c0] = inputs.price.T / 100.0
        static[:, :, c0 + 1 : c1 - 3] = inputs.forecast.transpose(1, 0, 2) / 100.0
        static[:, :, c1 - 3] = (inputs.renewable_kw / self._kw[:, None]).T
        static[:, :, c1 - 2] = np.sin(2 * np.pi * inputs.local_hour / 24).T
        static[:, :, c1 - 1] = np.cos(2 * np.pi * inputs.local_hour / 24).T
        static[:, :, c1 + k : c1 + 2 * k - 1] = (inputs.price.T / 100.0)[:, self._others]
        if cfg.agent_id_in_obs:
            static[:, :, c1 + 2 * k - 1 :] = np.eye(k, dtype=np.float32)
        return static

    def at_slot(
        self, static: np.ndarray, q: np.ndarray, busy: list[float], soc_kwh: list[float], arrivals: list[int]
    ) -> np.ndarray:
        """(K, obs_size): a slot's row of `known_in_advance` with the queue (q: exec, bucket,
        class, origin), GPU, battery and last-arrivals columns filled in."""
        k, c, col = len(busy), self._n_classes, self._col_arrivals
        obs = static.copy()
        by_class = q[:, 1:].sum(axis=(1, 3)).tolist()
        late = q[:, 0].sum(axis=(1, 2)).tolist()
        norm, gpus, kwh = self._jobs, self._gpus, self._battery_kwh
        rows, total = [], []
        for i in range(k):
            queue = [n / norm[i] for n in by_class[i]] + [late[i] / norm[i]]
            total.append(sum(queue))
            rows.append(queue + [busy[i] / gpus[i], soc_kwh[i] / kwh[i]])
        obs[:, : c + 3] = rows
        obs[:, col : col + k] = [[arrivals[i] / norm[i]] + [total[j] for j in self._others_l[i]] for i in range(k)]
        return obs

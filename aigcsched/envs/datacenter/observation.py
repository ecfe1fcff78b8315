"""The agents' observations, float32 rows of `obs_size` columns: own queue per deadline class, own
late backlog, busy GPU share, battery state of charge | price now and ahead, on-site renewable
power, sin and cos of the local time | last slot's arrivals | the others' queues | the others'
prices | (optional) one-hot of the agent | (optional, `observe_lookahead`) the combined heuristic's
action, one-hot per action branch, filled in by the envs (see `lookahead`). Columns known in
advance are computed once per episode."""

from __future__ import annotations

import numpy as np

from aigcsched.envs.datacenter.config import DataCenterConfig
from aigcsched.envs.datacenter.inputs import EpisodeInputs
from aigcsched.envs.datacenter.queues import QueueLayout


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
        # for the batched methods: the same normalizers as arrays
        self._jobs_arr = np.asarray(self._jobs)
        self._gpus_arr = np.asarray(self._gpus)
        self._battery_kwh_arr = np.asarray(self._battery_kwh)
        self._class_of = QueueLayout(cfg).class_of
        self._as_float: np.ndarray | None = None

    @property
    def renewable_column(self) -> int:
        """The column of on-site renewable power, the one column of `known_in_advance` that is weather."""
        return self._col_arrivals - 3

    def known_in_advance(self, inputs: EpisodeInputs) -> np.ndarray:
        """(T, K, obs_size): the episode's observations with the columns that do not depend on
        actions filled in (day-ahead prices are known in advance). For the inputs of a batch of
        episodes (axes of episodes in front), (T, ..., K, obs_size)."""
        cfg, k = self._cfg, self._cfg.n_asps
        static = np.zeros((cfg.episode_slots, *inputs.price.shape[:-1], cfg.obs_size), dtype=np.float32)
        c0, c1 = self._col_static, self._col_arrivals
        # (..., K, T) -> (T, ..., K), as a transpose: np.moveaxis costs more than the rest for one episode
        slot_first = (inputs.price.ndim - 1, *range(inputs.price.ndim - 1))
        price = inputs.price.transpose(slot_first) / 100.0
        static[..., c0] = price
        static[..., c0 + 1 : c1 - 3] = inputs.forecast.transpose(slot_first + (-1,)) / 100.0
        static[..., self.renewable_column] = (inputs.renewable_kw / self._kw[:, None]).transpose(slot_first)
        static[..., c1 - 2] = np.sin(2 * np.pi * inputs.local_hour / 24).transpose(slot_first)
        static[..., c1 - 1] = np.cos(2 * np.pi * inputs.local_hour / 24).transpose(slot_first)
        static[..., c1 + k : c1 + 2 * k - 1] = price[..., self._others]
        if cfg.agent_id_in_obs:
            static[..., c1 + 2 * k - 1 : c1 + 3 * k - 1] = np.eye(k, dtype=np.float32)
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

    def at_slot_batch(
        self, static: np.ndarray, queue: np.ndarray, busy: np.ndarray, soc_kwh: np.ndarray, arrivals: np.ndarray
    ) -> np.ndarray:
        """`at_slot` for B episodes at once: static (B, K, obs_size), queue (B, exec, places) as laid
        out by `QueueLayout`, the rest (B, K); returns (B, K, obs_size), the same numbers as `at_slot`'s."""
        b, k = busy.shape
        c, col, norm = self._n_classes, self._col_arrivals, self._jobs_arr
        obs = static.copy()
        # jobs per class and late, as one matrix product of floats: sums of whole numbers, exact in any
        # order; the float copy's array is kept from slot to slot (a fresh one costs page faults)
        flat = queue.reshape(b * k, -1)
        if self._as_float is None or self._as_float.shape != flat.shape:
            self._as_float = np.empty(flat.shape)
        np.copyto(self._as_float, flat)
        counts = (self._as_float @ self._class_of).reshape(b, k, c + 1)
        queue = counts / norm[:, None]
        total = queue[..., 0]
        for j in range(1, c + 1):  # left to right, as `sum` adds
            total = total + queue[..., j]
        obs[..., : c + 1] = queue
        obs[..., c + 1] = busy / self._gpus_arr
        obs[..., c + 2] = soc_kwh / self._battery_kwh_arr
        obs[..., col] = arrivals / norm
        obs[..., col + 1 : col + k] = total[:, self._others]
        return obs

    def global_state(
        self, obs: np.ndarray, transit: np.ndarray, renewable_ahead_kw: np.ndarray, elapsed: float
    ) -> np.ndarray:
        """(B, state_size) float32 (layout: `DataCenterVectorEnv.global_state`) from the agents'
        observations (B, K, obs_size), the jobs in transit (B, delay, exec, class, origin), on-site
        renewable power at each of `forecast_hours` (B, K, F) and the share of the episode elapsed."""
        b = len(obs)
        own = obs[..., : self._col_arrivals + 1]  # up to last slot's arrivals
        to_k = transit.sum(axis=(1, 3, 4)) / self._jobs_arr
        ahead = renewable_ahead_kw / self._kw[:, None]
        blocks = np.concatenate([own, to_k[..., None], ahead], axis=-1, dtype=np.float32)
        return np.concatenate([blocks.reshape(b, -1), np.full((b, 1), elapsed, dtype=np.float32)], axis=1)

    @property
    def state_block(self) -> int:
        """Columns per provider in `global_state`."""
        return self._col_arrivals + 2 + len(self._cfg.forecast_hours)

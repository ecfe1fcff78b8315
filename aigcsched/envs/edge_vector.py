"""The `edge` problem batched: B independent episodes stepped together with numpy."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from aigcsched.envs.edge import (
    LATE_TOLERANCE_S,
    EdgeConfig,
    EdgeEnv,
    Instance,
    SchedulingState,
    draw_instance,
    make_config,
)


class EdgeVectorEnv(VectorEnv):
    """B copies of `EdgeEnv` in one set of arrays; same spaces, rewards and infos per sub-env.

    Sub-env i is seeded with seed + i (gymnasium's convention for vector envs) and then draws
    exactly what `EdgeEnv` draws, so it replays the single env's episodes step for step.
    Autoreset: next-step (a step after termination resets that sub-env and ignores its action).
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, config: EdgeConfig | dict | None = None, **overrides: Any):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.cfg = cfg = make_config(config, overrides)
        self.num_envs = num_envs
        single = EdgeEnv(cfg)
        self.single_observation_space = single.observation_space
        self.single_action_space = single.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._quality = cfg.quality_table()
        self._probe = cfg.probe_penalties()
        B, J, n = num_envs, cfg.n_servers, cfg.n_requests
        self._rows = np.arange(B)
        self._rngs: list[np.random.Generator] = [seeding.np_random()[0] for _ in range(B)]
        self._cap = np.zeros((B, J))
        self._arrival = np.zeros((B, n))
        self._due = np.zeros((B, n))
        self._kind = np.zeros((B, n), dtype=np.int64)
        self._free = np.zeros((B, J))
        self._t = np.zeros(B, dtype=np.int64)
        self._autoreset = np.zeros(B, dtype=bool)
        self._valid = np.ones(B, dtype=bool)
        self.seed_offset = 0  # added to an int seed: sub-env i is seeded seed + seed_offset + i

    def place_runner(self, runner: int) -> None:
        """For env runner `runner` of a sampler that seeds it with seed + runner: sub-env i then
        starts from seed + runner x num_envs + i, apart from every other runner's."""
        self.seed_offset = runner * (self.num_envs - 1)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict | None = None):
        if isinstance(seed, int):
            seed = [seed + self.seed_offset + i for i in range(self.num_envs)]
        if seed is not None:
            if len(seed) != self.num_envs:
                raise ValueError(f"expected {self.num_envs} seeds, got {len(seed)}")
            self._rngs = [
                seeding.np_random(s)[0] if s is not None else r for s, r in zip(seed, self._rngs, strict=True)
            ]
        self._reset_envs(self._rows)
        self._autoreset[:] = False
        return self._obs(), {}

    def _reset_envs(self, envs: np.ndarray) -> None:
        for i in envs:
            inst = draw_instance(self._rngs[i], self.cfg)
            self._cap[i], self._arrival[i], self._due[i], self._kind[i] = inst
        self._free[envs] = 0.0
        self._t[envs] = 0

    def step(self, actions):
        actions = np.asarray(actions)
        rows = self._rows
        t = np.minimum(self._t, self.cfg.n_requests - 1)  # sub-envs awaiting autoreset sit at n_requests
        server, steps = actions[:, 0].astype(np.int64), actions[:, 1].astype(np.int64) + 1
        arrival, due, kind = self._arrival[rows, t], self._due[rows, t], self._kind[rows, t]
        start = np.maximum(self._free[rows, server], arrival)
        finish = start + steps / self._cap[rows, server]
        tardiness = finish - due
        tardiness[tardiness <= LATE_TOLERANCE_S] = 0.0
        quality = self._quality[steps]
        g = np.where(kind == 0, tardiness, np.where(kind == 1, tardiness * tardiness, np.sqrt(tardiness)))
        reward = quality - self.cfg.tardiness_weight * g

        resetting = self._autoreset
        live = ~resetting
        self._free[rows[live], server[live]] = finish[live]
        self._t[live] += 1
        if resetting.any():
            self._reset_envs(rows[resetting])
            reward[resetting] = quality[resetting] = tardiness[resetting] = 0.0
        terminated = live & (self._t >= self.cfg.n_requests)
        self._autoreset = terminated.copy()
        info = {
            "quality": quality,
            "tardiness": tardiness,
            "late": tardiness > 0.0,
            "_quality": live,
            "_tardiness": live,
            "_late": live,
        }
        return self._obs(), reward, terminated, np.zeros_like(terminated), info

    def _obs(self) -> np.ndarray:
        cfg, rows = self.cfg, self._rows
        done = self._t >= cfg.n_requests
        t = np.minimum(self._t, cfg.n_requests - 1)
        now = self._arrival[rows, t]
        parts = [np.maximum(self._free - now[:, None], 0.0)]
        if cfg.observe_capabilities:
            parts.append(self._cap)
        due_in = np.where(done, 0.0, self._due[rows, t] - now)
        probe = np.where(done, 0.0, self._probe[self._kind[rows, t]])
        parts += [due_in[:, None], probe[:, None]]
        return np.concatenate(parts, axis=1).astype(np.float32)

    def state(self) -> SchedulingState:
        """Full-knowledge view of each sub-env's request about to be placed (for heuristics)."""
        rows, t = self._rows, np.minimum(self._t, self.cfg.n_requests - 1)
        now = self._arrival[rows, t]
        busy = np.maximum(self._free - now[:, None], 0.0)
        return SchedulingState(busy, self._cap.copy(), self._due[rows, t] - now, self._kind[rows, t])

    def instances(self) -> list[Instance]:
        """Each sub-env's current episode, in full (copies; for hindsight schedulers)."""
        return [
            Instance(self._cap[i].copy(), self._arrival[i].copy(), self._due[i].copy(), self._kind[i].copy())
            for i in range(self.num_envs)
        ]

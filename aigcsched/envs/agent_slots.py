"""A batched multi-agent env as a gymnasium VectorEnv with one slot per (episode, agent).

For a policy shared by all agents, single-agent RL on the slots is multi-agent RL: slot b * K + k
is agent k of episode b, it sees that agent's own observation (which names the agent) and gets
that agent's reward. With `with_state`, each slot also sees the episode's global state after its
own observation, for a centralized critic (decentralized actors read only the first part).

Where the agents of an episode act one per step (`TurnSlots`, a batched env with `in_turn`), each
episode is one slot: at every step it is the agent on turn, the same in every episode.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space


class AgentSlots(VectorEnv):
    """B episodes x K agents of a batched multi-agent env (`MECVectorEnv`, `DataCenterVectorEnv`: they
    have `num_envs`, `n_agents`, `state_size`, `global_state()`) as B * K slots; all K agents act
    every step and all episodes end together.

    - observation: float32 (obs_size,) of the agent, or (obs_size + state_size,) with `with_state`
    - action: the agent's action space
    - reward: the agent's reward; terminated / truncated: its episode's
    - infos: none (episode metrics come from the batched env itself, see `env`)
    - autoreset: next-step (the step after an episode's end resets every episode, ignoring actions;
      the episodes continue their own random streams)
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, env: Any, with_state: bool = False):
        self.env, self.with_state = env, with_state
        self.n_episodes, self.n_agents = env.num_envs, env.n_agents
        self.num_envs = self.n_episodes * self.n_agents
        own = env.single_observation_space.shape[0]
        self.obs_size = own
        self.state_size = int(env.state_size) if with_state else 0
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (own + self.state_size,), np.float32)
        self.single_action_space = env.single_action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._autoreset = False
        self.seed_offset = 0  # added to a reset's seed (the batched env seeds episode i with seed + i)

    def place_runner(self, runner: int) -> None:
        """For env runner `runner` of a sampler that seeds it with seed + runner: episode i then
        starts from seed + runner x episodes + i, apart from every other runner's."""
        self.seed_offset = runner * (self.n_episodes - 1)

    def slot(self, index: int) -> tuple[int, int]:
        """(episode, agent) of a slot."""
        return divmod(index, self.n_agents)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, _ = self.env.reset(seed=None if seed is None else seed + self.seed_offset)
        self._autoreset = False
        return self._slots(obs), {}

    def step(self, actions):
        B, K = self.n_episodes, self.n_agents
        if self._autoreset:
            obs, _ = self.env.reset()
            self._autoreset = False
            none = np.zeros(B * K, dtype=bool)
            return self._slots(obs), np.zeros(B * K), none, none.copy(), {}
        actions = np.asarray(actions).reshape(B, K, *self.single_action_space.shape)
        obs, rewards, terminated, truncated, _ = self.env.step(actions)
        done = terminated | truncated
        if done.any() and not done.all():
            raise RuntimeError("the batched env's episodes must end together")
        self._autoreset = bool(done.all())
        return (
            self._slots(obs),
            np.asarray(rewards, dtype=np.float64).reshape(-1),
            np.repeat(terminated, K),
            np.repeat(truncated, K),
            {},  # per-slot info dicts cost the runner more than the env step; metrics read the env
        )

    def _slots(self, obs: np.ndarray) -> np.ndarray:
        B, K = self.n_episodes, self.n_agents
        own = np.asarray(obs, dtype=np.float32).reshape(B * K, self.obs_size)
        if not self.with_state:
            return own
        state = np.repeat(np.asarray(self.env.global_state(), dtype=np.float32), K, axis=0)
        return np.concatenate([own, state], axis=1)

    def close(self, **kwargs):
        pass


class TurnSlots(AgentSlots):
    """B episodes of a batched env whose agents act in turn (`in_turn`, the agent on turn `turn`, the
    same in all episodes; other agents' actions ignored) as B slots: slot b is episode b's agent on
    turn, with that agent's observation (which names it) and reward."""

    def __init__(self, env: Any, with_state: bool = False):
        if not getattr(env, "in_turn", False):
            raise ValueError("TurnSlots needs a batched env whose agents act in turn (in_turn)")
        super().__init__(env, with_state)
        self.num_envs = self.n_episodes
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def slot(self, index: int) -> tuple[int, int]:
        """(episode, 0): each episode's metrics are logged once, from its only slot."""
        return index, 0

    def step(self, actions):
        B, K = self.n_episodes, self.n_agents
        if self._autoreset:
            obs, _ = self.env.reset()
            self._autoreset = False
            none = np.zeros(B, dtype=bool)
            return self._slots(obs), np.zeros(B), none, none.copy(), {}
        turn = self.env.turn
        shape = self.single_action_space.shape
        every = np.zeros((B, K, *shape), dtype=self.single_action_space.dtype)  # the others' are ignored
        every[:, turn] = np.asarray(actions).reshape(B, *shape)
        obs, rewards, terminated, truncated, _ = self.env.step(every)
        self._autoreset = bool((terminated | truncated).all())
        reward = np.asarray(rewards, dtype=np.float64)[:, turn]
        return self._slots(obs), reward, np.asarray(terminated), np.asarray(truncated), {}

    def _slots(self, obs: np.ndarray) -> np.ndarray:
        turn = self.env.turn
        own = np.asarray(obs, dtype=np.float32)[:, turn]
        if not self.with_state:
            return own
        return np.concatenate([own, np.asarray(self.env.global_state(), dtype=np.float32)], axis=1)

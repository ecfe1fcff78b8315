"""PettingZoo ParallelEnvs as RLlib MultiAgentEnvs (new API stack).

RLlib's stock `ParallelPettingZooEnv` leaves `observation_spaces` and `action_spaces` unset and
guesses `possible_agents` from the first reset; this adapter takes all three from the env. Ray is
imported here only, so `import aigcsched.envs` stays light.
"""

from __future__ import annotations

from typing import Any

from pettingzoo import ParallelEnv
from ray.rllib.env.multi_agent_env import MultiAgentEnv

from aigcsched.envs.datacenter import DataCenterEnv
from aigcsched.envs.mec import MECEnv


class ParallelEnvAdapter(MultiAgentEnv):
    """Wraps a ParallelEnv; every agent's spaces are known before the first reset."""

    def __init__(self, env: ParallelEnv):
        super().__init__()
        self.par_env = env
        self.possible_agents = list(env.possible_agents)
        self.agents = list(self.possible_agents)
        self.observation_spaces = {a: env.observation_space(a) for a in self.possible_agents}
        self.action_spaces = {a: env.action_space(a) for a in self.possible_agents}
        self.seed_offset = 0  # added to a reset's seed: see `place_runner`

    def place_runner(self, runner: int, copies: int) -> None:
        """For copy i of `copies` on env runner `runner` of a sampler that seeds it with seed +
        runner + i: it then starts from seed + runner x copies + i, apart from every other runner's."""
        self.seed_offset = runner * (copies - 1)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        seed = None if seed is None else seed + self.seed_offset
        obs, infos = self.par_env.reset(seed=seed, options=options)
        self.agents = list(self.par_env.agents)
        return obs, infos

    def step(self, action_dict: dict[str, Any]):
        obs, rewards, terminateds, truncateds, infos = self.par_env.step(action_dict)
        terminateds["__all__"] = all(terminateds.values())
        truncateds["__all__"] = all(truncateds.values())
        self.agents = list(self.par_env.agents)
        return obs, rewards, terminateds, truncateds, infos

    def close(self) -> None:
        self.par_env.close()

    def get_sub_environments(self):
        return self.par_env


class DataCenterRLlibEnv(ParallelEnvAdapter):
    """`datacenter` for RLlib: `config.environment(DataCenterRLlibEnv, env_config={...})`, where
    env_config holds DataCenterConfig fields."""

    def __init__(self, config: dict | None = None):
        super().__init__(DataCenterEnv(config=dict(config or {})))


class MECRLlibEnv(ParallelEnvAdapter):
    """`mec` for RLlib: `config.environment(MECRLlibEnv, env_config={...})`, where env_config holds
    MECConfig fields."""

    def __init__(self, config: dict | None = None):
        super().__init__(MECEnv(config=dict(config or {})))

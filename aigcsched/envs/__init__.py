"""Simulators of the AIGC scheduling problems, registered with gymnasium on import."""

import gymnasium as gym

from aigcsched.envs.datacenter import DataCenterConfig, DataCenterEnv, DataCenterState, DataCenterVectorEnv
from aigcsched.envs.edge import EdgeConfig, EdgeEnv, SchedulingState, observation_from_state
from aigcsched.envs.edge_vector import EdgeVectorEnv
from aigcsched.envs.mec import MECConfig, MECEnv, MECInstance
from aigcsched.envs.mec_vector import MECVectorEnv

EDGE_ENV_ID = "aigcsched/EdgeT2I-v0"
# A PettingZoo ParallelEnv: not a gymnasium env, so not in gymnasium's registry.
DATACENTER_ENV_ID = "aigcsched/DataCenter-v0"
MEC_ENV_ID = "aigcsched/MEC-v0"


def make_edge_env(config: dict | None = None):
    """Env creator for RLlib: a batched env when RLlib asks for `num_envs`, else a single env."""
    config = dict(config or {})
    num_envs = config.pop("num_envs", None)
    return EdgeVectorEnv(num_envs=num_envs, **config) if num_envs is not None else EdgeEnv(**config)


if EDGE_ENV_ID not in gym.registry:
    gym.register(
        id=EDGE_ENV_ID,
        entry_point="aigcsched.envs.edge:EdgeEnv",
        vector_entry_point="aigcsched.envs.edge_vector:EdgeVectorEnv",
    )

__all__ = [
    "DATACENTER_ENV_ID",
    "EDGE_ENV_ID",
    "MEC_ENV_ID",
    "MECConfig",
    "MECEnv",
    "MECInstance",
    "MECVectorEnv",
    "DataCenterConfig",
    "DataCenterEnv",
    "DataCenterState",
    "DataCenterVectorEnv",
    "EdgeConfig",
    "EdgeEnv",
    "EdgeVectorEnv",
    "SchedulingState",
    "observation_from_state",
]

"""Joint energy management and AIGC workload scheduling across data centers (the `datacenter` problem).

After "Joint Energy Management and Coordinated AIGC Workload Scheduling for Distributed Data
Centers: A Diffusion-Aided Reward Shaping Approach": K AIGC service providers (ASPs), each with
its own text-to-image model in its own data center and grid region, may hand jobs to each other,
choose inference steps, and run on-site PV, wind and a battery under hourly electricity prices.
Every constant is a field of `DataCenterConfig`, with its source in a comment.

Modules: `config` (the scenario), `inputs` (traces and each episode's per-slot inputs), the slot's
phases `arrivals` (with hand-offs), `service`, `deadlines`, `energy`, then `ledger`, and
`observation`; `env` runs them as a PettingZoo ParallelEnv, `vector` runs B episodes at once with numpy
(their queues laid out by `queues`). `lookahead` holds the reference heuristics' per-state plan,
optionally observed (`observe_lookahead`).
"""

from aigcsched.envs.datacenter.config import (
    BATTERY_ACTIONS,
    HELDOUT_WEEK_EVERY,
    PER_ASP_FIELDS,
    PER_CLASS_FIELDS,
    DataCenterConfig,
    make_config,
    split_days,
)
from aigcsched.envs.datacenter.env import DataCenterEnv, DataCenterState
from aigcsched.envs.datacenter.ledger import LEDGER_FIELDS
from aigcsched.envs.datacenter.vector import DataCenterVectorEnv

__all__ = [
    "BATTERY_ACTIONS",
    "HELDOUT_WEEK_EVERY",
    "LEDGER_FIELDS",
    "PER_ASP_FIELDS",
    "PER_CLASS_FIELDS",
    "DataCenterConfig",
    "DataCenterEnv",
    "DataCenterState",
    "DataCenterVectorEnv",
    "make_config",
    "split_days",
]

"""The agent-slots sampler: a policy shared by all agents of a multi-agent problem, sampled by
RLlib's single-agent env runner on the problem's batched env, one vector slot per (episode, agent)
(see `aigcsched.envs.agent_slots`). Far cheaper per agent step than RLlib's MultiAgentEnvRunner on
copies of the ParallelEnv, and the same episodes for the same seeds. Where the problem's agents
act in turn, one slot per episode (`TurnSlots`): RLlib's env steps are then the agents' turns."""

from __future__ import annotations

from ray.rllib.callbacks.callbacks import RLlibCallback

from aigcsched.envs.agent_slots import AgentSlots, TurnSlots
from aigcsched.platform.problems import get_problem

ENV_NAME = "aigcsched-agent-slots"
PROBLEM_KEY, STATE_KEY = "_problem", "_with_state"  # env_config entries that are no scenario fields


def env_config(problem_name: str, scenario: dict, with_state: bool) -> dict:
    return {**scenario, PROBLEM_KEY: problem_name, STATE_KEY: with_state}


def make_env(config: dict) -> AgentSlots:
    """RLlib's env creator: `num_envs` slots (RLlib's count) are num_envs / K episodes of K agents."""
    config = dict(config)
    problem = get_problem(config.pop(PROBLEM_KEY))
    with_state = config.pop(STATE_KEY)
    slots = config.pop("num_envs", None)
    cfg = problem.scenario(config)
    if problem.decides_in_turn(cfg):  # an episode's agents act one per step: a slot per episode
        env = TurnSlots(problem.batched_env(cfg, slots or 1), with_state=with_state)
        env.problem = problem
        return env
    agents = len(problem.agents(cfg))
    episodes = 1 if slots is None else slots // agents
    if slots is not None and episodes * agents != slots:
        raise ValueError(f"{slots} env slots are no whole number of episodes of {agents} agents")
    env = AgentSlots(problem.batched_env(cfg, episodes), with_state=with_state)
    env.problem = problem
    return env


class SlotMetrics(RLlibCallback):
    """The problem's per-episode metrics of each finished episode, logged once per episode (from
    its first agent's slot) and averaged over the runner's episodes."""

    def on_episode_end(self, *, episode=None, env_runner=None, metrics_logger=None, env=None, env_index=0, **kw):
        b, k = env.slot(env_index)
        if k != 0:
            return
        for key, value in env.problem.batched_episode_metrics(env.env, b).items():
            metrics_logger.log_value(f"episode_{key}", value, reduce="mean", window=env.n_episodes)

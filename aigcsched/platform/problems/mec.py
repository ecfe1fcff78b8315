"""`mec`: base stations offload AIGC tasks to collaborating edge servers, each station an agent
(C. Xu, DDRL-ATS / LAD-TS). Scored by the mean offloading delay per task over seeded episodes."""

from __future__ import annotations

import numpy as np

from aigcsched.algorithms.mec_heuristics import MEC_POLICIES, make_policy
from aigcsched.algorithms.mec_heuristics import evaluate as evaluate_mec
from aigcsched.envs import MECConfig, MECEnv
from aigcsched.platform.problems.base import Column, Problem, Score

EPISODE_METRICS = ("episode_mean_delay", "episode_mean_parts")


def tally_metrics(tasks: float, delay_s: float, parts: float) -> dict[str, float]:
    """Mean delay and parts per task of an episode's tally (none when it had no task)."""
    if not tasks:
        return {}
    return {"mean_delay": float(delay_s / tasks), "mean_parts": float(parts / tasks)}


class MECTrainedPolicy:
    """A trained policy as a mec policy: (env, agent, observation) -> the station's shares."""

    def __init__(self, trained):
        self.trained = trained
        self.info = trained.info

    @property
    def cfg(self) -> MECConfig:
        """The scenario it was trained on."""
        return self.trained.cfg

    def __call__(self, env: MECEnv, agent: str, obs):
        return env.shares(agent, self.trained.act_agent(agent, self._as_trained(env, agent, obs)))

    def _as_trained(self, env: MECEnv, agent: str, obs):
        """The observation in the policy's layout: the booked-work and look-ahead blocks (observations,
        not part of the scenario's dynamics) appended, dropped or recomputed on the queues the policy
        was trained to expect when the scenario's options differ."""
        trained, scenario = self.trained.cfg, env.cfg
        blocks = ("observe_booked_work", "observe_lookahead")
        want = [getattr(trained, b) for b in blocks]
        load = 0.0 if env.in_turn else trained.anticipation  # what its look-ahead expected, where it applies
        if want == [getattr(scenario, b) for b in blocks] and (not any(want) or load == scenario.anticipation):
            return obs
        i, n, actions = env.possible_agents.index(agent), env.cfg.n_servers, env.action_space(agent).n
        task = obs[0] > 0
        queues = env.expected_queues(load)[i] if load and task else None
        parts = [obs[: 3 + 4 * n]]
        if trained.observe_booked_work:
            parts.append(env.booked_work(i, queues).ravel() if task else np.zeros(actions * n))
        if trained.observe_lookahead:
            parts.append(env.lookahead(i, queues) if task else np.zeros(actions))
        return np.concatenate(parts).astype(np.float32)

    def check_fits(self, cfg) -> None:
        self.trained.check_fits(cfg)


class MECProblem(Problem):
    name = "mec"
    config_class = MECConfig
    multi_agent = True
    score = Score("mean_delay", higher_is_better=False, unit="s per task")
    curve = "episode_mean_delay"
    curve_label = "seconds per task (sampled episodes)"
    iteration_metrics = EPISODE_METRICS
    columns = (
        Column("mean_delay", "delay per task (s)", ".3f"),
        Column("mean_parts", "parts per task", ".2f"),
        Column("tasks", "tasks", ".0f"),
    )
    table_title = "per-task means over all stations"
    default_baselines = ("least_loaded", "smcoedge", "myopic", "anticipating_myopic")
    default_evaluate = MEC_POLICIES
    progress_fields = (
        ("episode_mean_delay", "delay/task s", ".3f"),
        ("episode_mean_parts", "parts", ".2f"),
        ("episode_return_mean", "return", ",.1f"),
    )
    modules = ("mec_scheduler", "default", "diffusion", "mlp")
    servable = True
    fit_keys = ("n_servers", "action_mode", "max_split", "split_rules", "weight_levels")

    def check_experiment(self, exp, scenario) -> None:
        if exp.algorithm.off_policy and scenario.action_mode != "subset":
            raise ValueError(f"{exp.algorithm.name} needs a Discrete action: set env.config.action_mode: subset")
        if self.decides_in_turn(scenario) and not exp.agent_slots:
            # RLlib's multi-agent runner would sample every station every step, acting or not
            raise ValueError(
                "env.config.decision: in_turn trains a policy shared by all stations on the batched env: "
                "set algorithm.shared_policy: true (and resources.sampler: auto or agent_slots)"
            )

    def decides_in_turn(self, cfg) -> bool:
        return cfg.decision == "in_turn"

    def scenario_note(self, cfg) -> str:
        return "stations decide in turn" if self.decides_in_turn(cfg) else "stations decide simultaneously"

    def agents(self, cfg) -> list[str]:
        return [f"bs_{i}" for i in range(cfg.n_servers)]

    def spaces(self, cfg):
        env = MECEnv(cfg)
        return env.observation_space("bs_0"), env.action_space("bs_0")

    def prior_size(self, cfg) -> int:
        return int(self.spaces(cfg)[1].n) if cfg.observe_lookahead else 0

    def policy_makers(self) -> dict:
        return {name: (lambda cfg, seed, n=name: make_policy(n, seed=seed or 0)) for name in MEC_POLICIES}

    def serving(self):
        from aigcsched.platform.problems.mec_serving import MEC_SERVING

        return MEC_SERVING

    def bind(self, trained) -> MECTrainedPolicy:
        return MECTrainedPolicy(trained)

    def evaluate(self, policy, cfg, episodes, seed) -> dict[str, float]:
        return evaluate_mec(policy, cfg, episodes, seed)

    has_batched_env = True

    def batched_env(self, cfg, num_episodes: int):
        from aigcsched.envs.mec_vector import MECVectorEnv

        return MECVectorEnv(num_episodes, cfg)

    def batched_episode_metrics(self, env, episode: int) -> dict[str, float]:
        tally = {key: np.asarray(values)[episode] for key, values in env.tally.items()}
        return tally_metrics(tally["tasks"].sum(), tally["delay_s"].sum(), tally["parts"].sum())

    def rllib_env(self):
        from aigcsched.envs.rllib_adapter import MECRLlibEnv
        from aigcsched.platform.problems import callbacks

        return MECRLlibEnv, callbacks.MECMetrics


MEC = MECProblem()

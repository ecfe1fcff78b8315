"""`edge`: one scheduler assigns each text-to-image request a server and a step count (Feng et al.).

Scored by the per-request reward (quality minus weighted tardiness penalty) over seeded episodes,
all played at once on the batched env.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field

import numpy as np

from aigcsched.algorithms.heuristics import HEURISTICS, Policy, make_heuristic
from aigcsched.algorithms.optimum import DEFAULT_TIME_LIMIT_S, OptimumPolicy, upper_bound
from aigcsched.envs import EdgeConfig, EdgeEnv, EdgeVectorEnv, SchedulingState, make_edge_env, observation_from_state
from aigcsched.envs.edge import Instance
from aigcsched.platform.errors import ConfigError
from aigcsched.platform.problems.base import Column, Problem, Score

RLLIB_ENV = "aigcsched-edge"
METRICS = ("reward", "quality", "tardiness", "late_fraction")
REQUEST_METRICS = ("request_reward", "request_quality", "request_tardiness", "request_late_fraction")
OPTIMUM = "optimum"
# Beyond this many requests an exact solve is hopeless within minutes (and the model alone is big).
MAX_OPTIMUM_REQUESTS = 100
TIME_LIMIT_ENV = "AIGCSCHED_OPTIMUM_TIME_LIMIT_S"


# --- evaluation ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalResult:
    """Per-episode means (one entry per episode; episode k used seed + k)."""

    reward: np.ndarray
    quality: np.ndarray
    tardiness: np.ndarray
    late_fraction: np.ndarray
    # With record_requests: per-request quality and tardiness, shape (episodes, n_requests).
    requests: dict[str, np.ndarray] = field(default_factory=dict)

    def means(self) -> dict[str, float]:
        """Per-request means over all episodes (episodes have equal length)."""
        return {m: float(np.mean(getattr(self, m))) for m in METRICS}


def evaluate_policy(
    policy: Policy, cfg: EdgeConfig, episodes: int = 10, seed: int = 0, record_requests: bool = False
) -> EvalResult:
    """Run `episodes` episodes at once (episode k seeded with seed + k) under `policy`.
    A policy with a `begin(instances)` method (a hindsight scheduler) is first shown the
    episodes in full."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    env = EdgeVectorEnv(num_envs=episodes, config=cfg)
    obs, _ = env.reset(seed=seed)
    begin = getattr(policy, "begin", None)
    if begin is not None:
        begin(env.instances())
    totals = {m: np.zeros(episodes) for m in METRICS}
    requests = {k: np.zeros((episodes, cfg.n_requests)) for k in ("quality", "tardiness")} if record_requests else {}
    for t in range(cfg.n_requests):
        obs, reward, _, _, info = env.step(policy(obs, env.state()))
        totals["reward"] += reward
        totals["quality"] += info["quality"]
        totals["tardiness"] += info["tardiness"]
        totals["late_fraction"] += info["late"]
        for key, values in requests.items():
            values[:, t] = info[key]
    return EvalResult(**{m: v / cfg.n_requests for m, v in totals.items()}, requests=requests)


def episode_instances(cfg: EdgeConfig, episodes: int, seed: int) -> list[Instance]:
    """The instances `evaluate_policy` plays for these episodes and seed."""
    env = EdgeVectorEnv(num_envs=episodes, config=cfg)
    env.reset(seed=seed)
    return env.instances()


def mean_upper_bound(cfg: EdgeConfig, episodes: int, seed: int) -> float:
    """An upper bound on any policy's mean reward per request (each request alone on idle servers)."""
    return float(np.mean([upper_bound(inst, cfg) for inst in episode_instances(cfg, episodes, seed)])) / cfg.n_requests


# --- policies ------------------------------------------------------------------------------------


def optimum_time_limit(default: float = DEFAULT_TIME_LIMIT_S) -> float:
    """Seconds the solver may spend per episode: $AIGCSCHED_OPTIMUM_TIME_LIMIT_S, else `default`
    (edge's CP-SAT: 60)."""
    raw = os.environ.get(TIME_LIMIT_ENV, "")
    if not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{TIME_LIMIT_ENV} must be a positive number of seconds, got {raw!r}")
    return value


def make_optimum(cfg: EdgeConfig, seed: int | None = None) -> OptimumPolicy:
    if cfg.n_requests > MAX_OPTIMUM_REQUESTS:
        raise ConfigError(
            f"optimum: n_requests={cfg.n_requests} is too large to solve exactly (at most "
            f"{MAX_OPTIMUM_REQUESTS}, e.g. --set n_requests=20); for full-size episodes use --bound, "
            "an upper bound on any policy's reward"
        )
    return OptimumPolicy(cfg, time_limit_s=optimum_time_limit())


def optimum_summary(name: str, policy: OptimumPolicy) -> dict:
    """What the solver proved; a note on stderr where it could not prove optimality."""
    results = policy.results
    proven = sum(r.optimal for r in results)
    if proven < len(results):
        worst = max(r.gap for r in results)
        print(
            f"note: {name}: {len(results) - proven} of {len(results)} episodes not proven optimal within "
            f"{policy.time_limit_s:g} s each; their schedules are the best found (myopic's where none was), "
            f"at most {100 * worst:.3g}% below the optimum (bound); raise ${TIME_LIMIT_ENV} or use fewer"
            " requests",
            file=sys.stderr,
        )
    n = policy.cfg.n_requests
    return {
        "proven_optimal_episodes": proven,
        "solver_bound": float(np.mean([r.bound for r in results])) / n,
        "max_gap": float(max(r.gap for r in results)),
    }


class EdgeTrainedPolicy:
    """A trained policy as an edge policy: (observations, state) -> (server, steps - 1). It builds
    its observations from the state in the layout it was trained on."""

    def __init__(self, trained):
        self.trained = trained

    @property
    def cfg(self) -> EdgeConfig:
        return self.trained.cfg

    @property
    def info(self) -> dict:
        return self.trained.info

    def __call__(self, obs: np.ndarray | None, state: SchedulingState) -> np.ndarray:
        batched = np.ndim(state.due_in) > 0
        own = np.atleast_2d(observation_from_state(state, self.cfg))
        actions = self.trained.act(own[:, None])[:, 0]
        return actions if batched else actions[0]

    def check_fits(self, cfg) -> None:
        self.trained.check_fits(cfg)


# --- training metrics ----------------------------------------------------------------------------


class EdgeProblem(Problem):
    name = "edge"
    config_class = EdgeConfig
    multi_agent = False
    score = Score("reward", higher_is_better=True, unit="per request")
    curve = "request_reward"
    curve_label = "per-request reward (sampled)"
    plotted = ("request_reward", "request_quality")
    iteration_metrics = REQUEST_METRICS
    columns = (
        Column("reward", "reward", ".2f"),
        Column("quality", "quality", ".2f"),
        Column("tardiness", "tardiness (s)", ".3f"),
        Column("late_fraction", "late fraction", ".3f"),
    )
    table_title = "per-request means"
    default_baselines = ("greedy", "myopic")
    default_evaluate = ("random", "greedy", "myopic")
    modules = ("edge_scheduler", "default", "diffusion", "mlp")
    default_module = "edge_scheduler"
    progress_fields = (
        ("request_reward", "reward", ".2f"),
        ("request_quality", "quality", ".2f"),
        ("request_tardiness", "tardiness s", ".2f"),
    )
    vectorize_mode = "vector_entry_point"  # the batched env steps all sub-envs at once
    fit_keys = ("n_servers", "max_steps", "penalty_probe_s")
    servable = True
    reproducible = True

    def check_experiment(self, exp, scenario) -> None:
        if exp.algorithm.name != "PPO":
            raise ValueError(f"{exp.algorithm.name} needs a Discrete action; edge's is (server, steps): use PPO")

    def agents(self, cfg) -> list[str]:
        return ["scheduler"]

    def spaces(self, cfg):
        env = EdgeEnv(cfg)
        return env.observation_space, env.action_space

    def policy_makers(self) -> dict:
        makers = {name: (lambda cfg, seed, n=name: make_heuristic(n, cfg, seed=seed)) for name in HEURISTICS}
        return {**makers, OPTIMUM: make_optimum}

    def bind(self, trained) -> EdgeTrainedPolicy:
        return EdgeTrainedPolicy(trained)

    def evaluate(self, policy, cfg, episodes, seed) -> dict[str, float]:
        result = evaluate_policy(policy, cfg, episodes, seed).means()
        if isinstance(policy, OptimumPolicy):
            result.update(optimum_summary(OPTIMUM, policy))
        return result

    def upper_bound(self, cfg, episodes: int, seed: int) -> float:
        return mean_upper_bound(cfg, episodes, seed)

    def rllib_env(self):
        from ray.tune.registry import register_env

        from aigcsched.platform.problems import callbacks

        register_env(RLLIB_ENV, make_edge_env)
        return RLLIB_ENV, callbacks.RequestMetrics


EDGE = EdgeProblem()

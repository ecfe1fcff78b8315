"""What the platform needs to know about a scheduling problem, in one place.

A `Problem` is the only code that knows a problem by name: its scenario config, how RLlib samples
it, the metrics its env runners report, its heuristics, how a policy is scored on held-out
episodes, how results are tabulated, and whether the endpoint can serve it. `train`, `evaluate`,
`study`, `models`, the registry and `serve` ask it instead of branching on the name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
from pydantic import BaseModel


@dataclass(frozen=True)
class Column:
    """One column of a results table: metric key, header, format spec."""

    key: str
    header: str
    fmt: str


@dataclass(frozen=True)
class Score:
    """The held-out figure a policy is judged by."""

    metric: str
    higher_is_better: bool
    unit: str = ""

    @property
    def sign(self) -> float:
        return 1.0 if self.higher_is_better else -1.0

    def better(self, a: float, b: float) -> bool:
        """Is `a` strictly better than `b`?"""
        return self.sign * a > self.sign * b


class Problem:
    """Base class: one subclass (and one instance) per problem; see `aigcsched.platform.problems`."""

    name: str
    config_class: type[BaseModel]
    multi_agent: bool
    score: Score
    # the per-iteration metric of training's sampled episodes that shows the score, and its label
    curve: str
    curve_label: str
    # metrics drawn in a run's learning-curve plot (the curve first)
    plotted: tuple[str, ...] = ()
    # env-runner metrics logged every iteration (curve included)
    iteration_metrics: tuple[str, ...]
    # results table of `evaluate`, held-out evaluations and their markdown
    columns: tuple[Column, ...]
    table_title: str  # e.g. "per-request means"
    table_caption: str = ""
    default_baselines: tuple[str, ...]
    default_evaluate: tuple[str, ...]  # policies `aigcsched evaluate` compares by default
    # actor modules this problem's observations and actions fit
    modules: tuple[str, ...] = ("default", "diffusion", "mlp")
    default_module: str = "default"
    # scenario fields that shape observations and actions: a policy fits a scenario that agrees on them
    fit_keys: tuple[str, ...]
    # the progress bar's figures: (metric, label, format spec)
    progress_fields: tuple[tuple[str, str, str], ...]
    vectorize_mode: str = "sync"  # how RLlib steps several sub-envs (gymnasium's VectorEnv modes)
    servable: bool = False  # the HTTP endpoint has an API for it (edge's own, or `serving()`'s)
    reproducible: bool = False  # `aigcsched reproduce` has the paper's figures for it

    # --- names

    @property
    def experiment_name(self) -> str:
        """Default MLflow experiment and registered model name."""
        return f"aigcsched-{self.name}"

    # --- scenario

    def scenario(self, values: dict) -> BaseModel:
        """The validated scenario config from plain values (raises pydantic's ValidationError)."""
        return self.config_class(**values)

    def training_scenario(self, cfg: BaseModel, shared_policy: bool) -> BaseModel:
        """The scenario training runs on (a shared policy may need agent ids in observations)."""
        return cfg

    def evaluation_scenario(self, cfg: BaseModel) -> BaseModel:
        """The scenario held-out evaluation runs on."""
        return cfg

    def decides_in_turn(self, cfg: BaseModel) -> bool:
        """Whether the agents act one per step (the batched env's `in_turn`) rather than all at once."""
        return False

    def scenario_note(self, cfg: BaseModel) -> str:
        """A few words that results tables of this scenario add to their title (e.g. how agents decide)."""
        return ""

    def check_experiment(self, exp: Any, scenario: BaseModel) -> None:
        """Problem-specific constraints on an experiment; raise ValueError with a one-line message."""

    def agents(self, cfg: BaseModel) -> list[str]:
        raise NotImplementedError

    def spaces(self, cfg: BaseModel) -> tuple[gym.Space, gym.Space]:
        """One agent's observation and action space (every agent has the same ones)."""
        raise NotImplementedError

    # --- policies

    def prior_size(self, cfg: BaseModel) -> int:
        """How many prior logits of the heuristic end each agent's observation (0: none)."""
        return 0

    def policy_makers(self) -> dict[str, Callable[[BaseModel, int | None], Any]]:
        """Named policies (heuristics and the like): name -> (cfg, seed) -> policy."""
        raise NotImplementedError

    def serving(self) -> Any:
        """The problem's `serving.ProblemServing` (request and decision bodies of its endpoint
        routes), or None where the endpoint has none or its own (edge)."""
        return None

    def bind(self, trained: Any) -> Any:
        """A trained policy (`registry.TrainedPolicy`) as a policy of this problem's evaluator."""
        raise NotImplementedError

    def evaluate(self, policy: Any, cfg: BaseModel, episodes: int, seed: int) -> dict[str, float]:
        """Means over `episodes` episodes (episode k seeded with seed + k)."""
        raise NotImplementedError

    def upper_bound(self, cfg: BaseModel, episodes: int, seed: int) -> float | None:
        """An upper bound on any policy's score over these episodes, where the problem has a cheap one."""
        return None

    # --- training

    # --- the batched env (B episodes stepped at once; multi-agent problems' fast path)

    has_batched_env: bool = False

    def batched_env(self, cfg: BaseModel, num_episodes: int) -> Any:
        """B episodes stepped at once with numpy: reset(seed) -> (B, K, obs), step((B, K, ...)), global_state()."""
        raise NotImplementedError(f"{self.name} has no batched env")

    def batched_episode_metrics(self, env: Any, episode: int) -> dict[str, float]:
        """The per-episode metrics (`iteration_metrics` without their episode_ prefix) of episode
        `episode` of a batched env that just ended."""
        raise NotImplementedError(f"{self.name} has no batched env")

    def rllib_env(self) -> tuple[Any, type]:
        """The env RLlib builds (a registered name or a class, taking the scenario's fields as its
        env_config) and the RLlib callback that logs `iteration_metrics`; imported here, so that
        reading a descriptor does not import RLlib."""
        raise NotImplementedError

    def rllib_environment(self, config: Any, cfg: BaseModel) -> Any:
        """`config` (an RLlib AlgorithmConfig) with this problem's env, vectorization and metrics callback."""
        env, callback = self.rllib_env()
        return (
            config.environment(env, env_config=cfg.model_dump())
            .callbacks(callback)
            .env_runners(gym_env_vectorize_mode=self.vectorize_mode)
        )

    def progress(self, metrics: dict) -> str:
        """One line for the progress bar from an iteration's metrics."""
        nan = float("nan")
        return "  ".join(f"{label} {format(metrics.get(key, nan), fmt)}" for key, label, fmt in self.progress_fields)

    def describe(self) -> str:
        return f"{self.name} ({'multi-agent' if self.multi_agent else 'single-agent'})"

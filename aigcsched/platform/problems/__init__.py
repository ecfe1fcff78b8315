"""The problems the platform trains, evaluates and serves: one `Problem` descriptor each.

Adding a problem: a module here with its `Problem` subclass, and one line in `PROBLEMS`."""

from __future__ import annotations

from pydantic import BaseModel

from aigcsched.platform.errors import ConfigError
from aigcsched.platform.problems.base import Column, Problem, Score
from aigcsched.platform.problems.datacenter import DATACENTER
from aigcsched.platform.problems.edge import EDGE
from aigcsched.platform.problems.mec import MEC

PROBLEMS: dict[str, Problem] = {p.name: p for p in (EDGE, DATACENTER, MEC)}
DEFAULT_PROBLEM = EDGE.name


def get_problem(name: str) -> Problem:
    """The problem by name; ConfigError naming the choices otherwise."""
    try:
        return PROBLEMS[name]
    except KeyError:
        raise ConfigError(f"unknown env {name!r}; choose from {', '.join(PROBLEMS)}") from None


def problem_of(cfg: BaseModel) -> Problem:
    """The problem a scenario config belongs to."""
    for problem in PROBLEMS.values():
        if isinstance(cfg, problem.config_class):
            return problem
    raise TypeError(f"{type(cfg).__name__} is no problem's scenario config")


__all__ = ["PROBLEMS", "Column", "Problem", "Score", "get_problem", "problem_of"]

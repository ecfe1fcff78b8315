"""Turn a `--policy` name into a policy of the scenario's problem.

Names: one of the problem's own policies (its heuristics; `optimum` on edge), a registered model
(models:/NAME@ALIAS, models:/NAME/VERSION or models:/NAME/latest), a checkpoint (checkpoint:PATH) or
a training run's policy (run:RUN_ID: the one `evaluation.select: best` kept, else its last checkpoint's).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from aigcsched.platform.errors import ConfigError
from aigcsched.platform.problems import problem_of

TRAINED_FORMS = ("models:/NAME@ALIAS", "models:/NAME/VERSION", "models:/NAME/latest", "checkpoint:PATH", "run:RUN_ID")


def known_policies(cfg: BaseModel) -> list[str]:
    return [*problem_of(cfg).policy_makers(), *TRAINED_FORMS]


def load_trained(name: str, cfg: BaseModel):
    """A registered model or checkpoint, checked to fit the scenario (a `TrainedPolicy`)."""
    from aigcsched.platform import registry

    if name.startswith("models:/"):
        policy = registry.load_policy(name)
    elif name.startswith("run:"):
        from aigcsched.platform.tracking import run_policy_dir

        policy = registry.load_checkpoint_policy(run_policy_dir(name.removeprefix("run:")))
        policy.info["uri"] = name
    else:
        policy = registry.load_checkpoint_policy(name.removeprefix("checkpoint:"))
    policy.check_fits(cfg)
    return policy


def resolve_policy(name: str, cfg: BaseModel, seed: int | None = None) -> Any:
    """A policy by name for the problem `cfg` belongs to, in that problem's evaluator's form;
    raises ConfigError naming the choices otherwise."""
    problem = problem_of(cfg)
    makers = problem.policy_makers()
    if name in makers:
        return makers[name](cfg, seed)
    if name.startswith(("models:/", "checkpoint:", "run:")):
        return problem.bind(load_trained(name, cfg))
    raise ConfigError(f"unknown policy {name!r}; choose from {', '.join(known_policies(cfg))}")

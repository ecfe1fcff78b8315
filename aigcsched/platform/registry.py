"""Trained policies as MLflow pyfunc models and registry entries, for every problem.

The pyfunc wraps a policy folder (see `trained_policy`): a float32 array of every agent's
observation, shape (n, K, obs_size) with K agents in the env's order (K = 1 on `edge`), in; the
env's actions, int64 of shape (n, K, *action_shape), out.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from pydantic import BaseModel

from aigcsched.platform.errors import ConfigError
from aigcsched.platform.problems import problem_of
from aigcsched.platform.trained_policy import ModelNotFoundError, TrainedPolicy, load_policy_dir

CHAMPION = "champion"
# Version tags: the problem, and the held-out score the promotion rule compares.
PROBLEM_TAG = "problem"
SCORE_TAG = "eval_score"
METRIC_TAG = "eval_metric"
SEEDS_TAG = "eval_seeds"
PROMOTION_TAG = "promotion"  # why a version was not promoted


class PolicyModel(mlflow.pyfunc.PythonModel):
    """Pyfunc: (n, K, obs_size) float32 observations in, (n, K, *action_shape) int64 env actions out."""

    def load_context(self, context):
        self.policy = load_policy_dir(context.artifacts["policy"])

    def predict(self, context, model_input, params=None):
        return self.policy.act(np.asarray(getattr(model_input, "values", model_input), dtype=np.float32))


def log_policy_model(policy_dir: str | Path, cfg: BaseModel, model_name: str | None) -> Any:
    """Log the pyfunc to the active run (and register it under `model_name`); returns ModelInfo."""
    problem = problem_of(cfg)
    obs_space, action_space = problem.spaces(cfg)
    n_agents = len(problem.agents(cfg))
    example = np.zeros((2, n_agents, *obs_space.shape), dtype=np.float32)
    signature = infer_signature(example, np.zeros((2, n_agents, *action_space.shape), dtype=np.int64))
    return mlflow.pyfunc.log_model(
        name="policy",
        python_model=PolicyModel(),
        artifacts={"policy": str(policy_dir)},
        signature=signature,
        input_example=example,
        pip_requirements=["aigcsched", "ray[rllib]", "torch", "numpy"],
        registered_model_name=model_name,
    )


_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+|latest))$")


def resolve_model_version(uri: str) -> Any:
    """The registry's ModelVersion for models:/NAME@ALIAS, models:/NAME/VERSION or models:/NAME/latest
    (the newest version, promoted or not)."""
    m = _URI.match(uri)
    if not m:
        raise ConfigError(f"expected models:/NAME@ALIAS, models:/NAME/VERSION or models:/NAME/latest, got {uri!r}")
    client = mlflow.MlflowClient()
    try:
        if m["alias"]:
            return client.get_model_version_by_alias(m["name"], m["alias"])
        if m["version"] == "latest":
            versions = client.search_model_versions(f"name='{m['name']}'")
            if versions:
                return max(versions, key=lambda v: int(v.version))
        else:
            return client.get_model_version(m["name"], m["version"])
    except MlflowException:
        pass
    store = mlflow.get_tracking_uri()
    if m["alias"] and client.search_model_versions(f"name='{m['name']}'", max_results=1):
        raise ModelNotFoundError(
            f"no model at {uri}: {m['name']!r} has versions but none with alias {m['alias']!r} "
            f"(tracking store {store}); set one with: aigcsched models promote {m['name']} VERSION"
        )
    raise ModelNotFoundError(f"no registered model at {uri} (tracking store {store})")


def moves(uri: str) -> bool:
    """Whether the URI may point to another version later: an alias, or `latest`."""
    m = _URI.match(uri)
    return bool(m) and (m["alias"] is not None or m["version"] == "latest")


def load_policy(uri: str, version: str | None = None) -> TrainedPolicy:
    """A registered policy (models:/NAME@ALIAS, models:/NAME/VERSION or models:/NAME/latest) ready to act.
    `version`: that version of the URI's model, not the one the URI points to now (still labelled
    with `uri`), as a server that follows an alias loads the version it saw."""
    mv = resolve_model_version(uri)
    m = _URI.match(uri)
    if version is not None and str(mv.version) != str(version):
        mv = resolve_model_version(f"models:/{m['name']}/{version}")
    try:
        policy = mlflow.pyfunc.load_model(f"models:/{mv.name}/{mv.version}").unwrap_python_model().policy
    except (AttributeError, ModuleNotFoundError):
        raise ConfigError(f"{uri} is not a policy model of this version of aigcsched") from None
    policy.info = {"name": mv.name, "version": str(mv.version), "alias": m["alias"], "run_id": mv.run_id, "uri": uri}
    return policy


def load_checkpoint_policy(path: str) -> TrainedPolicy:
    """A policy folder, or a training checkpoint (which holds one under `policy/`)."""
    return load_policy_dir(path, {"uri": f"checkpoint:{path}"})


def champion_version(name: str) -> Any | None:
    try:
        return mlflow.MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def promote(name: str, version: str | int) -> None:
    client = mlflow.MlflowClient()
    try:
        mv = client.get_model_version(name, str(version))
    except MlflowException:
        raise ModelNotFoundError(f"model {name!r} has no version {version}") from None
    client.set_registered_model_alias(name, CHAMPION, str(version))
    if PROMOTION_TAG in (mv.tags or {}):  # why training did not promote it: overridden now
        client.delete_model_version_tag(name, str(version), PROMOTION_TAG)


def version_score(mv: Any) -> str:
    """The held-out score a version was registered with, as 'metric value' ('' if none)."""
    tags = mv.tags or {}
    if SCORE_TAG in tags:
        return f"{tags.get(METRIC_TAG, 'score')} {tags[SCORE_TAG]}"
    return ""

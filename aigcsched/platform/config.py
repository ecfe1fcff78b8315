"""Configuration from the command line: `--set KEY=VALUE` overrides and readable errors."""

from __future__ import annotations

import yaml
from pydantic import BaseModel, ValidationError

from aigcsched.envs import PROBLEMS


class ConfigError(ValueError):
    """Bad user input: the message is one line, fit to print as it is."""


def parse_overrides(items: list[str] | None) -> dict:
    """['a=1', 'b=[2, 20]'] -> {'a': 1, 'b': [2, 20]}; values are read as YAML scalars / lists."""
    out = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {key}: cannot read value {raw!r} ({e.problem})") from None
    return out


def validation_message(err: ValidationError) -> str:
    """One line naming each offending key."""
    parts = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def build_model(model: type[BaseModel], values: dict, what: str) -> BaseModel:
    """Validate `values` into `model`, raising ConfigError with a one-line message."""
    unknown = sorted(set(values) - set(model.model_fields))
    if unknown:
        known = ", ".join(model.model_fields)
        raise ConfigError(f"unknown {what} key(s) {', '.join(unknown)}; known keys: {known}")
    try:
        return model(**values)
    except ValidationError as e:
        raise ConfigError(f"invalid {what}: {validation_message(e)}") from None


def env_config(problem: str, values: dict) -> BaseModel:
    """The validated config of a problem (`edge`, ...) from plain values."""
    if problem not in PROBLEMS:
        raise ConfigError(f"unknown env {problem!r}; choose from {', '.join(PROBLEMS)}")
    return build_model(PROBLEMS[problem][1], values, f"{problem} config")

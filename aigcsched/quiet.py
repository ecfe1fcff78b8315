"""Library warnings and logs stay off the terminal unless `aigcsched --verbose`.

Ray, RLlib, Serve and MLflow announce deprecations, start-up steps and registrations on stderr, in
this process and in the worker processes Ray starts. Errors still show: loggers go to ERROR, not
off, and exceptions are untouched. Warnings raised from our own code are not filtered.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.abc
import importlib.util
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator

# Python warnings raised inside these packages are for their maintainers (deprecations, type hints).
WARNING_PACKAGES = ("ray", "mlflow", "alembic", "sqlalchemy", "torch", "gymnasium", "pettingzoo")
LOGGERS = ("mlflow", "alembic", "sqlalchemy")
SETUP_HOOK_ENV = "__RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR"

# Read by this process and inherited by every process Ray starts from it.
ENV = {
    # the "ray" logger's level: ray.init sets it here, workers at start
    "RAY_LOGGER_LEVEL": "error",
    # "(raylet) Task X failed. There are N retries remaining, so the task will be retried" on
    # stdout; a retry that fails in the end still raises
    "RAY_enable_output_error_log_if_still_retry": "0",
    "MLFLOW_LOGGING_LEVEL": "ERROR",  # read when mlflow is imported
    # the workers of a local Ray instance run quiet_worker at start (Ray's name for what a runtime
    # env's worker_process_setup_hook becomes: ray_constants.WORKER_PROCESS_SETUP_HOOK_ENV_VAR)
    SETUP_HOOK_ENV: f"{__name__}.quiet_worker",
    # a Ray job's workers get theirs from its runtime env: ray.init passes that through this hook
    "RAY_RUNTIME_ENV_HOOK": f"{__name__}.ray_runtime_env",
}

Undo = contextlib.ExitStack | None


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Library warnings and logs below ERROR off until the block ends (all restored then)."""
    with contextlib.ExitStack() as undo, warnings.catch_warnings():
        _filter_warnings()
        for key, value in ENV.items():
            if key not in os.environ:  # a setting of the user's wins
                os.environ[key] = value
                undo.callback(os.environ.pop, key, None)
        for name in LOGGERS:
            _set_level(logging.getLogger(name), undo)
        # These set up their loggers when imported, undoing levels set before.
        _after_import("ray", functools.partial(_quiet_handlers, "ray", undo), undo)
        _after_import("ray.rllib", functools.partial(_quiet_handlers, "ray.rllib", undo), undo)
        _after_import("ray.serve", lambda: _set_level(logging.getLogger("ray.serve"), undo), undo)
        _after_import("mlflow", functools.partial(_quiet_mlflow_prints, undo), undo)
        yield


def ray_runtime_env(runtime_env: dict | None) -> dict | None:
    """RAY_RUNTIME_ENV_HOOK, called by ray.init with the job's runtime env. A Ray job's workers (a
    runtime env of its own, on a cluster started elsewhere) get our setup hook through it. An empty
    one stays empty: a local instance's workers inherit the hook, and Ray starts workers in advance
    only for jobs without a runtime env."""
    if (
        not runtime_env
        or "worker_process_setup_hook" in runtime_env
        or SETUP_HOOK_ENV in runtime_env.get("env_vars", {})
    ):
        return runtime_env
    return {**runtime_env, "worker_process_setup_hook": f"{__name__}.quiet_worker"}


def quiet_worker() -> None:
    """Run by each Ray worker process at start (env runners, learners, Serve's actors), whose
    output reaches the terminal as `(SingleAgentEnvRunner pid=...)` lines. Serve's own logger is
    left alone: deployments set its level and access log themselves."""
    _filter_warnings()
    _after_import("ray", functools.partial(_quiet_handlers, "ray", None), None)
    _after_import("ray.rllib", functools.partial(_quiet_handlers, "ray.rllib", None), None)


def _filter_warnings() -> None:
    for package in WARNING_PACKAGES:
        warnings.filterwarnings("ignore", module=rf"{package}(\.|$)")
    # MLflow shows some through a "once" filter of its own, ahead of ours: drop them at display.
    show, dirs = warnings.showwarning, _package_dirs()

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if not filename.startswith(dirs):
            show(message, category, filename, lineno, file, line)

    warnings.showwarning = showwarning


def _package_dirs() -> tuple[str, ...]:
    dirs = []
    for package in WARNING_PACKAGES:
        spec = importlib.util.find_spec(package)  # finds a top-level package without importing it
        dirs += [os.path.join(d, "") for d in (spec.submodule_search_locations or [])] if spec else []
    return tuple(dirs)


def _set_level(obj: logging.Logger | logging.Handler, undo: Undo, level: int = logging.ERROR) -> None:
    if undo is not None:
        undo.callback(obj.setLevel, obj.level)
    obj.setLevel(level)


def _quiet_handlers(name: str, undo: Undo) -> None:
    # The handlers, not the loggers: ray.init resets the level of "ray", building an algorithm that
    # of "ray.rllib" (its own handler, not propagating).
    for handler in logging.getLogger(name).handlers:
        _set_level(handler, undo)


def _quiet_mlflow_prints(undo: Undo) -> None:
    """MLflow prints "Successfully registered model" and the like with eprint, bypassing levels,
    to the stream its logger handler writes to. eprint looks the stream up when called: another one
    silences it and leaves the handler (errors) alone. Switching MLflow's stream off would not
    last: MLflow switches it back on after blocks of its own that silence it."""
    from mlflow.utils import logging_utils

    if undo is not None:
        undo.callback(setattr, logging_utils, "MLFLOW_LOGGING_STREAM", logging_utils.MLFLOW_LOGGING_STREAM)
    logging_utils.MLFLOW_LOGGING_STREAM = _Discard()


class _Discard:
    enabled = False  # MLflow sets this on whatever stream is in place; nothing reads it here

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def _after_import(name: str, then: Callable[[], None], undo: Undo) -> None:
    """Call `then` now if module `name` is imported, else right after its first import."""
    if name in sys.modules:
        then()
        return
    finder = _AfterImport(name, then)
    sys.meta_path.insert(0, finder)
    if undo is not None:
        undo.callback(lambda: finder in sys.meta_path and sys.meta_path.remove(finder))


class _AfterImport(importlib.abc.MetaPathFinder):
    def __init__(self, name: str, then: Callable[[], None]) -> None:
        self.name, self.then = name, then

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)  # by the other finders
        if spec is not None and hasattr(spec.loader, "exec_module"):
            exec_module = spec.loader.exec_module

            def exec_then(module) -> None:
                exec_module(module)
                self.then()

            spec.loader.exec_module = exec_then
        return spec

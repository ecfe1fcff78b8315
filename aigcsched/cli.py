"""The `aigcsched` command: assembles the platform's and the endpoint's commands."""

from __future__ import annotations

import logging
import os
import sys

import typer

from aigcsched.platform import commands as platform_commands
from aigcsched.platform import data_commands
from aigcsched.platform.config import ConfigError
from aigcsched.serve import commands as serve_commands

app = typer.Typer(
    help="Train, evaluate and serve schedulers for AI-generated-content inference workloads.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
platform_commands.register(app)
app.add_typer(data_commands.app, name="data")
serve_commands.register(app)


@app.callback()
def _root() -> None:
    """Train, evaluate and serve schedulers for AI-generated-content inference workloads."""


def main() -> None:
    # MLflow announces store migrations at INFO on stderr; the CLI's own messages are what matter.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is first imported
    for name in ("mlflow", "alembic"):  # in case it already was
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        app()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

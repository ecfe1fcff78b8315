"""The `aigcsched` command: assembles the platform's and the endpoint's commands."""

from __future__ import annotations

import atexit
import gc
import sys
from typing import Annotated

import typer

from aigcsched import quiet
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
def _root(
    ctx: typer.Context,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="also show the warnings and logs of Ray, RLlib, Serve and MLflow")
    ] = False,
) -> None:
    """Train, evaluate and serve schedulers for AI-generated-content inference workloads."""
    if not verbose:
        # Before the command imports any of them; undone when it ends.
        ctx.with_resource(quiet.quiet())


def main() -> None:
    # At exit the process's objects go with it, without a last garbage collection through every
    # module loaded (seconds once torch, RLlib and MLflow are); registered once, run last.
    atexit.unregister(gc.freeze)
    atexit.register(gc.freeze)
    try:
        app()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

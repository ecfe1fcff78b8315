"""Run the `aigcsched` command in-process, as a user would from a shell."""

import sys

from aigcsched import cli


def run_cli(capsys, monkeypatch, *args):
    """(exit code, stdout, stderr) of `aigcsched ARGS...`."""
    monkeypatch.setattr(sys, "argv", ["aigcsched", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err

"""The ``dlakit`` command line: thin wrappers over the Python API, one module per command group.

Each module in :data:`COMMAND_MODULES` defines ``register(app)``; modules not yet present are skipped, so a
capability is added by adding its module. Errors a user can cause print one line and exit 2.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import typer

from dlakit import __version__
from dlakit.errors import EXIT_BAD_INPUT, DlakitError

COMMAND_MODULES = (
    "check",
    "targets",
    "fix",
    "zoo",
    "prepare",
    "estimate",
    "quantize",
    "sparsify",
    "report",
    "deploy",
    "recover",
)

app = typer.Typer(
    name="dlakit",
    help="Take convolutional networks onto NVIDIA's DLA: check, fix, quantize, sparsify, estimate, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dlakit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    _state["debug"] = debug


for _name in COMMAND_MODULES:
    if importlib.util.find_spec(f"dlakit.cli.{_name}") is not None:
        importlib.import_module(f"dlakit.cli.{_name}").register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line on stderr and exit code 2.

    Usage errors (unknown option, missing argument) are click's: usage line, message, exit 2.
    """
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        app(args=argv, prog_name="dlakit")
    except DlakitError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)

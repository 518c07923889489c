"""The ``dlakit`` command line: thin wrappers over the Python API, one module per command group.

Each module in :data:`COMMAND_MODULES` defines ``register(app)``; modules not yet present are skipped, so a
capability is added by adding its module. Errors a user can cause print one line and exit 2.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import signal
import sys
import threading
from collections.abc import Iterator

import typer

from dlakit import __version__
from dlakit.atomic import refuse_overwrite, transaction
from dlakit.errors import EXIT_BAD_INPUT, EXIT_NOT_FULL_DLA, EXIT_OK, DlakitError

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


#: options whose value is a path dlakit writes: everything else on the command line that names an existing file is
#: an input, which no output may replace
OUTPUT_OPTIONS = ("-o", "--output", "--save-emulated")


def _paths_on_command_line(args: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(inputs, outputs): the existing files named on the command line, and (option, value) of the output options."""
    inputs, outputs = [], []
    after_output = ""
    for token in args:
        if after_output:
            outputs.append((after_output, token))
            after_output = ""
            continue
        option, eq, value = token.partition("=")
        if token.startswith("-") and option in OUTPUT_OPTIONS:
            if eq:
                outputs.append((option, value))
            else:
                after_output = option
            continue
        candidate = value if token.startswith("--") and eq else token
        if candidate and os.path.isfile(candidate):
            inputs.append(candidate)
    return inputs, outputs


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that every ``finally`` and context manager (temporary outputs,
    scratch folders) runs as for Ctrl-C."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt (or :class:`Terminated`) that typer turned into ``Exit(130)``, if any."""
    seen: BaseException | None = exc
    for _ in range(8):
        seen = seen.__cause__ or seen.__context__ if seen is not None else None
        if isinstance(seen, KeyboardInterrupt):
            return seen
    return None


def _run_committing(args: list[str] | None) -> None:
    """Run the app inside one output transaction: its files are renamed into place only if it succeeds (exit 0,
    or check's exit 3, which reports a finding, not a failure)."""
    inputs, outputs = _paths_on_command_line(args if args is not None else sys.argv[1:])
    for option, value in outputs:
        refuse_overwrite(inputs, [value], option)
    with transaction(inputs):
        try:
            app(args=args, prog_name="dlakit")
        except SystemExit as exc:
            interrupt = _interrupt_behind(exc)
            if interrupt is not None:  # typer turns Ctrl-C into a silent exit 130; say which signal it was
                raise interrupt from None
            if exc.code not in (None, EXIT_OK, EXIT_NOT_FULL_DLA):
                raise
            code = exc.code
        else:
            code = None
    if code not in (None, EXIT_OK):
        sys.exit(code)
    sys.exit(EXIT_OK)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning user errors into one line on stderr and exit code 2.

    Usage errors (unknown option, missing argument) are click's: usage line, message, exit 2. Ctrl-C prints
    'interrupted' and exits 130, SIGTERM 'terminated' and 143; in every failing case no output is left behind.
    """
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        with _sigterm_raises():
            _run_committing(argv)
    except DlakitError as exc:
        if debug:
            raise
        typer.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except Terminated:
        typer.echo("terminated", err=True)
        sys.exit(128 + signal.SIGTERM)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)

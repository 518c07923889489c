"""The ``dlakit`` command line: thin wrappers over the Python API, one module per command group.

Each module in :data:`COMMAND_MODULES` defines ``register(app)``; modules not yet present are skipped, so a
capability is added by adding its module. Errors a user can cause print one line and exit 2.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.util
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from dlakit import __version__
from dlakit.atomic import refuse_overwrite, transaction
from dlakit.errors import EXIT_BAD_INPUT, EXIT_NOT_FULL_DLA, EXIT_OK, DlakitError, OptionError

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
    "sweep",
    "plan",
)

#: command -> (module in :data:`COMMAND_MODULES` that registers it, its help's first paragraph). ``dlakit --help``
#: lists commands from this table, so that it imports no command module (and none of onnx, onnx_ir, numpy...);
#: a command's module is imported when the command runs or shows its own help. tests/test_cli_startup.py holds
#: the table equal to what the modules register.
COMMANDS: dict[str, tuple[str, str]] = {
    "check": ("check", "Which nodes run on the DLA, which fall back to the GPU and why; DLA subgraphs and "
                       "transitions."),
    "targets": ("targets", "List platforms (DLA cores, power modes, releases) and software releases (TensorRT, DLA "
                           "versions)."),
    "fix": ("fix", "Rewrite unsupported patterns into DLA-supported ones and prove the result equal with ONNX "
                   "Runtime."),
    "zoo": ("zoo", "Reference networks (ResNet-50, SSD, RetinaNet...) built offline, as published or prepared for "
                   "DLA."),
    "prepare": ("prepare", "Take a reference network (or any CNN) to its DLA-ready form: cut post-processing, "
                           "simplify the head, fold and fuse, verified against the original at the cut points."),
    "estimate": ("estimate", "Images per second, latency and per-layer time of a network on the DLA, with the "
                             "model's error band."),
    "quantize": ("quantize", "Calibrate MODEL on your data and write the DLA INT8 files for the release: "
                             "calibration cache, scales JSON, --layerPrecisions string, Q/DQ model and the trtexec "
                             "command."),
    "qdq-translate": ("quantize", "Q/DQ model → model without Q/DQ + calibration cache + scales JSON + FP16 layer "
                                  "list, checking weight scales against TensorRT's per-channel max|W|/127 rule; with "
                                  "--calib-cache, the reverse (cache → Q/DQ model)."),
    "emulate": ("quantize", "Run MODEL with DLA INT8 numerics on ONNX Runtime and report the error of every output "
                            "against FP32."),
    "eval": ("quantize", "Top-1/top-5 accuracy (or COCO detection AP with --coco), FP32 and emulated DLA INT8 side "
                         "by side."),
    "sparsify": ("sparsify", "Prune the DLA-eligible convolutions to 2:4 structured sparsity and report, per layer, "
                             "what it costs and gains."),
    "report": ("report", "Write one self-contained HTML report: placement, subgraphs, estimate per power mode, "
                         "roofline, trtexec."),
    "trtexec": ("deploy", "Print the exact trtexec command for the target release, with a comment explaining every "
                          "flag."),
    "compare": ("deploy", "Compare what TensorRT did on the device (build log, profile) with dlakit's placement and "
                          "estimate."),
    "recover": ("recover", "Recover INT8 accuracy on DLA and write the recovered FP32 model with the files `dlakit "
                           "quantize` writes."),
    "sweep": ("sweep", "Check + estimate (+ --quantize) of every model × platform × release × power mode, into one "
                       "table."),
    "plan": ("plan", "Assign networks (whole, or backbone on a DLA and head on the GPU) to GPU, DLA0 and DLA1 for "
                     "the highest frame rate, or meeting latency targets, with shared-DRAM contention modelled; "
                     "prints trtexec commands per engine."),
}


#: library parameter -> the flag that sets it, where the flag is not ``--`` + the name with dashes
#: (:class:`dlakit.errors.OptionError` names parameters; the command line shows flags)
FLAGS = {"target_sqnr_db": "--target-sqnr", "budget_mb": "--memory-budget-mb", "channels": "--channel-order"}


def error_line(exc: DlakitError) -> str:
    """The line the command line prints for ``exc``: flags, not the library's parameter names."""
    return exc.with_flags(FLAGS) if isinstance(exc, OptionError) else str(exc)


def tidy_help(command: Any) -> None:
    """Help that reads like other CLIs: flags that take no value show no ``<bool>`` type, and arguments read
    ``MODEL`` in the usage line rather than ``{model}`` (typer's own style since 0.2x); applied to ``command`` and
    everything under it."""
    for param in getattr(command, "params", ()):
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        elif param.param_type_name == "argument" and param.metavar is None:
            label = (param.name or "").upper()
            piece = label if param.required else f"[{label}]"
            param.metavar = label
            param.get_usage_pieces = lambda ctx, piece=piece: [piece]
    original = getattr(command, "get_help_option", None)
    if original is not None and not getattr(original, "_tidy", False):
        def help_option(ctx: Any, original: Any = original) -> Any:
            option = original(ctx)
            if option is not None and option.metavar is None:
                option.metavar = ""
            return option

        help_option._tidy = True  # type: ignore[attr-defined]
        command.get_help_option = help_option
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub)


#: width of rich output when stdout is not a terminal (piped, CI logs): wide enough that tables take the width of
#: their content, never rich's 80-column default that wraps the "why" column and cuts names
CONTENT_WIDTH = 10_000


def output_width() -> int | None:
    """Columns for the tables and text a command prints: ``--width``, else the terminal's (None: rich decides,
    or ``COLUMNS`` if the user set it), else :data:`CONTENT_WIDTH` when not writing to a terminal."""
    if _state.get("width"):
        return int(_state["width"])  # type: ignore[arg-type]
    if "COLUMNS" in os.environ or sys.stdout.isatty():
        return None
    return CONTENT_WIDTH


def _wide_output(command: Any) -> None:
    """Run each command under :func:`output_width` (rich reads ``COLUMNS`` when a console is made); only the
    command's own run, so that help pages keep a readable width."""
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for sub in subcommands.values():
            _wide_output(sub)
        return
    invoke = command.invoke

    def wide_invoke(ctx: Any, invoke: Any = invoke) -> Any:
        width = output_width()
        if width is None:
            return invoke(ctx)
        saved = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = str(width)
        try:
            return invoke(ctx)
        finally:
            if saved is None:
                os.environ.pop("COLUMNS", None)
            else:
                os.environ["COLUMNS"] = saved

    command.invoke = wide_invoke


class LazyGroup(TyperGroup):
    """The root command: commands are imported when used, listed from :data:`COMMANDS` for ``--help``."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *(name for name in self.commands if name not in COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, summary = COMMANDS[cmd_name]
            if self._listing:  # the root help needs a name and a line, not the command
                return TyperCommand(name=cmd_name, help=summary)
            self._load(module)
        return self.commands.get(cmd_name)

    def _load(self, module: str) -> None:
        if importlib.util.find_spec(f"dlakit.cli.{module}") is None:
            return
        sub = typer.Typer()
        importlib.import_module(f"dlakit.cli.{module}").register(sub)
        group = typer.main.get_group(sub)
        tidy_help(group)
        _wide_output(group)
        for name, command in group.commands.items():
            self.commands.setdefault(name, command)

    def load_all(self) -> None:
        """Import every command module (for tools that walk the whole command tree)."""
        for module in dict.fromkeys(m for m, _ in COMMANDS.values()):
            self._load(module)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        tidy_help(self)
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="dlakit",
    help="Take convolutional networks onto NVIDIA's DLA: check, fix, quantize, sparsify, estimate, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=LazyGroup,
)

_state: dict[str, object] = {"debug": False, "width": None}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dlakit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback of errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
    width: int | None = typer.Option(None, "--width", min=20, help="Columns for tables and text (default: the "
                                     "terminal's; the width of the content when not a terminal)."),
) -> None:
    _state["debug"] = debug
    _state["width"] = width


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


#: Collector thresholds while a command runs. A model is hundreds of thousands of long-lived objects (IR nodes and
#: values, placements), and with Python's defaults the collector walks all of them again and again as they are
#: built: a quarter of ``check``'s time on a 100k-node graph. Young cycles are still collected, less often.
GC_THRESHOLDS = (100_000, 50, 100)


@contextlib.contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)


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
        with _sigterm_raises(), _fewer_gc_passes():
            _run_committing(argv)
    except DlakitError as exc:
        if debug:
            raise
        typer.echo(f"error: {error_line(exc)}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except Terminated:
        typer.echo("terminated", err=True)
        sys.exit(128 + signal.SIGTERM)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)

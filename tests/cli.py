"""Run the dlakit command line in-process (fast) or as a real subprocess (for the entry point itself)."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import traceback
from dataclasses import dataclass


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run(*args: str) -> Result:
    """``dlakit ARGS`` through :func:`dlakit.cli.main`, with its exit code, stdout and stderr."""
    from dlakit.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception:  # what a user would see as a traceback (e.g. with --debug)
            traceback.print_exc()
            code = 1
    return Result(code, out.getvalue(), err.getvalue())


def run_subprocess(*args: str, timeout: int = 120) -> Result:
    """``python -m dlakit ARGS`` in a fresh interpreter."""
    done = subprocess.run([sys.executable, "-m", "dlakit", *args], capture_output=True, text=True, timeout=timeout)
    return Result(done.returncode, done.stdout, done.stderr)

"""The one exception type users see.

Every error a user can cause (a missing file, a dynamic input without ``--shapes``, an unknown platform)
is raised as :class:`DlakitError` with a single line that names the file, node or tensor and says what to do.
The command line prints that line and exits with :data:`EXIT_BAD_INPUT`; anything else is a bug in dlakit.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_NOT_FULL_DLA = 3


class DlakitError(Exception):
    """A problem with the user's input, explained in one line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # one line, always; control characters in names (ANSI escapes) shown escaped
        return printable(" ".join(self.message.split()))


def printable(text: str) -> str:
    """``text`` with control characters (ANSI escapes, newlines in a node name from the file) shown escaped, so
    that a hostile name cannot drive the terminal or break a line."""
    return text if text.isprintable() else "".join(
        c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def numpy_file_problem(exc: BaseException) -> str:
    """numpy's reason for refusing an .npy/.npz file, minus its advice to load pickles (dlakit never does)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "pickle" in text.lower():
        return "no numpy array data in it: a text, pickle or other file"
    return text

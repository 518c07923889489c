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


class OptionError(DlakitError):
    """A bad value of a parameter: the library's message names the parameter (``max_fp16_macs: 2 is not a
    fraction...``), the command line's names its flag (``--max-fp16-macs: 2 is not...``).

    ``template`` holds ``{name}`` for each name in ``options`` (the first is :attr:`option`, the one at fault);
    :meth:`with_flags` renders it with flags. Only those placeholders are replaced, so values quoted in the text
    may hold braces.
    """

    def __init__(self, template: str, *options: str) -> None:
        self.template, self.options = template, options
        self.option = options[0] if options else ""
        super().__init__(self._render({name: name for name in options}))

    def _render(self, names: dict[str, str]) -> str:
        text = self.template
        for name, shown in names.items():
            text = text.replace("{" + name + "}", shown)
        return text

    def with_flags(self, flags: dict[str, str]) -> str:
        """The message as the command line shows it: each parameter by its flag (``flags``, else ``--name``)."""
        shown = {name: flags.get(name, "--" + name.replace("_", "-")) for name in self.options}
        return printable(" ".join(self._render(shown).split()))


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

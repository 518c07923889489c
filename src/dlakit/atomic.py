"""Write outputs so that a failure never leaves a half-written file behind, and never replaces an input.

Two guarantees, kept here in one place for every command:

- **No output replaces an input.** :func:`refuse_overwrite` compares paths by device and inode (``os.stat``), so the
  same file reached through another spelling, a symbolic link or a hard link is recognised. A command's inputs are
  registered with its :class:`Transaction`, and every file staged in it is checked against them, including each file
  a multi-file output (``quantize -o DIR``) would put into a folder.
- **A failing run leaves nothing behind.** Each output is written to a temporary folder next to its target (so that
  side files, e.g. ONNX external data ``model.onnx.data``, are staged too) and renamed into place only when the whole
  command succeeded: inside a transaction every staged file waits for :meth:`Transaction.commit`; an exception,
  ``KeyboardInterrupt`` or SIGTERM (the CLI turns it into an exception) removes every temporary and every folder the
  run created. Outside a transaction, :func:`atomic_path` commits its one file at the end of its block.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from dlakit.errors import DlakitError

PathLike = str | os.PathLike[str]

_ACTIVE: contextvars.ContextVar[Transaction | None] = contextvars.ContextVar("dlakit_transaction", default=None)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()  # follows symbolic links: a link to an input is that input
    except (OSError, ValueError):
        return None
    return stat.st_dev, stat.st_ino


def refuse_overwrite(inputs: Iterable[PathLike], outputs: Iterable[PathLike], option: str = "output") -> None:
    """A one-line error if any of ``outputs`` is one of the files in ``inputs`` (same path, a symbolic link to it,
    or a hard link of it). Folders among ``inputs`` are not files that could be replaced and are skipped."""
    files = {}
    for given in inputs:
        path = Path(given)
        if path.is_file():
            ident = _identity(path)
            if ident is not None:
                files[ident] = path
    for given in outputs:
        ident = _identity(Path(given))
        if ident is not None and ident in files:
            path = files[ident]
            kind = "model" if path.suffix.lower() == ".onnx" else "file"
            same = "" if Path(given) == path else f" {path} (the same file, a link or a hard link of it)"
            raise DlakitError(f"{option} {given}: refusing to overwrite the input {kind}{same}; dlakit never "
                              "replaces an input, choose another output path")


class Transaction:
    """The outputs of one command: staged as temporaries, renamed into place together by :meth:`commit`."""

    def __init__(self, inputs: Iterable[PathLike] = ()) -> None:
        self.inputs: list[Path] = [Path(p) for p in inputs]
        self._staged: dict[Path, Path] = {}  # target -> its temporary folder
        self._created: list[Path] = []  # folders made for the outputs, removed again on failure

    def stage(self, target: PathLike) -> Path:
        """A temporary path with the target's name, inside a temporary folder next to it. Staging a target again
        replaces the earlier temporary (the last writer wins, as with plain files)."""
        target = Path(target)
        _check_target(target)
        refuse_overwrite(self.inputs, [target])
        if target in self._staged:
            shutil.rmtree(self._staged.pop(target), ignore_errors=True)
        self._make_parent(target)
        try:
            folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
            tmp = folder / target.name
            tmp.touch()
        except OSError as exc:
            raise DlakitError(f"{target}: cannot write here ({exc.strerror}); choose another output path") from None
        self._staged[target] = folder
        return tmp

    def _make_parent(self, target: Path) -> None:
        missing = []
        parent = target.parent
        while not parent.exists() and parent != parent.parent:
            missing.append(parent)
            parent = parent.parent
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DlakitError(f"{target}: cannot write here ({exc.strerror}); choose another output path") from None
        self._created.extend(reversed(missing))

    def commit(self) -> None:
        """Rename every staged file (side files first, the named target last) over its target."""
        moves = []
        for target, folder in self._staged.items():
            side = sorted(p for p in folder.iterdir() if p.name != target.name)
            for path in [*side, folder / target.name]:
                destination = target.parent / path.name
                if path.name != target.name:
                    _check_target(destination)
                    refuse_overwrite(self.inputs, [destination])
                moves.append((path, destination))
        umask = os.umask(0)
        os.umask(umask)
        for path, destination in moves:
            with contextlib.suppress(OSError):
                os.chmod(path, 0o666 & ~umask)
            try:
                os.replace(path, destination)
            except OSError as exc:
                raise DlakitError(f"{destination}: cannot write here ({exc.strerror}); choose another output "
                                  "path") from None
        for folder in self._staged.values():
            shutil.rmtree(folder, ignore_errors=True)
        self._staged.clear()
        self._created.clear()

    def rollback(self) -> None:
        """Remove every temporary and the folders made for them: a failed run leaves the disk as it found it."""
        for folder in self._staged.values():
            shutil.rmtree(folder, ignore_errors=True)
        self._staged.clear()
        for folder in reversed(self._created):
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if still empty
        self._created.clear()


def _check_target(target: Path) -> None:
    if target.is_dir():
        raise DlakitError(f"{target}: is a directory; pass the path of the file to write")


@contextlib.contextmanager
def transaction(inputs: Iterable[PathLike] = ()) -> Iterator[Transaction]:
    """Collect every output written inside the block (through :func:`atomic_path`, :func:`write_text`,
    :func:`write_with`) and commit them together at its end; any exception removes them all. Nested blocks join
    the outer transaction (its inputs are extended)."""
    outer = _ACTIVE.get()
    if outer is not None:
        outer.inputs.extend(Path(p) for p in inputs)
        yield outer
        return
    tx = Transaction(inputs)
    token = _ACTIVE.set(tx)
    try:
        yield tx
        tx.commit()
    except BaseException:
        tx.rollback()
        raise
    finally:
        _ACTIVE.reset(token)


@contextlib.contextmanager
def atomic_path(target: PathLike) -> Iterator[Path]:
    """Yield a temporary path for ``target``; it becomes ``target`` only if the block (and, inside a
    :func:`transaction`, the whole transaction) succeeds. Files written next to it (external data) go with it."""
    target = Path(target)
    _check_target(target)
    if target.exists() and not target.is_file():  # /dev/null, a FIFO: renaming over it would replace the node
        yield target
        return
    active = _ACTIVE.get()
    if active is not None:
        yield active.stage(target)
        return
    with transaction() as tx:
        yield tx.stage(target)


def write_text(target: PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_with(target: PathLike, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result to ``target`` atomically."""
    with atomic_path(target) as tmp:
        writer(tmp)

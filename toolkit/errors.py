"""Errors the toolkit raises for bad user input, and the boundary around user code.

Example:
    >>> def loss():
    ...     return 1 / 0
    >>> try:
    ...     with user_code("my.toml: case 'c': loss", [loss.__code__.co_filename]):
    ...         loss()
    ... except UserCodeError as e:
    ...     print(str(e).split(": ")[-2:])
    ['ZeroDivisionError', 'division by zero']
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


class ConfigError(ValueError):
    """Bad user input (config file, experiment reference, CLI argument).

    The message names the file and the key path and says what would be valid; the CLI
    prints it without a traceback and exits with code 2.
    """


class UserCodeError(ConfigError):
    """An experiment's own code raised: the message gives its ``file:line`` and the exception."""


class OutputError(ConfigError):
    """The results folder cannot be written (read-only, under a file, disk full)."""


def locate(exc: BaseException, files: Iterable[str | Path]) -> str | None:
    """``file:line`` of the deepest traceback frame in one of ``files``, if any (with no
    files, the deepest frame outside the import machinery)."""
    files = {os.path.realpath(str(f)) for f in files}
    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{exc.filename}:{exc.lineno}"
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        # With no files known (a module imported by name) the deepest real frame is the best.
        if os.path.realpath(frame.filename) in files or (
            not files and not frame.filename.startswith("<")
        ):
            return f"{frame.filename}:{frame.lineno}"
    return None


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, on one line.

    Example:
        >>> describe(KeyError("w"))
        "KeyError: 'w'"
    """
    text = exc.msg if isinstance(exc, SyntaxError) else str(exc)
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


@contextmanager
def user_code(
    where: str, files: Iterable[str | Path], *, require_frame: bool = False
) -> Iterator[None]:
    """Turns an exception raised by an experiment's code into a one-line :class:`UserCodeError`.

    The message is ``where: file:line: Type: message`` with the deepest frame that lies in
    ``files`` (the experiment's sources; with none given, the deepest frame). Experiment code
    is called only inside this boundary.

    Args:
        where: what was being run, e.g. ``"configs/x.toml: experiment 'x': case 'c': loss"``.
        files: the experiment's source files.
        require_frame: re-raise unchanged when no frame lies in ``files`` (the error is then
            the toolkit's, and its traceback is wanted).

    Raises:
        UserCodeError: the block raised an ``Exception`` or called ``sys.exit`` (not
            ``KeyboardInterrupt``, and not a :class:`ConfigError`, which passes through).
    """
    files = list(files)
    try:
        yield
    except ConfigError:
        raise
    except (Exception, SystemExit) as exc:
        # sys.exit() in an experiment is a bug in it, not a request to end the run with its
        # code: exit 0 would claim success for a run that computed nothing.
        location = locate(exc, files)
        if location is None and require_frame:
            raise
        at = f"{location}: " if location else ""
        raise UserCodeError(f"{where}: {at}{describe(exc)}") from None

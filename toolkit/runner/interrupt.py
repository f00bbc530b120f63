"""Ctrl-C that stops a run at the next safe point.

Python raises ``KeyboardInterrupt`` wherever the main thread happens to be when SIGINT
arrives: inside a JAX/XLA call, a matplotlib draw or a NumPy routine. Inside
:func:`deferred_sigint` the first SIGINT only sets a flag; the runner calls
:func:`checkpoint` between steps, strategies and cases, which raises ``KeyboardInterrupt``
there, in plain Python code. A second SIGINT raises at once (for a stuck computation).

Example:
    >>> with deferred_sigint():
    ...     checkpoint()          # no SIGINT yet: returns
    >>> interrupted()
    False
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

_requested = threading.Event()


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    if _requested.is_set():
        raise KeyboardInterrupt
    _requested.set()


@contextmanager
def deferred_sigint() -> Iterator[None]:
    """Within the block, SIGINT requests a stop that :func:`checkpoint` carries out.

    Outside the main thread, or where SIGINT is ignored (a background job), nothing changes.
    """
    previous = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or previous is signal.SIG_IGN:
        yield
        return
    _requested.clear()
    signal.signal(signal.SIGINT, _on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _requested.clear()


def interrupted() -> bool:
    """True once SIGINT has been received inside :func:`deferred_sigint`."""
    return _requested.is_set()


def checkpoint() -> None:
    """Raises ``KeyboardInterrupt`` if SIGINT has been received; a safe point to stop at."""
    if _requested.is_set():
        raise KeyboardInterrupt

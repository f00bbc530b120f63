"""Progress of one invocation: phase lines, and bars with an ETA on a terminal.

A :class:`Reporter` is what the runner talks to: :meth:`~Reporter.say` announces a phase (a
case's reference, a training run, a sweep point finished) and :meth:`~Reporter.task` returns a
callback that reports how much of a long phase is done (finite differences, training steps).
On a terminal, :class:`LiveReporter` draws them with ``rich`` as one live display: the phase
line and a bar with elapsed time and ETA, replaced as phases go by. Elsewhere (a pipe, CI, a
log file), :class:`LineReporter` writes plain lines: one per phase, none per step.

Example:
    >>> lines = []
    >>> r = LineReporter(lines.append)
    >>> r.say("case2: finite-difference reference")
    >>> tick = r.task("case2: training", 100)
    >>> for done in range(1, 101):
    ...     tick(done)
    >>> lines
    ['case2: finite-difference reference']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

Tick = Callable[[int], None]


class Reporter(Protocol):
    """Where the runner reports progress."""

    def say(self, message: str) -> None:
        """Announces a phase."""
        ...

    def task(self, label: str, total: int) -> Tick:
        """Starts a phase of ``total`` units; the callback takes how many are done."""
        ...


class LineReporter:
    """Plain lines: one per phase, handed to ``write`` (e.g. a function printing to stderr)."""

    def __init__(self, write: Callable[[str], None]) -> None:
        self.write = write

    def say(self, message: str) -> None:
        """Writes the phase's line."""
        self.write(message)

    def task(self, label: str, total: int) -> Tick:
        """No line per unit: a log would drown in them."""
        return lambda done: None


class SilentReporter(LineReporter):
    """Reports nothing (``--quiet``, or the Python API)."""

    def __init__(self) -> None:
        super().__init__(lambda message: None)


class LiveReporter:
    """A ``rich`` live display on stderr: the current phase and a bar with ETA.

    Use it as a context manager around the invocation; lines written with :meth:`say` stay
    above the bar as a log of the phases.
    """

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
            MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
            TimeRemainingColumn(), console=Console(stderr=True), transient=True,
        )
        self.current: Any = None

    def __enter__(self) -> LiveReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def say(self, message: str) -> None:
        """Prints the phase above the live bar."""
        self.progress.console.print(f"aliasgrad: {message}", highlight=False, markup=False)

    def task(self, label: str, total: int) -> Tick:
        """Replaces the bar with one for this phase; it goes once the phase is done."""
        self._finish()
        task = self.current = self.progress.add_task(label, total=total)

        def tick(done: int) -> None:
            self.progress.update(task, completed=done)
            if done >= total and self.current == task:
                self._finish()

        return tick

    def _finish(self) -> None:
        if self.current is not None:
            self.progress.remove_task(self.current)
            self.current = None


def as_reporter(progress: Reporter | Callable[[str], None] | None) -> Reporter:
    """A :class:`Reporter` from a reporter, a line-writing callable, or ``None`` (silent)."""
    if progress is None:
        return SilentReporter()
    if hasattr(progress, "task"):
        return progress  # type: ignore[return-value]
    return LineReporter(progress)  # type: ignore[arg-type]

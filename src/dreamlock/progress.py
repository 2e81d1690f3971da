"""One progress style for every long step of every command.

On a terminal: a rich bar (label, bar, done/total, extra info, time left) on stderr. Anywhere else
(a log file, CI, a notebook's captured output) a bar would print nothing until the end, so a plain
line goes to stderr every ``every`` seconds and when the work ends:

    train: 120/600 (20%) loss 0.1234 · 1m20s elapsed, ~5m20s left
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

#: seconds between lines when the output is not a terminal
LINE_EVERY = 30.0


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


class Tracker:
    """What a long step reports: ``advance(n)`` and / or ``update(completed=..., info=...)``."""

    def __init__(self, label: str, total: int, completed: int = 0):
        self.label, self.total, self.completed, self.info = label, total, completed, ""

    def advance(self, n: int = 1, info: str | None = None) -> None:
        self.update(self.completed + n, info)

    def update(self, completed: int, info: str | None = None) -> None:
        self.completed = completed
        if info is not None:
            self.info = info
        self._show()

    def _show(self) -> None:
        pass

    def close(self) -> None:
        pass


class _BarTracker(Tracker):
    def __init__(self, label: str, total: int, completed: int, bar: Progress):
        super().__init__(label, total, completed)
        self.bar = bar
        self.task = bar.add_task(label, total=total, completed=completed, info="")

    def _show(self) -> None:
        self.bar.update(self.task, completed=self.completed, info=self.info)


class _LineTracker(Tracker):
    def __init__(self, label: str, total: int, completed: int, every: float, stream):
        super().__init__(label, total, completed)
        self.every, self.stream = every, stream
        self.start = self.last = time.monotonic()
        self.first = completed

    def _line(self) -> str:
        elapsed = time.monotonic() - self.start
        done = self.completed - self.first
        left = elapsed / done * (self.total - self.completed) if done > 0 else None
        share = f" ({100 * self.completed / self.total:.0f}%)" if self.total else ""
        info = f" {self.info}" if self.info else ""
        eta = f", ~{_duration(left)} left" if left is not None and self.completed < self.total else ""
        return f"{self.label}: {self.completed}/{self.total}{share}{info} · {_duration(elapsed)} elapsed{eta}"

    def _show(self) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            print(self._line(), file=self.stream, flush=True)

    def close(self) -> None:
        print(self._line(), file=self.stream, flush=True)


@contextmanager
def progress(label: str, total: int, completed: int = 0, *, transient: bool = True,
             every: float = LINE_EVERY, console: Console | None = None) -> Iterator[Tracker]:
    """Report a long step of ``total`` units. ``transient``: the terminal bar disappears when done."""
    console = console or Console(stderr=True)
    if not console.is_terminal:
        tracker = _LineTracker(label, total, completed, every, console.file)
        try:
            yield tracker
        finally:
            tracker.close()
        return
    columns = [TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=transient) as bar:
        yield _BarTracker(label, total, completed, bar)


def track(items, label: str, show: bool = True):
    """Iterate ``items`` (a sized collection) reporting each one done, when ``show``."""
    if not show:
        yield from items
        return
    with progress(label, len(items)) as bar:
        for item in items:
            yield item
            bar.advance()


def warn(message: str, console: Console | None = None) -> None:
    """One ``warning:`` line on stderr: something the user may want to change, but the work goes on."""
    from rich.markup import escape

    (console or Console(stderr=True)).print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)

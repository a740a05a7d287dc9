"""Progress bars for long work: rich bars on a terminal, nothing in pipes and CI.

Library code never draws bars itself: it takes a :data:`ProgressFactory` (or ``None``), calls
``factory(label, total)`` once per piece of work and feeds the returned :data:`Advance` the amount
done since the last call. The CLI makes the factory with :func:`progress_bars`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

Advance = Callable[[int], None]
ProgressFactory = Callable[[str, int | None], Advance]  # (label, total or None when unknown)

BYTES = "bytes"


def _columns(unit: str | None) -> list[Any]:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    if unit == BYTES:
        return [
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        ]
    columns: list[Any] = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    if unit is not None:
        columns += [TaskProgressColumn(), TextColumn("{task.fields[rate]}")]
    return [*columns, TimeRemainingColumn()]


class ProgressBars:
    """A live group of rich bars; calling it adds one bar and returns the function that advances it."""

    def __init__(self, progress: Any, unit: str | None, remove_finished: bool) -> None:
        self._progress = progress
        self._unit = unit
        self._remove_finished = remove_finished

    def __call__(self, label: str, total: int | None) -> Advance:
        bar = self._progress
        task_id = bar.add_task(label, total=total, rate="")

        def advance(n: int = 1) -> None:
            bar.advance(task_id, n)
            task = bar.tasks[bar.task_ids.index(task_id)]
            if self._unit not in (None, BYTES):
                bar.update(task_id, rate=f"{task.speed:,.0f} {self._unit}/s" if task.speed else "")
            if self._remove_finished and task.finished and len(bar.task_ids) > 1:
                bar.remove_task(task_id)

        return advance

    def log(self, message: str) -> None:
        """Print a line above the bars."""
        self._progress.console.print(message, highlight=False)


@contextlib.contextmanager
def progress_bars(
    enabled: bool = True, *, unit: str | None = None, transient: bool = True, remove_finished: bool = False
) -> Iterator[ProgressBars | None]:
    """Yield a :class:`ProgressBars` when ``enabled`` and stderr is a terminal, else ``None``.

    ``unit``: ``None`` shows done/total; ``"bytes"`` shows sizes and transfer speed; any other word
    also shows the rate (e.g. ``"shots"`` -> "12,345 shots/s"). ``remove_finished`` drops a finished
    bar while others remain (nested loops). Example::

        with progress_bars(unit="shots") as bars:
            rank(..., progress=bars)
    """
    if not (enabled and sys.stderr.isatty()):
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(*_columns(unit), console=Console(stderr=True), transient=transient) as progress:
        yield ProgressBars(progress, unit, remove_finished)

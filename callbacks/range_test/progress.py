"""The range test's progress on the console: a Lightning progress bar drawn with rich, one line for the sweep and
one for the max_lr trials, each with its steps done, ETA, current LR and smoothed loss.

:func:`~callbacks.range_test.finder.find_lr` puts a :class:`RangeTestProgressBar` in its trainer when the run's
trainer has ``enable_progress_bar`` (Lightning's default); Lightning's ``ProgressBar`` base disables it on every
rank but global rank 0. The sweeps reach it through ``trainer.progress_bar_callback`` (public) with
:func:`progress_task`, which hands back a task that does nothing when there is no bar. Where stdout is not a
terminal (a pipe, a log file), rich draws nothing while the test runs and writes the finished lines once at the end.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Any, Iterator, Optional

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar

__all__ = ["RangeTestProgressBar", "ProgressTask", "progress_task", "close_progress"]


class ProgressTask:
    """One line of the display. :meth:`step` after every optimizer step with its LR and loss (the line shows the
    LR and the bias-corrected running average of the loss, beta ``smooth_beta``); :meth:`skip` for steps that will
    not run (a trial that diverged). Without a display (``progress`` None) every method does nothing."""

    def __init__(self, progress: Any = None, task_id: Any = None, smooth_beta: float = 0.98, label: str = "") -> None:
        self._progress, self._task_id = progress, task_id
        self._beta, self._avg, self._n = smooth_beta, 0.0, 0
        self.label = label  # shown before the LR, e.g. "2/4 @0.03" (the second of four trials, its peak)

    def step(self, lr: float, loss: float, **extra: float) -> None:
        if self._progress is None:
            return
        if math.isfinite(loss):
            self._n += 1
            self._avg = self._beta * self._avg + (1 - self._beta) * loss
            shown = self._avg / (1 - self._beta ** self._n)
        else:
            shown = loss
        more = "".join(f", {k} {v:.3g}" for k, v in extra.items())
        info = f"{self.label + ' ' if self.label else ''}lr {lr:.3g} loss {shown:.4g}{more}"
        self._progress.update(self._task_id, advance=1, info=info)

    def restart_average(self, label: str = "") -> None:
        """A new run on the same line (the next trial): the running average starts again."""
        self._avg, self._n, self.label = 0.0, 0, label

    def skip(self, steps: int) -> None:
        if self._progress is not None and steps > 0:
            self._progress.update(self._task_id, advance=steps)

    def end(self, note: str = "") -> None:
        """Stop the line's clock. ``note``: the line ends early (the sweep stopped) and says why in place of the LR
        and loss; its bar shows full, its ETA zero."""
        if self._progress is None:
            return
        if note:
            done = next(task.completed for task in self._progress.tasks if task.id == self._task_id)
            self._progress.update(self._task_id, total=done, info=note)
        self._progress.stop_task(self._task_id)


class RangeTestProgressBar(ProgressBar):
    """Lightning's progress bar for the range-test phase: nothing per training batch (the phase runs no training
    epoch), a rich display that :func:`progress_task` adds lines to. The display starts with its first line and
    ends (leaving its final state on screen) with :func:`close_progress` once the search is over, or when the fit
    ends or fails."""

    def __init__(self, console: Any = None) -> None:
        super().__init__()
        self._enabled = True
        self._console = console  # a rich Console; None: rich's own, writing to stdout
        self._progress: Any = None

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def add_task(self, description: str, total: int, smooth_beta: float = 0.98) -> ProgressTask:
        if not self._enabled:
            return ProgressTask()
        if self._progress is None:
            self._progress = _rich_progress(self._console)
            self._progress.start()
        same = sum(task.description.startswith(description) for task in self._progress.tasks)
        task_id = self._progress.add_task(description + (f" #{same + 1}" if same else ""), total=total, info="")
        return ProgressTask(self._progress, task_id, smooth_beta)

    def print(self, *args: Any, **kwargs: Any) -> None:
        if self._progress is not None:
            self._progress.console.print(*args, **kwargs)
        else:
            print(*args, **kwargs)

    def teardown(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", stage: str) -> None:
        self.close()

    def on_exception(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", exception: BaseException) -> None:
        self.close()

    def close(self) -> None:
        """End the display, its last state left on screen; a later line starts a new one."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _rich_progress(console: Any) -> Any:
    """Description, bar, steps done/total, ETA, then the LR and smoothed loss: the fixed columns are never
    squeezed, a narrow console (80 columns in a pipe) folds the last one onto a second line instead."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Column

    def fixed() -> Column:
        return Column(no_wrap=True)

    return Progress(TextColumn("[bold]{task.description}", table_column=fixed()),
                    BarColumn(bar_width=10, table_column=fixed()), MofNCompleteColumn(table_column=fixed()),
                    TextColumn("eta", table_column=fixed()), TimeRemainingColumn(table_column=fixed()),
                    TextColumn("{task.fields[info]}", table_column=Column(overflow="fold")),
                    console=console, transient=False)


@contextmanager
def progress_task(trainer: "pl.Trainer", description: str, total: int,
                  smooth_beta: float = 0.98) -> Iterator[ProgressTask]:
    """A line on the trainer's :class:`RangeTestProgressBar` for ``total`` steps, its clock stopped on exit; a
    task that does nothing when the trainer has no such bar (progress bar off, another rank, a ``run`` from a
    user's own fit)."""
    bar: Optional[ProgressBar] = trainer.progress_bar_callback
    task = bar.add_task(description, total, smooth_beta) if isinstance(bar, RangeTestProgressBar) else ProgressTask()
    try:
        yield task
    finally:
        task.end()


def close_progress(trainer: "pl.Trainer") -> None:
    """End the trainer's range-test display now that the search is over, so that what is printed or logged next
    (warnings from the analysis) lands below its finished lines rather than inside a live display."""
    bar = trainer.progress_bar_callback
    if isinstance(bar, RangeTestProgressBar):
        bar.close()

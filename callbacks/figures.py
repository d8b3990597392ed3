"""Figures shared by the callbacks (the range test's curve, the LR schedule's plan): write a matplotlib Figure to a
file, add it to the TensorBoard loggers. matplotlib and Lightning's loggers are imported on first use, nothing is
configured on import (no backend is chosen: a Figure without a canvas gets an Agg one when it is saved)."""
from __future__ import annotations

import os
from typing import Any, List

__all__ = ["save_figure", "tensorboard_writers", "log_figure"]


def save_figure(fig: Any, path: str) -> str:
    """Write a matplotlib Figure (pyplot-free ones too: an Agg canvas is attached if it has none) to ``path``,
    creating the folder. Returns ``path``."""
    from matplotlib.backend_bases import FigureCanvasBase
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if fig.canvas is None or type(fig.canvas) is FigureCanvasBase:
        FigureCanvasAgg(fig)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path)
    return path


def tensorboard_writers(loggers: Any) -> List[Any]:
    """The ``SummaryWriter`` of every TensorBoard logger among ``loggers`` (a logger, a list such as
    ``trainer.loggers``, or None)."""
    from pytorch_lightning.loggers import TensorBoardLogger

    if loggers is None:
        return []
    if not isinstance(loggers, (list, tuple)):
        loggers = [loggers]
    return [lg.experiment for lg in loggers if isinstance(lg, TensorBoardLogger)]


def log_figure(loggers: Any, tag: str, fig: Any, step: int = 0) -> int:
    """Add ``fig`` under ``tag`` to every TensorBoard logger among ``loggers`` (a logger or a list, e.g.
    ``trainer.loggers``; others are skipped). Returns how many loggers got it."""
    writers = tensorboard_writers(loggers)
    for writer in writers:
        writer.add_figure(tag, fig, global_step=step, close=False)
        writer.flush()
    return len(writers)

"""Confusion-matrix figures: class names on the axes, counts in the cells, rows normalised by colour."""
from __future__ import annotations

import os

import torch


def confusion_figure(matrix: torch.Tensor, class_names: list[str], title: str):
    """A matplotlib figure of ``matrix`` (rows: true class, columns: predicted class)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(class_names)
    counts = matrix.to(torch.int64).numpy()
    rates = counts / counts.sum(axis=1, keepdims=True).clip(min=1)
    side = max(4.0, 0.45 * k + 2)
    fig = Figure(figsize=(side, side))
    FigureCanvasAgg(fig)  # pyplot-free: a notebook's backend is left as it is
    ax = fig.subplots()
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), class_names, rotation=90)
    ax.set_yticks(range(k), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    fig.tight_layout()
    return fig


SPLIT_NAMES = {"val": "validation", "test": "test"}


def log_confusion_matrix(trainer, head: str, matrix: torch.Tensor, class_names: list[str] | None,
                         split: str = "val") -> str:
    """Write ``<run dir>/confusion_<head>.png`` (validation) or ``confusion_test_<head>.png`` and add the figure to
    every TensorBoard logger (``confusion/<head>``, ``confusion/test/<head>``); returns the path."""
    from pytorch_lightning.loggers import TensorBoardLogger

    names = list(class_names) if class_names else [str(i) for i in range(matrix.shape[0])]
    fig = confusion_figure(matrix, names, f"{SPLIT_NAMES[split]} confusion matrix: {head}")
    scope = "" if split == "val" else f"{split}_"
    os.makedirs(trainer.default_root_dir, exist_ok=True)
    path = os.path.join(trainer.default_root_dir, f"confusion_{scope}{head}.png")
    fig.savefig(path, dpi=100)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            tag = f"confusion/{head}" if split == "val" else f"confusion/{split}/{head}"
            logger.experiment.add_figure(tag, fig, global_step=trainer.global_step)
    return path

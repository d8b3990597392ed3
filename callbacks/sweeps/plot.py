"""Plots of a sweep's monitored metric: a heatmap over two swept numbers, a line plot over one.

Axes are logarithmic where the swept values span a decade or more (LRs, weight decays); every cell or point is
annotated with its value, and jobs that diverged or failed are marked (a red cross and their status) instead of
being left out. A sweep repeated over seeds plots each setting's mean with its standard error (error bars; "mean
± se" in a heatmap's cells); a setting whose swept number is a word (``scheduler.max_lr=auto``) is a level line
with its standard error as a band, to read it against the swept numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import Normalize
from matplotlib.figure import Figure

HEATMAP_FILE = "heatmap.png"
LINEPLOT_FILE = "lineplot.png"


@dataclass
class Point:
    """One job: its swept numbers, the metric (NaN when it has none) and its status."""
    coords: tuple[float, ...]
    value: float
    status: str
    group: str = ""  # the other (non-numeric) swept values, for one line per group
    error: float = math.nan  # the standard error over seeds, where the point is a setting's mean


@dataclass
class PlotInfo:
    path: Path
    kind: str    # "heatmap" | "scatter" | "line"
    xscale: str
    yscale: str


def spans_decades(values: Sequence[float]) -> bool:
    values = [v for v in values if math.isfinite(v)]
    return bool(values) and min(values) > 0 and max(values) / min(values) >= 10


def _edges(values: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges halfway between neighbouring values (in log space for log axes)."""
    t = np.log10(values) if log else values.astype(float)
    if len(t) == 1:
        mids = np.array([t[0] - 0.5, t[0] + 0.5])
    else:
        mids = np.concatenate([[t[0] - (t[1] - t[0]) / 2], (t[:-1] + t[1:]) / 2, [t[-1] + (t[-1] - t[-2]) / 2]])
    return 10 ** mids if log else mids


def _mark(ax, x, y, status, transform=None, stacked: int = 0) -> None:
    """A red cross and its status at (x, y); ``stacked``: marks already at this place (their labels go above)."""
    kwargs = {"transform": transform} if transform is not None else {}
    ax.plot(x, y, "x", color="red", markersize=14, markeredgewidth=2.5, **kwargs)
    ax.annotate(status, (x, y), xycoords=transform or "data", textcoords="offset points", xytext=(0, 9 + 11 * stacked),
                ha="center", color="red", fontsize=8, weight="bold")


def _set_ticks(ax, axis: str, values: np.ndarray) -> None:
    set_ticks = ax.set_xticks if axis == "x" else ax.set_yticks
    set_ticks(values, [f"{v:g}" for v in values])
    set_ticks([], minor=True)


def heatmap(points: list[Point], names: tuple[str, str], metric: str, path: Path) -> PlotInfo:
    """Metric over the grid of two swept numbers; when the jobs do not fill a grid (random or Optuna search), a
    scatter plot coloured by the metric instead."""
    xs = np.array(sorted({p.coords[0] for p in points}))
    ys = np.array(sorted({p.coords[1] for p in points}))
    logx, logy = spans_decades(xs), spans_decades(ys)
    is_grid = len(xs) * len(ys) <= 2 * len(points)
    size = (1.6 + 1.3 * min(len(xs), 10), 1.2 + 0.9 * min(len(ys), 10)) if is_grid else (6.4, 4.8)
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)  # pyplot-free: no backend is switched, a notebook's stays as it is
    ax = fig.subplots()
    finite = [p.value for p in points if math.isfinite(p.value)]
    norm = Normalize(min(finite), max(finite)) if finite else None
    if is_grid:
        grid = np.full((len(ys), len(xs)), np.nan)
        for p in points:
            grid[np.searchsorted(ys, p.coords[1]), np.searchsorted(xs, p.coords[0])] = p.value
        mesh = ax.pcolormesh(_edges(xs, logx), _edges(ys, logy), np.ma.masked_invalid(grid), cmap="viridis",
                             norm=norm, shading="flat")
        ax.set_facecolor("0.85")  # cells without a value
    else:
        ok = [p for p in points if math.isfinite(p.value)]
        mesh = ax.scatter([p.coords[0] for p in ok], [p.coords[1] for p in ok], c=[p.value for p in ok],
                          cmap="viridis", norm=norm, s=120, edgecolors="k")
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    if is_grid:
        _set_ticks(ax, "x", xs)
        _set_ticks(ax, "y", ys)
    for p in points:
        if math.isfinite(p.value):
            shade = norm(p.value) if norm is not None else 0.5
            text = f"{p.value:.4g}" + (f"\n± {p.error:.2g}" if math.isfinite(p.error) else "")
            ax.annotate(text, p.coords, ha="center", va="center", fontsize=9,
                        color="black" if shade > 0.5 or not is_grid else "white", xytext=(0, 0 if is_grid else -16),
                        textcoords="offset points")
        else:
            _mark(ax, *p.coords, p.status)
    if finite:
        fig.colorbar(mesh, ax=ax, label=metric)
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title(_title(metric, points))
    return _save(fig, ax, path, "heatmap" if is_grid else "scatter")


def _title(metric: str, points: Sequence[Point]) -> str:
    if any(math.isfinite(p.error) for p in points):
        return f"{metric}, mean ± standard error over seeds ({len(points)} settings)"
    return f"{metric} ({len(points)} jobs)"


def _references(ax, references: Sequence[Point]) -> None:
    """Level lines (with a band of one standard error) for settings the x axis cannot place."""
    for i, ref in enumerate(r for r in references if math.isfinite(r.value)):
        color = f"C{(i + 5) % 10}"
        label = f"{ref.group}: {ref.value:.4g}" + (f" ± {ref.error:.2g}" if math.isfinite(ref.error) else "")
        ax.axhline(ref.value, color=color, linestyle="--", label=label)
        if math.isfinite(ref.error):
            ax.axhspan(ref.value - ref.error, ref.value + ref.error, color=color, alpha=0.15)


def lineplot(points: list[Point], name: str, metric: str, path: Path,
             references: Sequence[Point] = ()) -> PlotInfo:
    """Metric against one swept number, one line per combination of the other (non-numeric) swept values;
    ``references`` are level lines (settings whose swept value is a word, such as ``auto``)."""
    fig = Figure(figsize=(6.4, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    log = spans_decades([p.coords[0] for p in points])
    for group in sorted({p.group for p in points}):
        ok = sorted((p.coords[0], p.value, p.error) for p in points if p.group == group and math.isfinite(p.value))
        if ok:
            xs_, ys_, errors = zip(*ok)
            ax.errorbar(xs_, ys_, yerr=[e if math.isfinite(e) else 0.0 for e in errors], fmt="o-", capsize=3,
                        label=group or None)
            for x, y, _ in ok:
                ax.annotate(f"{y:.4g}", (x, y), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8)
    ax.set_xscale("log" if log else "linear")
    marked: dict[tuple, list[str]] = {}
    for p in points:
        if not math.isfinite(p.value):  # no value to place: at the bottom edge, at its x, one label per status
            here = marked.setdefault(p.coords[:1], [])
            if p.status not in here:
                _mark(ax, p.coords[0], 0.05, p.status, transform=ax.get_xaxis_transform(), stacked=len(here))
                here.append(p.status)
    xs = np.array(sorted({p.coords[0] for p in points}))
    if len(xs) <= 12:
        _set_ticks(ax, "x", xs)
    _references(ax, references)
    if ax.get_legend_handles_labels()[0]:  # a group without any value draws no line: no empty legend
        ax.legend(fontsize=8)
    ax.set_xlabel(name)
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.set_title(_title(metric, [*points, *references]))
    return _save(fig, ax, path, "line")


def _save(fig, ax, path: Path, kind: str) -> PlotInfo:
    info = PlotInfo(Path(path), kind, ax.get_xscale(), ax.get_yscale())
    fig.tight_layout()
    partial = Path(path).with_name(Path(path).stem + ".partial.png")
    fig.savefig(partial, dpi=110)
    partial.replace(path)  # never a half-written plot under the final name
    return info

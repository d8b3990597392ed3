"""The report of an LR range test (loss or accuracy): matplotlib figure, CSV, JSON, TensorBoard, rich table.

Every function takes a :class:`callbacks.range_test.result.RangeTestResult` (duck-typed here; the result's methods
``plot``/``to_csv``/``to_json``/``save``/``log_to``/``print`` call them). Writing and logging a figure are
:mod:`callbacks.figures`' job (shared with the LR-schedule plot).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from typing import Any, Iterable, List, Optional

import numpy as np

from callbacks.figures import log_figure, save_figure, tensorboard_writers

__all__ = [
    "result_figure",
    "write_csv",
    "write_json",
    "read_json_dict",
    "log_result",
    "print_result",
    "save_result",
]

_STYLES = {"min_div10": ("k", "--"), "steepest": ("tab:red", ":"), "valley": ("tab:green", "-."),
           "loss_min": ("tab:purple", (0, (1, 3))), "rise": ("tab:orange", "-"), "trials": ("tab:brown", "--"),
           "update": ("tab:gray", "-."), "blend": ("tab:cyan", "-")}


# ---------------------------------------------------------------------------------------------- figures
def _loss_figure(result: Any) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 6), dpi=110, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    runs = result.repeats or [{"lrs": result.lrs, "losses": result.losses, "smoothed": result.smoothed}]
    tops, bottoms = [], []
    for r, run in enumerate(runs):
        lr, raw, sm = (np.asarray(run[k], dtype=np.float64) for k in ("lrs", "losses", "smoothed"))
        lab = "" if len(runs) == 1 else f" (repeat {r})"
        ax.plot(lr, raw, color=f"C{r}", alpha=0.3, lw=0.8, label=f"raw loss{lab}")
        ax.plot(lr, sm, color=f"C{r}", lw=2.2, label=f"smoothed loss{lab}")
        fin = raw[np.isfinite(raw)]
        if fin.size:
            tops.append(min(float(fin.max()), max(float(sm[0]), float(np.max(sm[: int(np.argmin(sm)) + 1]))) * 1.3))
            bottoms.append(float(min(fin.min(), sm.min())))
    for name, value in result.suggestions.items():
        col, ls = _STYLES.get(name, ("0.4", "--"))
        star = " (chosen)" if name == result.rule else ""
        ax.axvline(value, color=col, ls=ls, lw=1.5, label=f"{name} = {value:.3g}{star}")
    if result.carry:  # Adagrad: the rule's LR carried to the run's LR peak (step_count.py)
        ax.axvline(result.lr, color="tab:olive", ls="-", lw=2.0,
                   label=f"carried to the run's peak (Adagrad) = {result.lr:.3g}")
    ax.set_xscale("log")
    if tops and bottoms and max(tops) > min(bottoms):
        pad = 0.05 * (max(tops) - min(bottoms))
        ax.set_ylim(min(bottoms) - pad, max(tops) + pad)
    s = result.settings
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.set_title(f"LR range test ({s.get('mode', '?')}, {s.get('min_lr', 0):g} to {s.get('max_lr', 0):g}, "
                 f"{len(result.lrs)} steps)")
    ax.grid(True, which="both", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    sizes = _step_sizes(ax, runs[0], s.get("update_share"))
    fig.legend(handles + sizes, labels + [h.get_label() for h in sizes], fontsize=8, loc="outside lower center",
               ncols=2)  # below the axes: no line crosses it
    return fig


def _step_sizes(ax: Any, run: dict, share: Any) -> list:
    """How far each step moved the weights (first repeat; :mod:`callbacks.range_test.update_size`), on a log
    axis at the right, with the update point's share; the lines drawn (none for a sweep recorded without them)."""
    sizes = np.asarray(run.get("updates") or [], dtype=np.float64)
    keep = np.isfinite(sizes) & (sizes > 0)
    if not keep.any():
        return []
    right = ax.twinx()
    lines = right.plot(np.asarray(run["lrs"], dtype=np.float64)[keep], sizes[keep], color="tab:gray", lw=1.0,
                       alpha=0.8, label="step size (right axis: |dw| / |w|, median over weight tensors)")
    if share:
        lines += [right.axhline(share, color="tab:gray", ls=":", lw=1.0, label=f"step size {share:.0%}")]
    right.set_yscale("log")
    right.set_ylabel("step size |dw| / |w|")
    return lines


def _accuracy_figure(result: Any) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    ev_lr = [e["lr"] for e in result.evals]
    ev_acc = [e["acc"] for e in result.evals]
    err = [e.get("stderr", 0.0) for e in result.evals]
    ax.errorbar(ev_lr, ev_acc, yerr=err, fmt="o-", lw=2, capsize=2, label="validation accuracy (+- 1 s.e.)")
    if result.base_lr is not None:  # (none where the test found no bounds: the points alone, to read by eye)
        ax.axvline(result.base_lr, color="tab:green", ls="--", label=f"base_lr = {result.base_lr:.3g}")
        ax.axvline(result.lr, color="tab:red", ls="--", label=f"max_lr = {result.lr:.3g}")
    ax2 = ax.twinx()
    ax2.plot(result.lrs, result.losses, color="0.6", alpha=0.4, lw=0.8, label="training loss")
    ax2.set_ylabel("training loss")
    s = result.settings
    ax.set_xlabel("learning rate (linear ramp)")
    ax.set_ylabel("validation accuracy")
    ax.set_title(f"Accuracy range test (Smith 2015): {s.get('min_lr', 0):g} to {s.get('max_lr', 0):g}"
                 + ("" if result.base_lr is not None else ", no bounds found"))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def result_figure(result: Any) -> Any:
    """The curve with the suggestions (loss test) or the accuracy points with base_lr/max_lr (accuracy test)."""
    return _accuracy_figure(result) if result.kind == "accuracy" else _loss_figure(result)


# ---------------------------------------------------------------------------------------------- files
def _num(value: Any) -> str:
    return repr(float(value))  # shortest exact round-trip text (also for numpy scalars)


def write_csv(result: Any, path: str) -> str:
    """One row per sweep step: loss test ``step, lr, loss, smoothed_loss, repeat, step_size`` (every repeat;
    ``step_size``: how far the step moved the weights, :mod:`callbacks.range_test.update_size`); accuracy test
    ``step, lr, loss, smoothed_loss, val_acc, images`` (the accuracy columns filled where it was measured; the
    measurement before the first step is the row with step -1)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        if result.kind == "accuracy":
            w.writerow(["step", "lr", "loss", "smoothed_loss", "val_acc", "images"])
            at = {e["step"]: e for e in result.evals}
            if -1 in at:
                w.writerow([-1, _num(at[-1]["lr"]), "", "", _num(at[-1]["acc"]), at[-1]["images"]])
            for k, (lr, loss, sm) in enumerate(zip(result.lrs, result.losses, result.smoothed)):
                e = at.get(k)
                w.writerow([k, _num(lr), _num(loss), _num(sm), "" if e is None else _num(e["acc"]),
                            "" if e is None else e["images"]])
        else:
            w.writerow(["step", "lr", "loss", "smoothed_loss", "repeat", "step_size"])
            runs = result.repeats or [{"lrs": result.lrs, "losses": result.losses, "smoothed": result.smoothed}]
            for r, run in enumerate(runs):
                sizes = run.get("updates") or [math.nan] * len(run["lrs"])
                for k, (lr, loss, sm, size) in enumerate(zip(run["lrs"], run["losses"], run["smoothed"], sizes)):
                    w.writerow([k, _num(lr), _num(loss), _num(sm), r, _num(size)])
    return path


def write_json(result: Any, path: str) -> str:
    """All fields of the result (floats round-trip exactly; NaN/inf as JSON's NaN/Infinity)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(dataclasses.asdict(result), f, indent=2)
    return path


def read_json_dict(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def save_result(result: Any, out_dir: str) -> List[str]:
    """Write ``<name>.png``, ``<name>.csv`` and ``<name>.json`` to ``out_dir``; ``<name>`` is ``lr_range_test``
    or ``accuracy_range_test``. Returns the three paths."""
    name = "accuracy_range_test" if result.kind == "accuracy" else "lr_range_test"
    base = os.path.join(str(out_dir), name)
    return [save_figure(result_figure(result), base + ".png"), write_csv(result, base + ".csv"),
            write_json(result, base + ".json")]


# ---------------------------------------------------------------------------------------------- TensorBoard
def _scalars(result: Any) -> Iterable[tuple]:
    name = "accuracy_range_test" if result.kind == "accuracy" else "lr_range_test"
    runs = result.repeats or [{"lrs": result.lrs, "losses": result.losses, "smoothed": result.smoothed}]
    for r, run in enumerate(runs):
        pre = name if r == 0 else f"{name}/repeat_{r}"
        for k, (lr, loss, sm) in enumerate(zip(run["lrs"], run["losses"], run["smoothed"])):
            if math.isfinite(loss):
                yield f"{pre}/loss", loss, k
            if math.isfinite(sm):
                yield f"{pre}/smoothed_loss", sm, k
            yield f"{pre}/lr", lr, k
        for k, size in enumerate(run.get("updates", [])):
            if math.isfinite(size):
                yield f"{pre}/step_size", size, k
    for e in result.evals:
        yield f"{name}/val_acc", e["acc"], max(e["step"], 0)


def log_result(result: Any, loggers: Any) -> int:
    """The figure (``<name>/curve``) and the curve as scalars (step = sweep step) to every TensorBoard logger
    among ``loggers``. Returns how many loggers got it."""
    name = "accuracy_range_test" if result.kind == "accuracy" else "lr_range_test"
    writers = tensorboard_writers(loggers)
    if not writers:
        return 0
    log_figure(loggers, f"{name}/curve", result_figure(result))
    for writer in writers:
        for tag, value, step in _scalars(result):
            writer.add_scalar(tag, value, global_step=step)
        writer.flush()
    return len(writers)


# ---------------------------------------------------------------------------------------------- console
def print_result(result: Any, console: Optional[Any] = None) -> None:
    """A rich table of the suggestions (with the spread over repeats) or of the accuracy test's bounds, the
    status line and the chosen value."""
    from rich.console import Console
    from rich.table import Table

    con = console or Console()
    caption = f"{result.elapsed_s:.1f} s; {result.status}"
    if result.kind == "accuracy":
        table = Table(title="Accuracy range test")
        cols = ("base_lr", "max_lr", "peak_lr", "start_acc", "peak_acc", "images/point")
        for col in cols:
            table.add_column(col, justify="right")
        table.add_row(f"{result.base_lr:.4g}", f"{result.lr:.4g}", f"{result.suggestions['peak_lr']:.4g}",
                      f"{result.start_acc:.4g}", f"{result.peak_acc:.4g}", str(result.eval_images))
        con.print(table)
        con.print(caption, markup=False)  # under the table, one line: a caption wraps to a narrow table's width
        con.print(f"[bold]found max_lr = {result.lr:.4g}, base_lr = {result.base_lr:.4g}[/bold]")
        return
    multi = len(result.repeats) > 1
    table = Table(title="LR range test")
    table.add_column("suggestion")
    table.add_column("lr", justify="right")
    if multi:
        table.add_column("std over repeats", justify="right")
        table.add_column("values", justify="right")
    for name, value in result.suggestions.items():
        row = [name + (" *" if name == result.rule else ""), f"{value:.4g}"]
        if multi:
            sp = result.spread.get(name)  # none for "trials": one choice, not a rule per repeat
            row += [f"{sp['std']:.3g}", ", ".join(f"{v:.3g}" for v in sp["values"])] if sp else ["", ""]
        table.add_row(*row)
    con.print(table)
    con.print(caption, markup=False)
    if result.trials:
        val = any("val_loss" in t for t in result.trials)
        trials = Table(title=f"max_lr trials ({result.trial_length} each)")
        score = ("score: mean training loss over each trial's last quarter (lowest wins; where the trials memorised "
                 "the training set, the lowest val loss)" if val else
                 "score: mean training loss over each trial's last quarter (lowest wins)")
        for col in ("max_lr", "x rule", "steps", "score") + (("val loss",) if val else ()):
            trials.add_column(col, justify="right")
        # the trials' own choice (auto's LR blends it with the update point, or carries it for Adagrad)
        chosen = result.suggestions["trials"] if result.rule in ("blend", "trials") else result.lr
        for t in result.trials:
            trials.add_row(f"{t['lr']:.4g}" + (" *" if math.isclose(t["lr"], chosen) else ""),
                           f"{t['factor']:.3g}",
                           str(t["steps"]), f"{t['score']:.4g}",
                           *([f"{t['val_loss']:.4g}" if "val_loss" in t else "-"] if val else []))
        con.print(trials)
        con.print(score, markup=False)
    con.print(f"[bold]found max_lr = {result.lr:.4g}[/bold] ({result.source})")

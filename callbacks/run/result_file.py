"""``result.json``: the record a run leaves in its run directory, and the only module that writes or reads it.

train.py writes it when training starts (status "running") and rewrites it with the outcome ("completed",
"diverged", "interrupted"; "failed" for a sweep job that raised); the sweep tools (callbacks/sweeps/: summary,
resume, the Hydra callback's record of a job that raised) and the benchmarks read it. One JSON object per run:
status, reason, overrides, monitor, monitor_mode, lr (max_lr and its source), metrics, objective, epochs, steps,
wall_s, checkpoint, run_dir.

It also writes the run's ``config.yaml`` (:func:`write_config`: the resolved config that ran, for train.py and
task=eval alike), and puts both files back when a resume is refused (:func:`run_records`, :func:`put_back`). Under
DDP only rank 0 writes either.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


RESULT_FILE = "result.json"
CONFIG_FILE = "config.yaml"
FINISHED = ("completed", "diverged")  # results: a rerun would only repeat them
FINAL = (*FINISHED, "failed")         # the job has ended; "running" (or "interrupted") has not


def write_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` in one step (through ``<name>.tmp`` and ``os.replace``): a reader, e.g. another
    process polling the file, never sees half of it, and a kill mid-write leaves the old file whole. Used for
    ``result.json``, the sweep summaries and the benchmarks' CSVs."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text)
    os.replace(partial, path)
    return path


def result_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / RESULT_FILE


def read_result(run_dir: str | Path, strict: bool = True) -> dict[str, Any] | None:
    """A run's ``result.json`` as a dict; None when the run never wrote one. A file that is not a JSON object
    (e.g. cut short by a kill) raises ValueError naming it, or gives None with ``strict=False``."""
    path = result_path(run_dir)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        result = json.loads(text)
    except json.JSONDecodeError as e:
        if not strict:
            return None
        raise ValueError(f"{path} is not valid JSON ({e}); the job was probably killed while writing it") from None
    if not isinstance(result, dict):
        if not strict:
            return None
        raise ValueError(f"{path} holds a {type(result).__name__}, expected a JSON object")
    return result


def _rank_zero() -> bool:
    """Under DDP only rank 0 writes. Lightning is imported here, not at the top: the sweep summary reads results
    without torch (``python -m callbacks.sweeps.summary`` started in 10 s, 7.6 of them importing Lightning)."""
    from pytorch_lightning.utilities import rank_zero_only

    return rank_zero_only.rank == 0


def write_result(run_dir: str | Path, /, **fields: Any) -> dict[str, Any]:
    """Update the run's ``result.json`` with ``fields`` (the other keys are kept; an unreadable file is replaced)
    and return the whole record. The file is replaced in one step: a reader never sees half of it. Under DDP only
    rank 0 writes (every rank runs train.py in the same run directory and reaches the same record). (``run_dir`` is
    positional only: the record has a ``run_dir`` field of its own.)"""
    record = read_result(run_dir, strict=False) or {}
    record.update(fields)
    if _rank_zero():
        write_atomic(result_path(run_dir), json.dumps(record, indent=2, default=str))
    return record


def write_config(run_dir: str | Path, cfg: Any, lr_source: str | None = None) -> None:
    """``config.yaml``: the resolved config that ran (``.hydra/`` keeps what was asked), its first line a comment
    saying how its LR was found (``lr_source``, for training runs). Rank 0 alone writes, in one step."""
    from omegaconf import OmegaConf

    if _rank_zero():
        header = f"# lr_source: {lr_source}\n" if lr_source is not None else ""
        write_atomic(Path(run_dir) / CONFIG_FILE, header + OmegaConf.to_yaml(cfg, resolve=True))


def run_records(run_dir: str | Path) -> dict[str, str]:
    """``result.json`` and ``config.yaml`` of ``run_dir`` as they are (those that exist), before a resume rewrites
    them: :func:`put_back` restores them if the resume is refused before it trains a step, so a finished run's record
    outlives a resume that never ran (e.g. one asking for more epochs than its schedule was built for)."""
    paths = [Path(run_dir) / name for name in (RESULT_FILE, CONFIG_FILE)]
    return {str(path): path.read_text() for path in paths if path.exists()}


def put_back(records: dict[str, str]) -> None:
    if _rank_zero():
        for path, text in records.items():
            write_atomic(path, text)


def worst_value(monitor_mode: str) -> float:
    """The objective of a diverged or failed run (and what it returns to a sweeper): the worst possible value of
    the monitored metric."""
    return -math.inf if monitor_mode == "max" else math.inf

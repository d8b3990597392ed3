"""Resume a sweep: what one job should do when its multirun command is run again with ``+resume=true``.

A job's run directory (``<sweep dir>/<hydra.sweep.subdir>``) holds the ``result.json`` train.py writes at start
(status "running") and rewrites at the end (completed / diverged / failed); callbacks/run/result_file.py reads and
writes it. Rerunning the same multirun command with the same ``hydra.sweep.dir`` and ``+resume=true`` gives every job
the same run directory again (``resume`` is left out of ``hydra.job.override_dirname``), so each job can decide from
its own directory:

    from callbacks.sweeps.resume import resume_decision
    action, detail = resume_decision(cfg.output_dir, overrides=HydraConfig.get().overrides.task)
    # "skip"   -> detail is the finished result.json (dict): return detail["objective"], train nothing
    # "resume" -> detail is the checkpoint path: train with ckpt_path=detail
    # "fresh"  -> detail is None: train from scratch
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from callbacks.run.result_file import FINISHED, read_result

RESUME_KEY = "resume"  # the override that asks for this (+resume=true)


def without_resume(overrides: Sequence[str]) -> list[str]:
    """The overrides but ``+resume=...``, sorted: what two runs of one sweep must share."""
    return sorted(o for o in overrides if o.lstrip("+~").split("=", 1)[0] != RESUME_KEY)


def asks_resume(overrides: Sequence[str]) -> bool:
    """Whether the command line asks to resume (``+resume=true``)."""
    return any(o.lstrip("+~").split("=", 1)[0] == RESUME_KEY and o.split("=", 1)[-1].strip().lower() in
               ("true", "1", "yes") for o in overrides)


class ResumeRefused(ValueError):
    """The job's folder holds a run with other settings: resuming there would mix two runs. Nothing is written into
    the folder, and the whole sweep stops (train.py), since every job of a sweep run with other settings would be."""


def resume_decision(run_dir: str | Path, overrides: Sequence[str] | None = None) -> tuple[str, Any]:
    """("skip", result) for a job that already completed or diverged; ("resume", checkpoint path) for one that
    was interrupted or failed after saving ``last.ckpt``; ("fresh", None) otherwise.

    ``overrides`` (the job's own, e.g. ``HydraConfig.get().overrides.task``) guards against skipping or resuming a
    job that ran with different settings in the same directory (keys left out of the directory name, such as
    ``seed``): a job whose recorded overrides differ, finished or not, raises :class:`ResumeRefused`."""
    run_dir = Path(run_dir)
    result = read_result(run_dir, strict=False)  # an unreadable result is an unfinished job
    recorded = (result or {}).get("overrides")
    asked = None if overrides is None else without_resume(list(overrides))
    if asked is not None and recorded is not None and without_resume(recorded) != asked:
        raise ResumeRefused(f"cannot resume {run_dir}: it ran with {without_resume(recorded)}, this job asks for "
                            f"{asked}; use a new hydra.sweep.dir for a different sweep (nothing in it was changed)")
    if result is not None and result.get("status") in FINISHED:
        return "skip", result
    checkpoint = (result or {}).get("checkpoint") or run_dir / "checkpoints" / "last.ckpt"
    if Path(checkpoint).is_file():
        return "resume", str(checkpoint)
    return "fresh", None


def mark_interrupted(sweep_dir: str | Path) -> list[Path]:
    """After Ctrl-C stopped a sweep whose launcher ran its jobs in worker processes (joblib stops them before they
    can say so): every job still recorded as "running" is recorded as "interrupted", for its summary and
    ``+resume=true``. Returns those jobs' folders."""
    from callbacks.run.result_file import write_result

    stopped = []
    for path in sorted(Path(sweep_dir).glob("**/result.json")):
        result = read_result(path.parent, strict=False)
        if result is not None and result.get("status") == "running":
            write_result(path.parent, status="interrupted",
                         reason="the sweep was interrupted (Ctrl-C) and its launcher stopped this job")
            stopped.append(path.parent)
    return stopped

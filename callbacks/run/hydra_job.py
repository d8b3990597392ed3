"""The Hydra job a run is: its overrides and chosen options, whether it is one job of a sweep, its run directory,
and the config groups read in several places."""
from __future__ import annotations

import logging
import os
import sys
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

from callbacks.sweeps.resume import mark_interrupted, resume_decision


def job_overrides() -> list[str]:
    """This job's command-line overrides (none outside a Hydra run, e.g. when a test calls run())."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def sweep_dir() -> str | None:
    """The sweep's hydra.sweep.dir when this job is one of a sweep's (where ``+resume=true`` resumes it)."""
    return str(HydraConfig.get().sweep.dir) if is_multirun() else None


def runtime_choices() -> dict[str, Any]:
    """The option chosen for each config group (``experiment``, ``data``, ...); empty outside a Hydra run."""
    return HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}


def key_origin() -> str:
    """Where a config key the user did not type on this command line comes from, for error messages."""
    experiment = runtime_choices().get("experiment")
    return f"(it comes from {f'experiment={experiment} or an override' if experiment else 'an override'})"


def short_name(target: str | None) -> str:
    """``pkg.module.Name`` -> ``Name`` (``none`` for no target)."""
    return str(target).rsplit(".", 1)[-1] if target else "none"


def scheduler_config(cfg: DictConfig) -> Any:
    """The ``scheduler`` group (empty when a config has none)."""
    return cfg.get("scheduler") or {}


def continue_in_run_dir(cfg: DictConfig) -> None:
    """``ckpt_path=<run dir>/checkpoints/<name>.ckpt`` continues in that run's directory (and TensorBoard run), so a
    resumed run adds to its own logs instead of starting an overlapping second run."""
    if cfg.ckpt_path:
        folder = os.path.dirname(os.path.abspath(str(cfg.ckpt_path)))
        run_dir = os.path.dirname(folder)
        if os.path.basename(folder) == "checkpoints" and os.path.isdir(os.path.join(run_dir, ".hydra")):
            if os.path.abspath(str(cfg.output_dir)) != run_dir:
                log_into(run_dir, moved_from=str(cfg.output_dir))
            cfg.output_dir = run_dir


def log_into(run_dir: str, moved_from: str) -> None:
    """The resumed run's console text goes on in ``run_dir``'s train.log too (rank 0: DDP's other ranks keep their
    own file), in the format of Hydra's own train.log; Hydra's record of the resume command stays in the folder it
    made for this job (``moved_from``), which the log names."""
    if rank_zero_only.rank != 0 or not HydraConfig.initialized():
        return
    root = logging.getLogger()
    hydra_file = next((h for h in root.handlers if isinstance(h, logging.FileHandler)), None)
    handler = logging.FileHandler(os.path.join(run_dir, "train.log"), mode="a")
    if hydra_file is not None:
        handler.setFormatter(hydra_file.formatter)
    root.addHandler(handler)
    logging.getLogger(__name__).info(f"resume: continuing in {run_dir} (this command's .hydra/ is in {moved_from})")


def resume_sweep_job(cfg: DictConfig) -> dict | None:
    """``+resume=true`` (rerunning a sweep in its old hydra.sweep.dir): the finished result of a job that completed
    or diverged before (it is not run again); else None, with ``cfg.ckpt_path`` set when the job left a checkpoint."""
    action, detail = resume_decision(cfg.output_dir, overrides=job_overrides())
    if action == "skip":
        return detail
    if action == "resume":  # interrupted or failed after a checkpoint
        cfg.ckpt_path = detail
    return None


# Groups a run can go without; Hydra refuses ``<group>=null`` on the command line (only ``~<group>``), so train.py
# turns the one into the other before Hydra parses its arguments.
NULLABLE_GROUPS = ("logger", "callbacks")


def null_group_overrides(argv: list[str]) -> list[str]:
    """``logger=null`` -> ``~logger`` (and the same for the other NULLABLE_GROUPS); other arguments unchanged."""
    nulls = {f"{group}={word}": f"~{group}" for group in NULLABLE_GROUPS for word in ("null", "none")}
    return [nulls.get(arg, arg) for arg in argv]


def unwritable(folder: str) -> str | None:
    """Why ``folder`` cannot be created or written to (None when it can), without creating anything."""
    path = existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        return f"{existing} is a file, not a directory" if existing != path else "it exists and is a file"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable" + (" (read-only file system or no permission)" if existing == path else
                                                f" (so {os.path.relpath(path, existing)} cannot be created in it)")
    return None


class RunDirCheck(Callback):
    """Hydra callback (``hydra.callbacks.run_dir_check`` in conf/train.yaml): Hydra creates the run directory before
    train.py's code runs and fails there with a traceback of its own; this checks it first and stops with one line
    naming the directory (exit 2). A sweep's hydra.sweep.dir is checked by SweepSummary (callbacks/sweeps/checks.py)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.check(config, "hydra.run.dir")

    @staticmethod
    def check(config: DictConfig, key: str) -> None:
        try:
            folder = str(OmegaConf.select(config, key))
        except Exception:  # not resolvable here: Hydra reports it itself
            return
        problem = unwritable(folder)
        if problem:
            # Hydra turns a callback's exceptions into warnings and goes on; this must stop the run.
            print(f"Error: {key}={folder} cannot be used as the run directory: {problem}. Choose another "
                  f"{key}=... (or run from a writable folder)", file=sys.stderr)
            raise SystemExit(2)


def how_to_resume(checkpoint: str | None) -> str:
    """The command that goes on after an interrupt: a sweep's job resumes with its sweep (README, section 3)."""
    if is_multirun():
        return f"Resume the sweep: the same command plus hydra.sweep.dir={sweep_dir()} +resume=true"
    if checkpoint is None:
        return "Run the same command again"
    return f"Resume in the same run directory with the same overrides plus ckpt_path={checkpoint}"


def sweep_interrupted(arguments: list[str]) -> str:
    """After Ctrl-C reached a sweep's parent process (a launcher with worker processes, joblib; no Hydra job runs in
    it, so the folder is read off the command line's ``arguments``): its jobs still recorded as running are recorded
    as interrupted (:func:`~callbacks.sweeps.resume.mark_interrupted`); returns what to run next."""
    folder = next((a.split("=", 1)[1] for a in arguments if a.startswith("hydra.sweep.dir=")), None)
    if folder is None:  # Hydra's dated default: the folder the sweep's jobs printed
        return "Resume the sweep: the same command plus hydra.sweep.dir=<its folder> +resume=true"
    stopped = mark_interrupted(folder)
    said = f"{len(stopped)} job(s) the launcher stopped are recorded as interrupted. " if stopped else ""
    return f"{said}Resume the sweep: the same command plus hydra.sweep.dir={folder} +resume=true"

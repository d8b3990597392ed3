"""The Hydra job a run is: its overrides and chosen options, whether it is one job of a sweep, its run directory,
and the config groups read in several places."""
from __future__ import annotations

import os
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from callbacks.sweeps.resume import resume_decision


def job_overrides() -> list[str]:
    """This job's command-line overrides (none outside a Hydra run, e.g. when a test calls run())."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


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
            cfg.output_dir = run_dir


def resume_sweep_job(cfg: DictConfig) -> dict | None:
    """``+resume=true`` (rerunning a sweep in its old hydra.sweep.dir): the finished result of a job that completed
    or diverged before (it is not run again); else None, with ``cfg.ckpt_path`` set when the job left a checkpoint."""
    action, detail = resume_decision(cfg.output_dir, overrides=job_overrides())
    if action == "skip":
        return detail
    if action == "resume":  # interrupted or failed after a checkpoint
        cfg.ckpt_path = detail
    return None

"""How a training run ends, recorded the same way for every outcome (completed, diverged, interrupted, a refused
resume): TensorBoard hparams, result.json and the closing summary. train.py's fit() and evaluate() call it."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytorch_lightning as pl
from omegaconf import DictConfig

from callbacks.run.console import KeepWarnings, log_search_cost, log_summary
from callbacks.run.hparams import log_run_hparams
from callbacks.run.result_file import put_back, result_path, write_result


@dataclass
class Ending:
    """Records how the run ended, the same way for every outcome: TensorBoard hparams, result.json, the summary."""
    cfg: DictConfig
    lr_source: str
    search: dict  # how the LRs were found (resolve_auto_lrs): its cost, for the closing summary
    started: float
    keep: KeepWarnings | None
    resumed: tuple[int, dict] | None = None  # a resume: the checkpoint's step, the run's records before it

    def refused(self, trainer: pl.Trainer, error: BaseException) -> None:
        """A resume that fails before its first step (Lightning or the schedule refused the checkpoint) leaves the
        run's earlier result.json and config.yaml as they were: it never ran. Any other run that raised is recorded
        as failed, with why (it had stayed "running")."""
        if self.resumed is not None and trainer.global_step <= self.resumed[0]:
            put_back(self.resumed[1])
        else:
            write_result(self.cfg.output_dir, status="failed", reason=f"{type(error).__name__}: {error}",
                         steps=trainer.global_step, wall_s=self.wall_s())

    def wall_s(self) -> float:
        """The run's seconds so far: this session's, plus those its result.json had recorded before a resume (the
        run it continues: interrupted runs add up)."""
        before = (self.resumed or (0, {}))[1].get(str(result_path(self.cfg.output_dir)))
        try:
            earlier = float(json.loads(before).get("wall_s") or 0.0) if before else 0.0
        except (ValueError, TypeError, AttributeError):  # an unreadable record: this session's time alone
            earlier = 0.0
        return round(time.time() - self.started + earlier, 2)

    def record(self, trainer: pl.Trainer, status: str, hparams_metrics: dict | None, **fields) -> None:
        """``hparams_metrics``: the metrics beside the TensorBoard hparams (None: no hparams); ``fields``: the rest
        of result.json (its ``metrics`` are also the summary's)."""
        if hparams_metrics is not None:
            log_run_hparams(trainer, self.cfg, self.lr_source, status, hparams_metrics)
        wall_s = self.wall_s()
        write_result(self.cfg.output_dir, status=status, epochs=trainer.current_epoch, wall_s=wall_s, **fields)
        log_summary(self.cfg, status, fields.get("metrics", {}), time.time() - wall_s, self.keep, trainer.loggers)
        if status == "completed":
            log_search_cost(self.search, fields.get("steps"))

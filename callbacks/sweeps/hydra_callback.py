"""The Hydra callback every multirun gets (``hydra.callbacks.sweep_summary`` in conf/train.yaml): it checks the
sweep's arguments before the first job, records a job that raised, and writes the summary when the sweep ends."""
from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from callbacks.sweeps.checks import SweepError, check_sweep, record_failure
from callbacks.sweeps.summary import report


class SweepSummary(Callback):
    """Hydra callback: checks the sweep's arguments before any job starts, records a job that raised as failed,
    and writes the summary when the multirun ends.

    ``words``: what a swept numeric key may take besides numbers, ``{word: {keys: [dotted keys], means: text}}``
    (conf/train.yaml gives train.py's ``auto`` for the schedule LRs the range test fills in)."""

    def __init__(self, words: Mapping | None = None) -> None:
        self.words = words or {}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            check_sweep(config, self.words)
        except SweepError as e:
            # Hydra turns a callback's exceptions into warnings and goes on; a bad sweep must stop here.
            print(f"Error: {e}", file=sys.stderr)  # bad input: one line and exit 2, as train.py's own start-up
            raise SystemExit(2) from None

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        record_failure(config, job_return)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        summary = report(config.hydra.sweep.dir)
        failed = [row for row in summary.rows if row.get("status") == "failed"]
        if failed and len(failed) == len(summary.rows):  # nothing trained: the sweep failed, as its one run would
            print(f"Error: every job of the sweep failed (job {failed[0].get('job')}: {failed[0].get('reason')})",
                  file=sys.stderr)
            raise SystemExit(1)

"""What the loss range test and its max_lr trials will cost, said before they start.

The closing summary weighs what the search did cost against the training (``callbacks.run.console.log_search_cost``);
this is the same weighing up front, so that a user whose run is too short for the search to pay off can stop it at
once (Ctrl-C) and sweep a few fixed max_lr instead. The numbers are the plan's upper bound: the sweep stops early
when the loss blows up, and candidates above that point are never tried.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from callbacks.range_test.trial_runs import trial_shape
from callbacks.range_test.trials import LADDER_STEPS

__all__ = ["SearchPlan", "search_plan"]


@dataclass(frozen=True)
class SearchPlan:
    """At most ``sweep_steps`` optimizer steps of range test, then ``trials`` trials of ``trial_steps`` each (with
    ``spare_trials`` more where no trial learns and the trials descend below the lowest candidate), for a training
    run of ``run_steps`` (``None``: unknown)."""
    sweep_steps: int
    trials: int
    trial_steps: int
    spare_trials: int
    run_steps: Optional[int]

    @property
    def total(self) -> int:
        return self.sweep_steps + self.trials * self.trial_steps

    def line(self) -> str:
        """One line for the console, e.g. ``LR search: at most 100 sweep steps + 5 trials x 70 = 450 optimizer
        steps, 1.9x the training's 240; ...``."""
        parts = f"at most {self.sweep_steps} sweep steps"
        if self.trials:
            parts += f" + {self.trials} trials x {self.trial_steps}"
        text = f"LR search: {parts} = {self.total} optimizer steps"
        if self.spare_trials:
            text += f" (+ up to {self.spare_trials} x {self.trial_steps} where no trial learns)"
        if not self.run_steps:
            return text
        share = self.total / self.run_steps
        text += f", {share:.2g}x the training's {self.run_steps}"
        if share > 1:
            text += ("; on runs this short a sweep of a few fixed max_lr (-m scheduler.max_lr=...) costs less: "
                     "Ctrl-C now to stop")
        return text


def search_plan(trainer: Any, sweep_steps: int, repeats: int, factors: Optional[Sequence[float]], length: tuple,
                refine: bool) -> SearchPlan:
    """The plan of the loss range test on ``trainer``: ``repeats`` sweeps of ``sweep_steps``; one trial per distinct
    factor and one refinement (``refine``), each as long as the trials will run (:func:`~callbacks.range_test.trials.
    trial_shape`; ``length``: fraction, min and max steps, min images), and up to
    :data:`~callbacks.range_test.trials.LADDER_STEPS` spare trials (the descent where no trial learns)."""
    run = float(trainer.estimated_stepping_batches)
    run_steps = int(run) if math.isfinite(run) else None
    trials = len(set(float(f) for f in factors or ())) + (1 if factors and refine else 0)
    steps = trial_shape(trainer, length)[0] if trials else 0
    return SearchPlan(sweep_steps=sweep_steps * repeats, trials=trials, trial_steps=steps,
                      spare_trials=LADDER_STEPS if trials else 0, run_steps=run_steps)

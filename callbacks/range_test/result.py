"""What an LR range test found (:class:`RangeTestResult`): the curve, every rule's suggestion and the chosen LR.

Its files (PNG, CSV, JSON), TensorBoard scalars and console table are written by :mod:`callbacks.range_test.report`;
this class only holds the values and forwards to it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from callbacks.range_test import report
from callbacks.range_test.smoothing import sweep_diverged
from callbacks.range_test.trials import (CHANCE_MARGIN, MEMORISED, RISE_SHARE, below_chance, candidates, none_learned,
                                         validated, weak)
from callbacks.range_test.update_size import UPDATE_SHARE

__all__ = ["RangeTestResult", "memorised_note"]


def memorised_note(trials: List[Dict[str, Any]]) -> str:
    """What ``lr_source`` says where the trials memorised the training set: the validation losses that ranked them
    (v21, as :func:`~callbacks.range_test.trials.choose` ranks them), or that there was no validation split to."""
    ranked = validated([t for t in trials if t.get("learned")])
    if not ranked:
        return (": the trials memorised the training set, and a training loss cannot rank peaks by how they "
                "generalise, and the data has no validation split of its own to rank them on; sweep 0.03x-1x around it")
    return (": the trials memorised the training set, and a training loss cannot rank peaks by how they generalise: "
            f"their validation loss ({ranked[0].get('val_images')} images) ranked them, "
            + ", ".join(f"{t['lr']:.3g}: {t['val_loss']:.4g}" for t in ranked))


@dataclass
class RangeTestResult:
    """What an LR range test found. ``lrs``/``losses``/``smoothed`` are the (first repeat's) sweep: one entry per
    optimizer step; ``smoothed`` is the zero-lag smoothed loss (loss test) or the running average of the loss
    used by the stop rule (accuracy test)."""

    kind: str  # "loss" | "accuracy"
    lrs: List[float]
    losses: List[float]
    smoothed: List[float]
    suggestions: Dict[str, float]  # every rule's LR (accuracy test: base_lr, max_lr, peak_lr; with trials also
    # "trials", their choice, "rise", the curve's rise point, and where a trial learned "update", the update point,
    # and "blend", the geometric mean of the two: callbacks.range_test.update_size)
    rule: str  # the rule that chose `lr`: a suggestion's name, "trials", "rise" (no trial learned, SGD family) or
    # "blend" (the trials' choice and the update point)
    lr: float  # the chosen max LR
    base_lr: Optional[float] = None  # accuracy test's base_lr; None for the loss test
    status: str = ""  # how the sweep ended and how far the loss rose over its minimum
    elapsed_s: float = 0.0
    stop_index: Optional[int] = None  # step at which the stop rule fired (None: ran to the end)
    loss_rise: Optional[float] = None  # highest smoothed loss after its minimum / the minimum
    settings: Dict[str, Any] = field(default_factory=dict)  # the range test's arguments
    repeats: List[Dict[str, Any]] = field(default_factory=list)  # loss test: one sweep per seed
    spread: Dict[str, Dict[str, Any]] = field(default_factory=dict)  # per rule: values over repeats, geomean, std
    evals: List[Dict[str, Any]] = field(default_factory=list)  # accuracy test: step, lr, acc, images, stderr
    start_acc: Optional[float] = None
    peak_acc: Optional[float] = None
    eval_images: Optional[int] = None  # accuracy test: images evaluated per point (all ranks)
    trials: List[Dict[str, Any]] = field(default_factory=list)  # loss test with trials: lr, score, steps per candidate
    search_steps: int = 0  # optimizer steps the whole search took (every sweep and trial): its cost
    carry: Dict[str, Any] = field(default_factory=dict)  # Adagrad: lr_decay, run_peak, trial_peak and the factor
    # that carried the rule's LR to the run's LR peak (callbacks.range_test.step_count); {} for other optimizers

    @property
    def source(self) -> str:
        """How ``lr`` was chosen, in one line (what ``lr_source`` says in the header, config and result.json)."""
        if not self.trials:
            return f"range_test ({self.rule}{self.carried}{self.no_limit})"
        scores = ", ".join(f"{t['lr']:.3g}: {t['score']:.4g}" for t in self.trials)
        return (f"range_test ({self.settings.get('suggestion')} {self.suggestions[self.settings.get('suggestion')]:.3g}"
                f", then {len(self.trials)} trial{'s' if len(self.trials) != 1 else ''} of {self.trial_length}, training "
                f"loss {scores}{self.floored}{self.blended}{self.carried}{self.trial_signal}{self.no_limit})")

    @property
    def floored(self) -> str:
        """``"; 0.3x not tried: at or below the schedule's lowest peak 0.1"`` where candidates were left out for the
        run's schedule (``settings['trial_floor']``: a cyclic schedule's fixed base_lr), else ``""``."""
        floor, rule = self.settings.get("trial_floor"), self.settings.get("suggestion")
        base = self.suggestions.get(rule) if rule else None
        if not floor or not base:
            return ""
        factors = self.settings.get("trial_factors") or ()
        tried = candidates(base, factors, above=floor)  # as the trials drew them: the smallest stays if none is above
        left = [f for f in factors if float(base) * float(f) not in tried]
        return (f"; {', '.join(f'{f:g}x' for f in left)} not tried: at or below the schedule's lowest peak {floor:.3g}"
                if left else "")

    @property
    def blended(self) -> str:
        """``"; trials chose 0.1, update point 0.04 (a step moved the weights 3%): their geometric mean 0.063"``
        where auto's LR blends the two (:mod:`callbacks.range_test.update_size`); where a trial learned but the range
        test found no update point, that it found none; else ``""``."""
        share = self.settings.get("update_share")
        if self.rule == "trials" and share and any(t.get("learned") for t in self.trials):
            return (f"; no update point (the range test's steps moved the weights {share:.0%} only where its loss was "
                    "about 0, or never): the trials' choice alone")
        if self.rule != "blend":
            return ""
        share = share or UPDATE_SHARE
        return (f"; trials chose {self.suggestions['trials']:.3g}, update point {self.suggestions['update']:.3g} (a step "
                f"moved the weights {share:.0%}): their geometric mean {self.suggestions['blend']:.3g}")

    @property
    def carried(self) -> str:
        """``"; Adagrad, whose steps shrink with the steps taken: each LR carried from the step it was measured at to
        the run's LR peak (step 216), x1.95: 0.0456"`` where the LR was carried (:mod:`~callbacks.range_test.
        step_count`), else ``""``."""
        if not self.carry:
            return ""
        return (f"; Adagrad, whose steps shrink with the steps taken: each LR carried from the step it was measured "
                f"at to the run's LR peak (step {self.carry['run_peak']}), x{self.carry['factor']:.3g}: {self.lr:.3g}")

    @property
    def no_limit(self) -> str:
        """``"; the range test's loss never blew up (up to 10): no upper limit seen, sweep 0.1x-2x around it"`` when
        the loss test's sweep never diverged (:func:`~callbacks.range_test.smoothing.sweep_diverged`), else ``""``.
        On issue 20's benchmark auto trailed a max_lr sweep's best by 3.3 +/- 0.6 points on such runs (75 runs, 20
        settings; 1.4 +/- 0.3 on the 183 others) and the best peak sat at 0.07-1.9x auto's LR (10th-90th
        percentile; RESULTS.md 2026-12-02 01:22)."""
        if self.kind != "loss" or sweep_diverged(self.stop_index, self.loss_rise):
            return ""
        return (f"; the range test's loss never blew up (up to {self.lrs[-1]:.3g}): no upper limit seen, sweep 0.1x-2x "
                "around it")

    @property
    def trial_signal(self) -> str:
        """``"; best trial 7% below chance-level loss, a weak signal: sweep 0.3x-3x around it"`` (``""`` when the
        trials do not say their chance level; no more when the best trial ended well below it, unless at about 0 (below
        :data:`~callbacks.range_test.trials.MEMORISED` of it: the trials memorised the set, and their validation loss
        ranked them where the data has a validation split of its own, v21); a warning when none
        ended 1% below it, and what was used then: the range test's rise point, or the rule's own LR)."""
        share = below_chance(self.trials)
        if share is None:  # no chance level (a module without one), or no trial learned
            used = (f"the range test's rise point {self.lr:.3g} (its smoothed loss {RISE_SHARE:.0%} above its lowest)"
                    if self.rule == "rise" else "the rule's LR")
            return (f"; no trial ended {CHANCE_MARGIN:.0%} below chance-level loss (too short to learn on this data): "
                    f"{used}; sweep 0.3x-3x around it" if any(t.get("chance_loss") for t in self.trials) else "")
        warning = ", a weak signal: sweep 0.3x-3x around it" if weak(share) else ""
        if share > 1 - MEMORISED:  # the easy set of RESULTS.md 2026-12-03 14:46: auto 5-40x the sweep's best
            warning = memorised_note(self.trials)
        return f"; best trial {share:.0%} below chance-level loss{warning}"

    @property
    def no_evidence(self) -> str:
        """Why the search says nothing about max_lr, or ``""`` when it does: the trials chose (no rise point was
        used), none of them learned, and the rule's LR sat at the sweep's last LR, where the loss was still falling,
        or the candidates that might have learned were not tried, being at or below the schedule's fixed floor (an
        AdamW run at a cyclic base_lr of 0.1 trained at chance).
        The rule's LR is then only where the sweep stopped (issue 20: a ResNet-9 whose loss barely moved in the range
        test trained there, at 3.0, at chance)."""
        rule_lr = self.suggestions.get(self.settings.get("suggestion"))
        if self.rule != "trials" or rule_lr is None or not none_learned(self.trials):
            return ""
        if self.floored:  # the candidates that might have learned lay below a fixed base_lr / eta_min
            return (f"no trial learned, and the candidates at or below the schedule's lowest peak "
                    f"{self.settings['trial_floor']:.3g} (a fixed scheduler.base_lr or eta_min) were not tried "
                    f"(the loss minimum sat at {rule_lr:.3g}): lower that key")
        if rule_lr < self.lrs[-1] * (1 - 1e-9):
            return ""
        return (f"no trial learned, no rise point was used (none, or an Adam-family optimizer), and the loss "
                f"minimum sat at the sweep's last LR, {self.lrs[-1]:.3g}")

    @property
    def trial_length(self) -> str:
        """Each max_lr trial's length: ``"100 steps (3200 images)"`` (the images when the loader said its batch)."""
        steps, per_step = self.trials[0]["planned_steps"], self.trials[0].get("images_per_step")
        return f"{steps} steps" + (f" ({steps * per_step} images)" if per_step else "")

    def plot(self):
        """A matplotlib Figure of the sweep and its suggestions (not registered with pyplot)."""
        return report.result_figure(self)

    def to_csv(self, path: str) -> str:
        return report.write_csv(self, str(path))

    def to_json(self, path: str) -> str:
        return report.write_json(self, str(path))

    @classmethod
    def from_json(cls, path: str) -> "RangeTestResult":
        data = report.read_json_dict(str(path))
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def save(self, out_dir: str) -> List[str]:
        """Write ``lr_range_test.{png,csv,json}`` (``accuracy_range_test.*`` for the accuracy test) to
        ``out_dir``; returns the paths."""
        return report.save_result(self, str(out_dir))

    def log_to(self, loggers: Any) -> None:
        """Figure and curve scalars to the TensorBoard loggers among ``loggers`` (others are skipped)."""
        report.log_result(self, loggers)

    def print(self, console: Any = None) -> None:
        """The rich table of suggestions, the status and the chosen value."""
        report.print_result(self, console)

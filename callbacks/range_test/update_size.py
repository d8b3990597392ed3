"""How far one optimizer step moves the weights, along the range test: the update point (issue 20, v17).

At every step of the sweep the range test records the median, over the weight tensors (2-D and up: convolutions
and linear layers), of ``||w_after - w_before|| / ||w_before||``: the step's size relative to the weights, a
scale-free quantity (the trust ratio of LARS; the "angular update" of weights followed by BatchNorm, whose loss does
not see their scale). The **update point** is the first LR of the sweep where that median exceeds
:data:`UPDATE_SHARE`.

Why: the loss curve does not bound the LR on scale-invariant nets (airbench's: the loss never blows up, the weights
grow instead) and short trials cannot rank peaks there. On seeds 0-1 of the 45 settings of issue 20's benchmark the
best one-cycle peak sat at 1.07x the update point on average (log10 sd 0.34), against 0.81x the trials' choice
(log10 sd 0.50); the two errors are partly independent, and auto's LR is their geometric mean (:func:`blend`)
wherever a trial learned (RESULTS.md 2026-12-02 02:29).

Everything but :class:`StepSize` is pure and tested on numbers alone.
"""
from __future__ import annotations

import math
import statistics
from typing import List, Optional, Sequence

import torch

__all__ = ["UPDATE_SHARE", "FLAT_LOSS", "StepSize", "weight_tensors", "relative_update", "update_point", "blend",
           "check_update_share"]

#: the share of its norm that one step moves a weight tensor (median over tensors) at the update point: chosen
#: among 1%, 2%, 3% and 5% on seeds 0-1 of issue 20's benchmark (RESULTS.md 2026-12-02 02:29)
UPDATE_SHARE = 0.03

#: the update point counts only where the range test's smoothed loss stands at least this share of the chance-level
#: loss (v20): below it the set is memorised, the gradient has gone and so has the step, at any LR. On an easy drawn
#: set the loss sat at 3e-5 where the last step (LR 10) moved the weights 3.02%, and the blend trained at 0.78 (test
#: 37.7%; the sweep's best 92.8%); on the 18 recorded runs of other sets on disk the loss at the point was
#: 0.99-1.27x chance, on the same set's seed 2 0.19x (RESULTS.md 2026-12-03 14:44 and 14:45)
FLAT_LOSS = 0.01


def check_update_share(share: Optional[float]) -> Optional[float]:
    """``share`` as a float (``None`` stays: no blend); a clear error naming ``range_test.update_share`` otherwise."""
    if share is None:
        return None
    if isinstance(share, bool) or not (isinstance(share, (int, float)) and 0 < share < 1):
        raise ValueError(f"range_test.update_share must be a fraction in (0, 1) or null (no blend), got {share!r}")
    return float(share)


def weight_tensors(module: torch.nn.Module) -> List[torch.Tensor]:
    """The trainable parameters with two or more dimensions (every trainable one when there is none such)."""
    trainable = [p for p in module.parameters() if p.requires_grad]
    return [p for p in trainable if p.ndim >= 2] or trainable


def relative_update(before: Sequence[torch.Tensor], after: Sequence[torch.Tensor]) -> float:
    """The median over tensors of ``||after - before|| / ||before||`` (tensors of norm 0 skipped); NaN if none."""
    ratios = []
    for b, a in zip(before, after):
        norm = float(torch.linalg.vector_norm(b.detach().float()))
        if norm > 0:
            ratios.append(float(torch.linalg.vector_norm((a.detach() - b.detach()).float())) / norm)
    return statistics.median(ratios) if ratios else math.nan


class StepSize:
    """Measures one optimizer step: ``before()`` copies the weights, ``after()`` returns :func:`relative_update`."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.params = weight_tensors(module)
        self._copy: List[torch.Tensor] = []

    def before(self) -> None:
        self._copy = [p.detach().clone() for p in self.params]

    def after(self) -> float:
        value = relative_update(self._copy, self.params)
        self._copy = []
        return value


def update_point(lrs: Sequence[float], updates: Sequence[float], share: float = UPDATE_SHARE,
                 stopped: bool = True, losses: Optional[Sequence[float]] = None,
                 chance: Optional[float] = None) -> Optional[float]:
    """The first LR whose step moved the weights by more than ``share`` (:func:`relative_update`); when none did, the
    sweep's last LR if the sweep ``stopped`` there (its loss blew up first: the data set that bound), else ``None``:
    a sweep that ran to its configured end without such a step measured no point, and its last LR is only where it
    was told to end (on a tiny, easy set whose training loss sat near 0 from LR 0.002 to 10, no step moved the
    weights 3%, and the blend with 10 gave 24x the trials' choice; v19). Given the sweep's smoothed ``losses`` and
    the chance-level loss ``chance``, also ``None`` where the loss at that LR stood below :data:`FLAT_LOSS` of chance
    (v20). ``None`` also when nothing was recorded."""
    if not lrs or len(lrs) != len(updates):
        return None
    k = next((k for k, u in enumerate(updates) if u > share), len(lrs) - 1 if stopped else None)
    if k is None or (losses is not None and chance and losses[k] < FLAT_LOSS * chance):
        return None
    return float(lrs[k])


def blend(trials_lr: float, point: float) -> float:
    """The geometric mean of the trials' choice and the update point."""
    return math.sqrt(float(trials_lr) * float(point))

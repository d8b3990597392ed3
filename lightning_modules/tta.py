"""Test-time augmentation (TTA) of the classifier: the views whose logits are averaged, and the levels allowed."""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

TTA_LEVELS = (0, 1, 2)


def tta_views(x: torch.Tensor, level: int) -> list[tuple[float, torch.Tensor]]:
    """Weighted views whose logits are averaged: level 1 is the image and its mirror; level 2 is airbench's
    flip + translate TTA (half weight on the flip pair, half on flip pairs of two 1-pixel diagonal shifts)."""
    views = [(0.5, x), (0.5, x.flip(3))]
    if level == 1:
        return views
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [padded[:, :, :-2, :-2], padded[:, :, 2:, 2:]]
    return [(w / 2, v) for w, v in views] + [(0.125, v) for s in shifted for v in (s, s.flip(3))]


def tta_logits(logits: Callable[[torch.Tensor], dict[str, torch.Tensor]], x: torch.Tensor,
               level: int) -> dict[str, torch.Tensor]:
    """Per head, the weighted average (float32) of ``logits`` over the :func:`tta_views` of ``x``."""
    out = {}
    for weight, view in tta_views(x, level):
        for name, value in logits(view).items():
            out[name] = out.get(name, 0) + weight * value.float()
    return out


def asked_tta_level(tta, configured: int) -> int:
    """The TTA level of ``tta=true|false`` (task=eval, task=predict): off, or the model's own ``tta_level`` (flip,
    1, when it has none)."""
    if not isinstance(tta, bool):
        raise ValueError(f"tta must be true or false, got {tta!r}")
    return (int(configured) or 1) if tta else 0

"""Whole-batch image augmentations as tensor ops, run on whatever device the batch is on.

All functions take a float batch (N, C, H, W), return a new tensor of the same shape, dtype and device, and draw
their randomness from ``generator`` (or torch's global generator for that device when it is None).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _randint(high: int, n: int, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randint(high, (n,), device=like.device, generator=generator)


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Reflect-pad by ``padding`` pixels, then cut a random H x W window per image (a translation of up to
    +-padding pixels in each direction)."""
    if padding <= 0:
        return x
    n, _, h, w = x.shape
    padded = F.pad(x, (padding,) * 4, mode="reflect")
    dy = _randint(2 * padding + 1, n, x, generator)
    dx = _randint(2 * padding + 1, n, x, generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # (N, H, 1)
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]  # (N, 1, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)
    return out.contiguous(memory_format=_memory_format(x))


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def random_flip(x: torch.Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror each image left-right with probability ``p``."""
    mask = torch.rand(x.shape[0], device=x.device, generator=generator) < p
    return torch.where(mask[:, None, None, None], x.flip(3), x)


def cutout(x: torch.Tensor, size: int, fill: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Fill one ``size`` x ``size`` square per image with ``fill`` (DeVries & Taylor 2017).

    The square is kept wholly inside the image (its top-left corner is uniform over the H-size+1 x W-size+1
    positions), as in Page's DAWNBench code, so every image loses exactly size*size pixels per channel.
    After normalisation ``fill=0`` is the data-set mean colour.
    """
    if size <= 0:
        return x
    n, _, h, w = x.shape
    if size > min(h, w):
        raise ValueError(f"data.cutout: size {size} is larger than the {h}x{w} image")
    y0 = _randint(h - size + 1, n, x, generator)
    x0 = _randint(w - size + 1, n, x, generator)
    ys = torch.arange(h, device=x.device)
    xs = torch.arange(w, device=x.device)
    inside_y = (ys[None, :] >= y0[:, None]) & (ys[None, :] < y0[:, None] + size)  # (N, H)
    inside_x = (xs[None, :] >= x0[:, None]) & (xs[None, :] < x0[:, None] + size)  # (N, W)
    mask = (inside_y[:, :, None] & inside_x[:, None, :])[:, None]  # (N, 1, H, W)
    return x.masked_fill(mask, fill)


def batch_augment(x: torch.Tensor, crop_padding: int = 4, flip: bool = True, cutout_size: int = 0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """The standard CIFAR training augmentation: random crop, horizontal flip, cutout."""
    out = random_crop(x, crop_padding, generator)
    if flip:
        out = random_flip(out, generator=generator)
    out = cutout(out, cutout_size, generator=generator)
    return out.contiguous(memory_format=_memory_format(x))

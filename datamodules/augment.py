"""Whole-batch image augmentations as tensor ops, run on whatever device the batch is on.

All functions take a float batch (N, C, H, W), return a new tensor of the same shape, dtype and device, and draw
their randomness from ``generator`` (or torch's global generator for that device when it is None).
"""
from __future__ import annotations

import math

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


def alternating_flip(x: torch.Tensor, flipped_first: torch.Tensor, epoch: int) -> torch.Tensor:
    """Derandomised flipping (Jordan 2024, "94% on CIFAR-10 in 3.29 seconds", section 3.6): image ``i`` is mirrored
    in the first epoch when ``flipped_first[i]`` (a fixed random half of the data set), in every even epoch likewise
    and in every odd epoch exactly when it was not, so each two consecutive epochs show both views of every image.
    ``flipped_first`` holds the bits of the images in ``x`` (bool, shape (N,)); ``epoch`` counts from 0."""
    mask = flipped_first.to(x.device) ^ bool(epoch % 2)
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


def random_resized_crop(x: torch.Tensor, scale: tuple[float, float] = (0.35, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3),
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Inception-style crop (Szegedy et al. 2015) as one batched op: per image a window covering a fraction
    ``scale`` of the area with aspect ratio in ``ratio`` (log-uniform), at a random position, resized back to
    H x W with bilinear sampling (``affine_grid`` + ``grid_sample``). Windows are clipped to the image."""
    n = x.shape[0]
    u = torch.rand(4, n, device=x.device, generator=generator)
    area = scale[0] + (scale[1] - scale[0]) * u[0]
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[1])
    w = torch.sqrt(area * aspect).clamp(max=1.0)  # window side as a fraction of the image side
    h = torch.sqrt(area / aspect).clamp(max=1.0)
    cx = (2 * u[2] - 1) * (1 - w)  # window centre in [-1, 1] coordinates, window inside the image
    cy = (2 * u[3] - 1) * (1 - h)
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = w, cx, h, cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def color_jitter(x: torch.Tensor, strength: float, mean: torch.Tensor, std: torch.Tensor,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Random brightness, contrast and saturation factors, each uniform in [1 - strength, 1 + strength], applied
    to a normalised batch: it is mapped back to [0, 1] with ``mean``/``std`` (per channel), jittered, clipped
    and normalised again."""
    if strength <= 0:
        return x
    n = x.shape[0]
    mean = mean.to(x.device, x.dtype).view(1, -1, 1, 1)
    std = std.to(x.device, x.dtype).view(1, -1, 1, 1)
    factors = 1 + strength * (2 * torch.rand(3, n, 1, 1, 1, device=x.device, generator=generator) - 1)
    img = (x * std + mean) * factors[0]
    gray = (0.299 * img[:, :1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:3]) if img.shape[1] == 3 else img
    img = factors[1] * img + (1 - factors[1]) * gray.mean(dim=(1, 2, 3), keepdim=True)
    if img.shape[1] == 3:
        img = factors[2] * img + (1 - factors[2]) * (0.299 * img[:, :1] + 0.587 * img[:, 1:2] + 0.114 * img[:, 2:3])
    return (img.clamp(0, 1) - mean) / std


def batch_augment(x: torch.Tensor, crop_padding: int = 4, flip: bool = True, cutout_size: int = 0,
                  generator: torch.Generator | None = None, resized_crop_scale: tuple[float, float] | None = None,
                  resized_crop_ratio: tuple[float, float] = (3 / 4, 4 / 3), jitter: float = 0.0,
                  mean: torch.Tensor | None = None, std: torch.Tensor | None = None) -> torch.Tensor:
    """The standard CIFAR training augmentation (random crop, horizontal flip, cutout), optionally preceded by a
    random-resized crop and followed by colour jitter (which needs the normalisation ``mean`` and ``std``)."""
    out = x
    if resized_crop_scale is not None:
        out = random_resized_crop(out, tuple(resized_crop_scale), tuple(resized_crop_ratio), generator)
    out = random_crop(out, crop_padding, generator)
    if flip:
        out = random_flip(out, generator=generator)
    if jitter > 0:
        out = color_jitter(out, jitter, mean, std, generator)
    out = cutout(out, cutout_size, generator=generator)
    return out.contiguous(memory_format=_memory_format(x))

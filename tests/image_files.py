"""Small generated image datasets written as real files (JPEG, PNG, BMP, WebP; RGB, grayscale, RGBA, palette)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

COLORS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def class_image(color, size=(20, 16), seed=0) -> np.ndarray:
    """A learnable image: the class colour plus a little noise (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    base = np.broadcast_to(np.asarray(color, np.float32), (size[1], size[0], 3))
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def write_image(path: Path, pixels: np.ndarray, mode: str = "RGB") -> Path:
    """Save ``pixels`` (H, W, 3) as ``mode`` in the format of the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(pixels)
    if mode == "L":
        im = im.convert("L")
    elif mode == "RGBA":
        im = im.convert("RGBA")
    elif mode == "P":
        im = im.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    im.save(path)
    return path


def write_folder_dataset(root: Path, per_class: int = 6, splits=("train",), size=(20, 16)) -> Path:
    """root/<split>/<class>/<i>.<fmt> for the three COLORS classes, in varied formats and modes."""
    formats = [("jpg", "RGB"), ("png", "RGBA"), ("png", "L"), ("bmp", "RGB"), ("png", "P"), ("jpeg", "RGB")]
    for s in splits:
        for c, color in COLORS.items():
            for i in range(per_class):
                ext, mode = formats[i % len(formats)]
                write_image(root / s / c / f"{i:03d}.{ext}", class_image(color, size, seed=i), mode)
    return root


def write_csv_dataset(root: Path, n: int = 24, rows_extra=None, split: list[str] | None = None) -> Path:
    """root/images/<i>.png + root/labels.csv with columns file, colour (3 classes), size_class (integers 1, 2)
    and, given ``split``, a split column."""
    rows = []
    names = list(COLORS)
    for i in range(n):
        colour = names[i % 3]
        pixels = class_image(COLORS[colour], seed=i)
        write_image(root / "images" / f"{i:03d}.png", pixels)
        rows.append({"file": f"images/{i:03d}.png", "colour": colour, "size_class": str(1 + (i // 3) % 2)})
        if split is not None:
            rows[-1]["split"] = split[i]
    rows += rows_extra or []
    return write_csv(root / "labels.csv", rows)


def write_csv(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = list(rows[0]) if rows else ["file", "colour"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path

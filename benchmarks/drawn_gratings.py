"""A drawn image set unlike CIFAR and unlike the drawn shapes: noisy gratings, classed by their orientation.

    python benchmarks/drawn_gratings.py ROOT --per-class 200 --classes 6 --noise 0.5 --seed 0

Writes ROOT/train/<class>/<n>.<ext> and ROOT/test/<class>/<n>.<ext> (a sixth as many test images): each image is a
sinusoidal grating at its class's orientation (classes evenly spaced over 180 degrees, each image turned by up to a
quarter of that spacing at random), of random spatial frequency (1.5 to 5 cycles across), phase, contrast and
colour tint, under Gaussian pixel noise of ``--noise`` (in units of the full range), drawn at 20 to 48 pixels and
saved as PNG or JPEG. The class lives in the texture's direction, not in a shape or a colour. Seeded: the same
arguments give the same files. Nothing is downloaded; nothing here is committed.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import drawn_folder  # noqa: E402


def draw(orientation: float, size: int, noise: float, rng: np.random.Generator):
    """One grating of ``orientation`` radians: a PIL image of ``size`` x ``size`` pixels."""
    from PIL import Image

    y, x = np.mgrid[0:size, 0:size] / size - 0.5
    cycles = rng.uniform(1.5, 5.0)
    wave = np.sin(2 * math.pi * cycles * (x * math.cos(orientation) + y * math.sin(orientation))
                  + rng.uniform(0, 2 * math.pi))
    contrast = rng.uniform(0.3, 1.0)
    tint = rng.uniform(0.4, 1.0, 3)
    base = rng.uniform(0.2, 0.8)
    pixels = base + 0.5 * contrast * wave[..., None] * tint + rng.normal(0.0, noise, (size, size, 3))
    return Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8))


def write(root: Path, per_class: int, classes: int, noise: float, seed: int) -> Path:
    """Write the image folder (kept when drawn there with these arguments, cleared when with others, refused when it
    holds other files: :mod:`drawn_folder`); returns ``root``."""
    arguments = f"gratings {per_class} {classes} {noise} {seed}"
    if not drawn_folder.prepare(root, ["train", "test"], arguments):
        return root
    rng = np.random.default_rng(seed)
    spacing = math.pi / classes
    for split, count in (("train", per_class), ("test", max(1, per_class // 6))):
        for c in range(classes):
            folder = root / split / f"deg{round(math.degrees(c * spacing)):03d}"
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(count):
                angle = c * spacing + rng.uniform(-0.25, 0.25) * spacing
                image = draw(angle, int(rng.integers(20, 49)), noise, rng)
                if rng.random() < 0.5:
                    image.save(folder / f"{n:04d}.png")
                else:
                    image.save(folder / f"{n:04d}.jpg", quality=int(rng.integers(60, 95)))
    drawn_folder.done(root, arguments)
    return root


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--per-class", type=int, default=200, help="training images per class")
    parser.add_argument("--classes", type=int, default=6, help="orientations, evenly spaced over 180 degrees")
    parser.add_argument("--noise", type=float, default=0.5, help="Gaussian pixel noise, in units of the full range")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    write(args.root, args.per_class, args.classes, args.noise, args.seed)
    print(f"wrote {args.root}/train and {args.root}/test")


if __name__ == "__main__":
    main()

"""A drawn image set that is not CIFAR: an image folder of shapes, for benchmarks that need unseen data.

    python benchmarks/drawn_shapes.py ROOT --per-class 600 --classes 6 --seed 0

Writes ROOT/train/<class>/<n>.<ext> and ROOT/test/<class>/<n>.<ext>: each image is one filled shape (circle,
square, triangle, star, cross, ring, ...) of random size, position, rotation and colour on a random textured
background, with random clutter lines (``--plain``: an easy set, each shape in its class's own colour on a flat
background, no clutter, no blur), drawn at a random size between 24 and 72 pixels and saved as PNG, JPEG or BMP in
RGB, grayscale or palette mode, so the loader's resizing and mode conversion are exercised too. Seeded: the same
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

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "hexagon", "bar")
CLASS_COLOURS = ((255, 255, 255), (0, 0, 0), (255, 0, 0), (0, 160, 0), (0, 0, 255), (255, 200, 0), (0, 200, 200),
                 (200, 0, 200))  # --plain: one per shape


def _polygon(cx: float, cy: float, r: float, n: int, angle: float, inner: float | None = None) -> list[tuple]:
    points = []
    for k in range(n * (2 if inner else 1)):
        radius = r if inner is None or k % 2 == 0 else r * inner
        a = angle + math.pi * 2 * k / (n * (2 if inner else 1))
        points.append((cx + radius * math.cos(a), cy + radius * math.sin(a)))
    return points


def draw(shape: str, size: int, rng: np.random.Generator, plain: bool = False):
    """One image of ``shape``: a PIL image of ``size`` x ``size`` pixels (``plain``: in its class's own colour on a
    flat background, with no clutter and no blur)."""
    from PIL import Image, ImageDraw, ImageFilter

    background = rng.integers(0, 256, (1 if plain else 4, 1 if plain else 4, 3), dtype=np.uint8)
    image = Image.fromarray(background).resize((size, size), Image.BILINEAR)
    pen = ImageDraw.Draw(image)
    for _ in range(0 if plain else int(rng.integers(0, 4))):  # clutter
        xy = [tuple(rng.uniform(0, size, 2)) for _ in range(2)]
        pen.line(xy, fill=tuple(int(v) for v in rng.integers(0, 256, 3)), width=max(1, size // 24))
    colour = tuple(int(v) for v in rng.integers(0, 256, 3))
    r = size * rng.uniform(0.18, 0.38)
    cx, cy = rng.uniform(r, size - r, 2)
    angle = rng.uniform(0, 2 * math.pi)
    if plain:  # the class's own colour, size and angle: colour alone tells the classes apart
        colour, r, angle = CLASS_COLOURS[SHAPES.index(shape)], size * 0.3, 0.0
    if shape == "circle":
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "ring":
        pen.ellipse([cx - r, cy - r, cx + r, cy + r], outline=colour, width=max(2, int(r / 3)))
    elif shape == "square":
        pen.polygon(_polygon(cx, cy, r, 4, angle), fill=colour)
    elif shape == "triangle":
        pen.polygon(_polygon(cx, cy, r, 3, angle), fill=colour)
    elif shape == "hexagon":
        pen.polygon(_polygon(cx, cy, r, 6, angle), fill=colour)
    elif shape == "star":
        pen.polygon(_polygon(cx, cy, r, 5, angle, inner=0.45), fill=colour)
    elif shape == "cross":
        for a in (angle, angle + math.pi / 2):
            dx, dy = r * math.cos(a), r * math.sin(a)
            pen.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=colour, width=max(2, int(r / 2.5)))
    elif shape == "bar":
        dx, dy = r * math.cos(angle), r * math.sin(angle)
        pen.line([(cx - dx, cy - dy), (cx + dx, cy + dy)], fill=colour, width=max(2, int(r / 1.5)))
    if not plain and rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.2))))
    return image


def write_set(root: Path, per_class: int, classes: int, seed: int, test_per_class: int | None = None,
              plain: bool = False) -> Path:
    """Write the image folder (skipped when it is already there with these arguments; another set this script drew
    there is cleared first, a folder of other files refused: :mod:`drawn_folder`); returns ``root``."""
    names = SHAPES[:classes]
    counts = {"train": per_class, "test": test_per_class if test_per_class is not None else max(per_class // 5, 1)}
    arguments = f"{per_class} {classes} {seed} {counts['test']}" + (" plain" if plain else "")
    if not drawn_folder.prepare(root, list(counts), arguments, marker=".complete"):
        return root
    rng = np.random.default_rng(seed)
    for split, count in counts.items():
        for name in names:
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for n in range(count):
                image = draw(name, int(rng.integers(24, 73)), rng, plain)
                kind = rng.integers(0, 5)
                if kind == 0:
                    image.convert("L").save(folder / f"{n}.png")
                elif kind == 1:
                    image.convert("P").save(folder / f"{n}.png")
                elif kind == 2:
                    image.save(folder / f"{n}.bmp")
                else:
                    image.save(folder / f"{n}.jpg", quality=int(rng.integers(60, 95)))
    drawn_folder.done(root, arguments, marker=".complete")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--per-class", type=int, default=600, help="training images per class")
    parser.add_argument("--test-per-class", type=int, default=None, help="test images per class (default: 1/5)")
    parser.add_argument("--classes", type=int, default=6, help=f"number of shapes, at most {len(SHAPES)}")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plain", action="store_true",
                        help="an easy set: each shape in its class's own colour on a flat background, no clutter, no blur")
    args = parser.parse_args()
    if not 2 <= args.classes <= len(SHAPES):
        parser.error(f"--classes must be in [2, {len(SHAPES)}]")
    print(write_set(args.root, args.per_class, args.classes, args.seed, args.test_per_class, args.plain))


if __name__ == "__main__":
    main()

"""A second drawn image set that is not CIFAR: digits 0-9 as glyphs, grayscale, 48x48, for spot checks on unseen data.

    python benchmarks/drawn_digits.py ROOT --per-class 150 --seed 1

Writes ROOT/<digit>/<n>.png (torchvision's ImageFolder layout, no split: the run holds out its own validation and
test images): each a digit in one of matplotlib's DejaVu fonts (sans, serif, mono, bold) at a random size,
position and rotation (+-30 degrees), light on a darker noisy background, saved as 8-bit grayscale PNG. Unlike the
shapes of drawn_shapes.py the classes differ only in a thin stroke's form, and the images are single-channel.
Seeded: the same arguments give the same files. Nothing is downloaded; nothing here is committed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import drawn_folder  # noqa: E402

FONTS = ("DejaVuSans.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf", "DejaVuSans-Bold.ttf")
SIDE = 48


def draw(digit: int, fonts: list, rng: np.random.Generator):
    """One digit: a PIL image, mode L, SIDE x SIDE."""
    from PIL import Image, ImageDraw, ImageFont

    background = Image.new("L", (SIDE, SIDE), int(rng.integers(0, 120)))
    font = ImageFont.truetype(fonts[int(rng.integers(len(fonts)))], int(rng.integers(18, 34)))
    stroke = Image.new("L", (SIDE, SIDE), 0)
    ImageDraw.Draw(stroke).text((int(rng.integers(6, 20)), int(rng.integers(2, 12))), str(digit), fill=255, font=font)
    stroke = stroke.rotate(float(rng.uniform(-30, 30)))
    image = Image.composite(Image.new("L", (SIDE, SIDE), int(rng.integers(130, 256))), background, stroke)
    noisy = np.asarray(image).astype(np.int16) + rng.integers(-40, 40, (SIDE, SIDE))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def write_set(root: Path, per_class: int, seed: int) -> Path:
    import matplotlib

    font_dir = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf"
    fonts = [str(font_dir / name) for name in FONTS]
    arguments = f"digits {per_class} {seed}"
    if not drawn_folder.prepare(root, [str(digit) for digit in range(10)], arguments):  # as drawn_folder says
        return root
    rng = np.random.default_rng(seed)
    for digit in range(10):
        (root / str(digit)).mkdir(parents=True, exist_ok=True)
        for n in range(per_class):
            draw(digit, fonts, rng).save(root / str(digit) / f"{n}.png")
    drawn_folder.done(root, arguments)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--per-class", type=int, default=150, help="images per class")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(write_set(args.root, args.per_class, args.seed))


if __name__ == "__main__":
    main()

"""Issue 20's case 2 redrawn: "own photos" of mixed sizes and formats, 4 classes (the CIFAR-10 copy's cat, deer, dog
and horse), each image upscaled to a random size (40-128 px high, aspect 0.75-1.33) and saved as JPEG, PNG or WebP in
turn: ROOT/train/<class>/ 667 per class (from CIFAR's training split), ROOT/test/<class>/ 500 per class (from its
test split). Needs ../shared/data/cifar10-jpeg.npz (exits with a message without it).

    python benchmarks/mixed_photos.py ROOT
"""
from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import drawn_folder  # noqa: E402

PACK = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.npz"
CLASSES = ("cat", "deer", "dog", "horse")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root")
    parser.add_argument("--train-per-class", type=int, default=667)
    parser.add_argument("--test-per-class", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args(argv)
    if not PACK.is_file():
        sys.exit(f"{PACK} not found: this set is drawn from the CIFAR-10 copy")
    z = np.load(PACK, allow_pickle=True)
    classes = [str(c) for c in z["classes"]]
    arguments = f"mixed_photos {args.train_per_class} {args.test_per_class} {args.seed}"
    if not drawn_folder.prepare(Path(args.root), ["train", "test"], arguments):  # kept, cleared or refused
        return
    rng = np.random.default_rng(args.seed)
    for split, per_class in (("train", args.train_per_class), ("test", args.test_per_class)):
        blob, offs, labels = z[f"{split}_jpeg"], z[f"{split}_offsets"], z[f"{split}_labels"]
        for name in CLASSES:
            folder = os.path.join(args.root, split, name)
            os.makedirs(folder, exist_ok=True)
            for j, i in enumerate(np.flatnonzero(labels == classes.index(name))[:per_class]):
                im = Image.open(io.BytesIO(bytes(blob[offs[i]:offs[i + 1]]))).convert("RGB")
                h = int(rng.integers(40, 129))
                w = int(np.clip(h * rng.uniform(0.75, 1.33), 32, 160))
                fmt = ("jpg", "png", "webp")[j % 3]
                im.resize((w, h), Image.Resampling.BICUBIC).save(os.path.join(folder, f"{name}_{j:04d}.{fmt}"),
                                                                 quality=90)
    drawn_folder.done(Path(args.root), arguments)


if __name__ == "__main__":
    main()

"""Throughput of the own-images path: decoding files into the cache (images/s), then one training epoch from the
cache with the batched on-device augmentation (images/s).

    python benchmarks/own_images.py --quick                 # 20 CIFAR-10 JPEGs per class, small net: seconds
    python benchmarks/own_images.py                         # all 50,000 training JPEGs, ResNet-9 (run it alone)
    python benchmarks/own_images.py --root DIR --image-size 64 --model resnet18   # your own image folder

Without --root, the CIFAR-10 JPEG copy is laid out as an image folder by ../shared/data/cifar10_jpeg.py in a
temporary folder. Prints one JSON line per measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
CIFAR_TOOL = os.path.join(os.path.dirname(ROOT), "shared", "data", "cifar10_jpeg.py")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="20 images per class, small net, 32 px")
    p.add_argument("--root", help="an image folder (ROOT/train/<class>/*); default: the CIFAR-10 JPEG copy")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--model", default=None, help="backbone name (default: resnet9; small with --quick)")
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--decode-workers", type=int, default=None, help="default: up to 8 cores")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    import pytorch_lightning as pl
    import torch

    from datamodules.image_cache import decode_all
    from datamodules.image_folder import ImageFolderDataModule
    from lightning_modules.classifier import Classifier
    from lightning_modules.networks import build_network

    model_name = args.model or ("small" if args.quick else "resnet9")
    batch_size = min(args.batch_size, 64) if args.quick else args.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        root = args.root
        if root is None:
            root = os.path.join(tmp, "cifar10")
            per_class = ["--per-class", "20"] if args.quick else []
            subprocess.run([sys.executable, CIFAR_TOOL, "folder", root, *per_class], check=True, capture_output=True)
        dm = ImageFolderDataModule(root=root, image_size=args.image_size, batch_size=batch_size, val_fraction=0.0,
                                   test_fraction=0.1, cache="memory", cache_dir=os.path.join(tmp, "cache"),
                                   decode_workers=args.decode_workers)
        paths = dm.read_records().paths
        start = time.perf_counter()
        _, bad = decode_all(paths, args.image_size, workers=args.decode_workers)
        seconds = time.perf_counter() - start
        print(json.dumps({"measure": "decode", "images": len(paths), "bad": len(bad), "seconds": round(seconds, 3),
                          "images_per_s": round(len(paths) / seconds, 1), "image_size": args.image_size}))
        dm.setup("fit")
        model = Classifier(build_network(model_name), dm.heads,
                           optimizer=lambda groups: torch.optim.SGD(groups, lr=0.05, momentum=0.9, nesterov=True))
        trainer = pl.Trainer(max_epochs=1, limit_val_batches=0, logger=False, enable_checkpointing=False,
                             enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp,
                             precision="16-mixed" if torch.cuda.is_available() else "32-true")
        start = time.perf_counter()
        trainer.fit(model, datamodule=dm)
        seconds = time.perf_counter() - start
        images = dm.steps_per_epoch() * batch_size
        print(json.dumps({"measure": "train_epoch", "model": model_name, "images": images, "batch_size": batch_size,
                          "seconds": round(seconds, 3), "images_per_s": round(images / seconds, 1),
                          "device": "cuda" if torch.cuda.is_available() else "cpu"}))


if __name__ == "__main__":
    main()

"""How fast the data side is, and how much of a training step waits for it.

    python benchmarks/data_throughput.py                  # all measurements (several minutes; run it alone)
    python benchmarks/data_throughput.py --quick          # small sizes, small net: seconds
    python benchmarks/data_throughput.py --skip-epoch     # leave out the train.py epoch

Prints one table with a row per measurement:

* ``batched``: images/s of ``datamodules.augment.batch_augment`` on ONE CPU thread (``torch.set_num_threads(1)``),
  on a normalised float batch of ``--batch-size`` 32x32 images: the recipe's crop (pad 2) + flip, + cutout 8,
  + random-resized crop, + colour jitter, and all together; median over ``--repeats`` calls after one warm-up call.
* ``albumentations``: images/s of the datamodule's per-sample pipeline (``augment=albumentations``: pad 4 + crop,
  flip, cutout 8) through its own training DataLoader with 0, 1 and 2 workers, timed from the second batch on (so
  worker start-up is left out), over ``--batches`` batches; skipped with a message when albumentations is absent.
* ``cache build``: images/s of building the own-images cache file (``datamodules.image_cache.load_or_decode``
  into an empty cache folder) from JPEG files: the CIFAR-10 copy's training images when ../shared/data is there
  (``--cache-images`` of them), else generated JPEGs; ``--quick`` always generates 64.
* ``epoch wait``: the share of step time spent waiting for data in a real ``train.py experiment=cifar10_fast
  trainer=cpu`` epoch with the batched path: the ``benchmarks/step_timer.StepTimer`` callback (added by Hydra
  override) stamps the end of each step and the start of the next; the gap is the loader's ``next()`` plus the
  batch transfer and ``on_after_batch_transfer`` (normalisation + batched augmentation), divided by the whole
  step time (sums over the epoch, first step excluded). Target: < 2%. Data: the CIFAR-10 copy when present, else
  synthetic images of the same size and count; ``--quick``: synthetic, small net, batch 32, 6 steps.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.report import SHARED_DATA, add_common_options, finish, subprocess_env, table  # noqa: E402
from benchmarks.runs_table import run_python  # noqa: E402

CIFAR_TOOL = SHARED_DATA / "cifar10_jpeg.py"


def batched_rows(batch: int, repeats: int) -> list[list[object]]:
    import torch

    from datamodules.augment import batch_augment

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, 3, 32, 32, generator=g)
        mean, std = torch.full((3,), 0.47), torch.full((3,), 0.25)
        cases = {
            "crop 2 + flip (cifar10_fast)": dict(crop_padding=2),
            "crop 4 + flip + cutout 8": dict(crop_padding=4, cutout_size=8),
            "random-resized crop + flip": dict(crop_padding=0, resized_crop_scale=(0.35, 1.0)),
            "crop 4 + flip + colour jitter 0.4": dict(crop_padding=4, jitter=0.4, mean=mean, std=std),
            "all of the above": dict(crop_padding=4, cutout_size=8, resized_crop_scale=(0.35, 1.0), jitter=0.4,
                                     mean=mean, std=std),
        }
        rows = []
        for name, kwargs in cases.items():
            batch_augment(x, generator=g, **kwargs)  # warm-up
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                batch_augment(x, generator=g, **kwargs)
                times.append(time.perf_counter() - start)
            rows.append(["batched", name, "1 thread", batch / statistics.median(times)])
        return rows
    finally:
        torch.set_num_threads(threads)


def albumentations_rows(batch: int, batches: int, workers: list[int]) -> list[list[object]]:
    try:
        import albumentations  # noqa: F401
    except ImportError:
        print("albumentations is not installed: per-sample rows skipped", file=sys.stderr)
        return []
    from datamodules.synthetic import SyntheticDataModule

    rows = []
    for w in workers:
        dm = SyntheticDataModule(num_train=batch * (batches + 1), num_val=batch, batch_size=batch,
                                 augment="albumentations", crop_padding=4, cutout=8, num_workers=w)
        dm.setup("fit")
        loader = dm.train_dataloader()
        it = iter(loader)
        next(it)  # worker start-up and the first batch: not counted
        start = time.perf_counter()
        n = sum(len(b[0]) for b, _ in zip(it, range(batches)))
        seconds = time.perf_counter() - start
        rows.append(["albumentations", "pad 4 + crop, flip, cutout 8 (per sample)", f"{w} workers", n / seconds])
        del it, loader
    return rows


def jpeg_paths(folder: Path, count: int, quick: bool) -> list[str]:
    """JPEG files to build a cache from: the CIFAR-10 copy's training images, or generated ones."""
    if not quick and CIFAR_TOOL.exists():
        per_class = max(1, count // 10)
        subprocess.run([sys.executable, str(CIFAR_TOOL), "folder", str(folder), "--per-class", str(per_class)],
                       check=True, capture_output=True)
        return sorted(str(p) for p in (folder / "train").rglob("*.jpg"))
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        path = folder / f"{i:06d}.jpg"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path, quality=75)
        paths.append(str(path))
    return paths


def cache_rows(tmp: Path, count: int, quick: bool, workers: int | None) -> list[list[object]]:
    from datamodules.image_cache import load_or_decode

    paths = jpeg_paths(tmp / "jpegs", count, quick)
    source = "generated JPEGs" if quick or not CIFAR_TOOL.exists() else "CIFAR-10 copy JPEGs"
    start = time.perf_counter()
    decoded = load_or_decode(paths, 32, cache="memory", cache_dir=str(tmp / "cache"), workers=workers)
    seconds = time.perf_counter() - start
    if decoded.images.shape[0] != len(paths):
        raise RuntimeError("the cache holds a different number of images than there are files")
    label = f"{workers} workers" if workers is not None else "default workers"
    return [["cache build", f"{len(paths)} {source} -> 32x32 cache file", label, len(paths) / seconds]]


def epoch_rows(tmp: Path, quick: bool, threads: int | None, in_process: bool = False) -> list[list[object]]:
    out = tmp / "steps.json"
    if quick:
        data = ["data=synthetic", "data.batch_size=32", "data.num_train=256", "data.num_val=32", "model=small",
                "trainer.max_steps=6"]
        source = "synthetic, small net, batch 32"
    elif CIFAR_TOOL.exists():
        from benchmarks.cifar10_fast import cifar_copy
        data = [f"data.root={cifar_copy()}", "trainer.max_steps=48"]  # one epoch: 50,000 // 1024 batches
        source = "CIFAR-10 copy, airbench, batch 1024"
    else:
        data = ["data=synthetic", "data.num_train=50000", "data.num_val=1024", "trainer.max_steps=48"]
        source = "synthetic 50,000 images, airbench, batch 1024"
    cmd = [sys.executable, str(ROOT / "train.py"), "experiment=cifar10_fast", "trainer=cpu", *data, "test=false",
           f"hydra.run.dir={tmp / 'run'}", "+callbacks.step_timer._target_=benchmarks.step_timer.StepTimer",
           f"+callbacks.step_timer.path={out}"]
    code, _, err = run_python(Path(cmd[1]), cmd[2:], in_process, env=subprocess_env(threads))
    if code != 0:
        sys.stderr.write(err[-4000:])
        sys.exit(f"failed: {' '.join(cmd)}")
    times = json.loads(out.read_text())
    waits, steps = times["waits"], times["intervals"]
    share = 100 * sum(waits) / sum(steps)
    return [["epoch wait", f"train.py cifar10_fast epoch, batched path ({source})",
             f"{len(steps)} steps, {statistics.median(steps):.3g} s/step", f"{share:.3g}% of step time"]]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(p)
    p.add_argument("--batch-size", type=int, default=None, help="images per batch (default 1024; 64 with --quick)")
    p.add_argument("--repeats", type=int, default=None, help="batched calls timed per case (default 20; 3 --quick)")
    p.add_argument("--batches", type=int, default=None, help="albumentations batches timed (default 20; 2 --quick)")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="albumentations DataLoader workers")
    p.add_argument("--cache-images", type=int, default=5000, help="images in the cache build (64 with --quick)")
    p.add_argument("--cache-workers", type=int, default=None, help="decode processes (default: the module's)")
    p.add_argument("--skip-epoch", action="store_true", help="leave out the train.py epoch")
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the train.py epoch")
    p.add_argument("--in-process", action="store_true",
                   help="run the train.py epoch inside this process, not a fresh one: only to check that it works "
                        "(the suite's --quick run); its times are not comparable")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    batch = args.batch_size or (64 if args.quick else 1024)
    rows = batched_rows(batch, args.repeats or (3 if args.quick else 20))
    rows += albumentations_rows(batch, args.batches or (2 if args.quick else 20),
                                [w for w in args.workers if not (args.quick and w > 1)])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows += cache_rows(tmp, 64 if args.quick else args.cache_images, args.quick, args.cache_workers)
        if not args.skip_epoch:
            rows += epoch_rows(tmp, args.quick, args.threads, args.in_process)
    text = table(["path", "what", "setting", "images/s (or share)"],
                 [[r[0], r[1], r[2], f"{r[3]:.0f}" if isinstance(r[3], float) else r[3]] for r in rows])
    finish(args, f"Data throughput (batch {batch}, {os.cpu_count()} CPUs)", text)


if __name__ == "__main__":
    main()

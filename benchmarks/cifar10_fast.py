"""Benchmark: the cifar10_fast recipe on the offline CIFAR-10 copy, on this machine.

Lays the copy out as cifar-10-batches-py (once, cached under benchmarks/runs/), runs train.py in a subprocess for
each seed and prints, per run, validation accuracy per epoch (test split, no TTA), final test accuracy with TTA,
and wall time (the whole command, start-up and test included). Paste the output into benchmarks/RESULTS.md.

    python benchmarks/cifar10_fast.py --seeds 0 [--extra trainer=gpu ...]
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = next((p for p in (ROOT.parent / "shared" / "data", ROOT / "shared" / "data") if p.exists()),
              ROOT.parent / "shared" / "data")
RUNS = ROOT / "benchmarks" / "runs"


def cifar_copy() -> Path:
    root = RUNS / "cifar10"
    if not (root / "cifar-10-batches-py" / "test_batch").exists():
        tool = SHARED / "cifar10_jpeg.py"
        if not tool.exists():
            sys.exit(f"the offline CIFAR-10 copy is absent ({tool}); nothing to benchmark")
        subprocess.run([sys.executable, str(tool), "batches", str(root)], check=True)
    return root


def read_metrics(run_dir: Path) -> tuple[list[tuple[int, float]], dict[str, float]]:
    rows = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))
    per_epoch = [(int(r["epoch"]), float(r["val/acc"])) for r in rows if r.get("val/acc")]
    final = {k: float(v) for r in rows for k, v in r.items() if k.startswith("test/") and v}
    return per_epoch, final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--experiment", default="cifar10_fast")
    parser.add_argument("--extra", nargs="*", default=[], help="more Hydra overrides")
    args = parser.parse_args()
    data_root = cifar_copy()
    for seed in args.seeds:
        run_dir = RUNS / f"{args.experiment}_seed{seed}_{time.strftime('%Y%m%d-%H%M%S')}"
        cmd = [sys.executable, str(ROOT / "train.py"), f"experiment={args.experiment}", f"data.root={data_root}",
               f"seed={seed}", "logger=tensorboard_csv", f"hydra.run.dir={run_dir}", "~callbacks.progress_bar",
               "trainer.enable_progress_bar=false", *args.extra]
        start = time.perf_counter()
        result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if result.returncode != 0:
            print(result.stdout[-3000:], result.stderr[-5000:])
            sys.exit(f"run failed: {' '.join(cmd)}")
        per_epoch, final = read_metrics(run_dir)
        print(f"seed {seed}: wall {wall / 60:.1f} min, test/acc (TTA) {final.get('test/acc', float('nan')):.4f}")
        print("  val/acc per epoch (no TTA): " + ", ".join(f"{e + 1}: {a:.4f}" for e, a in per_epoch))
        print(f"  run dir: {run_dir.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

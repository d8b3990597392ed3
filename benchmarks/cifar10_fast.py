"""Benchmark: a CIFAR-10 recipe (cifar10_fast by default) end to end with train.py, on this machine.

    python benchmarks/cifar10_fast.py --seeds 0 1 2 [--extra trainer=gpu speed.compile=true]
    python benchmarks/cifar10_fast.py --experiment cifar10_resnet9 --seeds 0 1 --extra trainer=gpu --record
    python benchmarks/cifar10_fast.py --quick            # synthetic images, small net, 3 steps: checks it runs

Data: the offline CIFAR-10 copy (../shared/data or shared/data) laid out as cifar-10-batches-py once, under
benchmarks/runs/; without the copy, the datamodule downloads CIFAR-10 there with torchvision (data.download=true).
Runs train.py in a subprocess per seed (--in-process: inside this one, for the suite's --quick check), with the
StepTimer callback (benchmarks/step_timer.py) added by override.
Prints per run: validation accuracy per epoch (test split, no TTA), final test accuracy with TTA, wall time of the
whole command and of training alone (fit: from the first to the last training step, validation included, start-up
and test excluded); then a summary table: test accuracy mean and spread (max - min) over seeds, training and total
wall time (mean), training images/s (optimizer steps x batch / training time), device, torch and Lightning.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.report import add_common_options, finish, machine, median_spread, subprocess_env, table  # noqa: E402
from benchmarks.runs_table import run_python  # noqa: E402

SHARED = next((p for p in (ROOT.parent / "shared" / "data", ROOT / "shared" / "data") if p.exists()),
              ROOT.parent / "shared" / "data")
RUNS = ROOT / "benchmarks" / "runs"


def cifar_copy(download: bool = False) -> Path:
    """cifar-10-batches-py under benchmarks/runs/cifar10: from the offline copy, or (``download``) left to the
    datamodule's torchvision download when the copy is absent."""
    root = RUNS / "cifar10"
    if not (root / "cifar-10-batches-py" / "test_batch").exists():
        tool = SHARED / "cifar10_jpeg.py"
        if tool.exists():
            subprocess.run([sys.executable, str(tool), "batches", str(root)], check=True)
        elif not download:
            sys.exit(f"the offline CIFAR-10 copy is absent ({tool}); nothing to benchmark")
    return root


def read_metrics(run_dir: Path) -> tuple[list[tuple[int, float]], dict[str, float]]:
    rows = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))
    per_epoch = [(int(r["epoch"]), float(r["val/acc"])) for r in rows if r.get("val/acc")]
    final = {k: float(v) for r in rows for k, v in r.items() if k.startswith(("test/", "test_no_tta/")) and v}
    return per_epoch, final


def run_seed(args, seed: int, data: list[str], runs: Path) -> dict:
    run_dir = runs / f"{args.experiment}_seed{seed}_{time.strftime('%Y%m%d-%H%M%S')}"
    cmd = [sys.executable, str(ROOT / "train.py"), f"experiment={args.experiment}", *data, f"seed={seed}",
           "logger=tensorboard_csv", f"hydra.run.dir={run_dir}", "~callbacks.progress_bar",
           "trainer.enable_progress_bar=false", "+callbacks.step_timer._target_=benchmarks.step_timer.StepTimer",
           f"+callbacks.step_timer.path={run_dir / 'step_times.json'}", *args.extra]
    start = time.perf_counter()
    code, out, err = run_python(Path(cmd[1]), cmd[2:], args.in_process, env=subprocess_env())
    wall = time.perf_counter() - start
    if code != 0:
        print(out[-3000:], err[-5000:])
        sys.exit(f"run failed: {' '.join(cmd)}")
    per_epoch, final = read_metrics(run_dir)
    timer = json.loads((run_dir / "step_times.json").read_text())
    used = yaml.safe_load((run_dir / "config.yaml").read_text())
    images_per_s = timer["steps"] * used["data"]["batch_size"] / timer["fit_s"]
    print(f"seed {seed}: wall {wall:.1f} s (training {timer['fit_s']:.1f} s, {images_per_s:.0f} images/s), "
          f"test/acc (TTA) {final.get('test/acc', float('nan')):.4f}, "
          f"without TTA {final.get('test_no_tta/acc', float('nan')):.4f}", flush=True)
    print("  val/acc per epoch (no TTA): " + ", ".join(f"{e + 1}: {a:.4f}" for e, a in per_epoch))
    print(f"  run dir: {run_dir}; device {used['trainer']['accelerator']}, "
          f"precision {used['trainer']['precision']}, compile {used['speed']['compile']}")
    return {"acc": final.get("test/acc", float("nan")), "plain": final.get("test_no_tta/acc", float("nan")),
            "wall": wall, "fit": timer["fit_s"], "ips": images_per_s,
            "precision": used["trainer"]["precision"]}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(parser)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--experiment", default="cifar10_fast")
    parser.add_argument("--extra", nargs="*", default=[], help="more Hydra overrides")
    parser.add_argument("--in-process", action="store_true",
                        help="train inside this process, not a fresh one: only to check that it works (the suite's "
                             "--quick run); its times are not comparable")
    parser.add_argument("--download", action="store_true",
                        help="without the offline copy, download CIFAR-10 (torchvision) instead of stopping")
    args = parser.parse_args(argv)
    if args.quick:
        data = ["data=synthetic", "data.num_train=256", "data.num_val=64", "data.batch_size=32", "model=small",
                "model.tta_level=1", "trainer.max_steps=3", "trainer=cpu"]
    else:
        root = cifar_copy(args.download)
        data = [f"data.root={root}", f"data.download={str(args.download).lower()}"]
    with tempfile.TemporaryDirectory() as tmp:  # --quick runs leave nothing behind
        runs = [run_seed(args, seed, data, Path(tmp) if args.quick else RUNS) for seed in args.seeds]
    acc, spread = statistics.mean(r["acc"] for r in runs), median_spread([r["acc"] for r in runs])[1]
    plain = statistics.mean(r["plain"] for r in runs)
    info = machine()
    device = info.get("gpu", info["cpu"])
    text = table(["recipe", "seeds", "test acc (TTA) mean", "spread (max-min)", "no TTA mean", "training s (mean)",
                  "total s (mean)", "training images/s", "precision", "device", "torch", "lightning"],
                 [[args.experiment, len(runs), f"{acc:.4f}", f"{spread:.4f}", f"{plain:.4f}",
                   f"{statistics.mean(r['fit'] for r in runs):.4g}", f"{statistics.mean(r['wall'] for r in runs):.4g}",
                   f"{statistics.mean(r['ips'] for r in runs):.0f}", runs[0]["precision"], device, info["torch"],
                   info["lightning"]]])
    finish(args, f"{args.experiment} end to end ({' '.join(args.extra) or 'recipe defaults'})", text)


if __name__ == "__main__":
    main()

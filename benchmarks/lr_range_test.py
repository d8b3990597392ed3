"""Benchmark: does the LR range test's suggestion rank well? (issue: LR range test)

1. Runs `task=lr_range_test` on the recipe (default cifar10_fast) on the offline CIFAR-10 copy and records the
   suggestions and the time the test took.
2. Trains the recipe with a reduced step budget at peak LR = suggestion x {1/4, 1/2, 1, 2, 4} and reports the
   final test accuracy (TTA as configured) of each, so you can see where the suggestion ranks.

For cifar10_fast the peak LR is the middle value of its piecewise schedule; the sweep scales all three values
(start 0.2x, peak, end 0.07x of the peak), keeping the recipe's shape.

    python benchmarks/lr_range_test.py [--range-steps 100] [--budget-steps 48] [--extra trainer=cpu ...]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cifar10_fast import ROOT, RUNS, cifar_copy, read_metrics  # noqa: E402

FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)


def train(args, data_root: Path, name: str, overrides: list[str]) -> tuple[Path, float]:
    run_dir = RUNS / f"{name}_{time.strftime('%Y%m%d-%H%M%S')}"
    cmd = [sys.executable, str(ROOT / "train.py"), f"experiment={args.experiment}", f"data.root={data_root}",
           "logger=tensorboard_csv", f"hydra.run.dir={run_dir}", "~callbacks.progress_bar",
           "trainer.enable_progress_bar=false", *args.extra, *overrides]
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-5000:])
        sys.exit(f"run failed: {' '.join(cmd)}")
    return run_dir, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="cifar10_fast")
    parser.add_argument("--range-steps", type=int, default=100)
    parser.add_argument("--budget-steps", type=int, default=48, help="optimizer steps per sweep run")
    parser.add_argument("--suggestion", default="min_div10")
    parser.add_argument("--factors", type=float, nargs="+", default=list(FACTORS), help="peak LR / suggestion")
    parser.add_argument("--extra", nargs="*", default=[], help="more Hydra overrides for every run")
    parser.add_argument("--sweep-extra", nargs="*", default=[], help="more Hydra overrides for the sweep runs only")
    parser.add_argument("--range-test-dir", type=Path, help="reuse the range test of this earlier run directory")
    args = parser.parse_args()
    data_root = cifar_copy()

    if args.range_test_dir is None:
        run_dir, wall = train(args, data_root, "range_test",
                              ["task=lr_range_test", f"range_test.num_steps={args.range_steps}",
                               f"range_test.suggestion={args.suggestion}"])
    else:
        run_dir, wall = args.range_test_dir.resolve(), float("nan")
    report = json.loads((run_dir / "tensorboard" / "lr_range_test.json").read_text())
    found = float(report["chosen_lr"])
    print(f"range test: {args.range_steps} steps max, wall {wall / 60:.1f} min (command incl. start-up), "
          f"sweep {report.get('elapsed_s', float('nan')):.0f} s")
    print("  suggestions: " + ", ".join(f"{k} {v:.4g}" for k, v in report["suggestions"].items()))
    print(f"  chosen ({args.suggestion}): {found:.4g}   run dir: {run_dir.relative_to(ROOT)}")

    print(f"sweep: {args.budget_steps} optimizer steps per run, peak LR = factor x {found:.4g}")
    results = []
    for factor in args.factors:
        peak = factor * found
        values = f"[{0.2 * peak:.6g},{peak:.6g},{0.07 * peak:.6g}]"
        run_dir, wall = train(args, data_root, f"sweep_x{factor:g}",
                              [f"scheduler.values={values}", f"trainer.max_steps={args.budget_steps}",
                               *args.sweep_extra])
        per_epoch, final = read_metrics(run_dir)
        acc = final.get("test/acc", float("nan"))
        if acc != acc:  # no test: the last validation accuracy
            acc = per_epoch[-1][1] if per_epoch else float("nan")
        results.append((acc, factor))
        print(f"  x{factor:<5g} peak {peak:.4g}: test/acc {acc:.4f}, wall {wall / 60:.1f} min")
    rank = sorted(results, reverse=True).index(next(r for r in results if r[1] == 1.0)) + 1
    print(f"the suggestion (x1) ranks {rank} of {len(results)}")


if __name__ == "__main__":
    main()

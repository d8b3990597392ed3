"""Benchmark (issue 21 item 3): test accuracy of the project's `cifar10_fast` against airbench94's own loop (the
shared peer, ../shared/peers/airbench94_cpu.py), same CIFAR-10 copy, same precision and memory layout, same seeds.

Per seed, the project's run and then the peer's (A, B, A, B: a machine that drifts during the session drifts on
both), each alone in its own subprocess. Reported: test accuracy with and without TTA per side, mean, spread,
standard error over seeds, and the difference peer - project with its standard error; a difference under two
standard errors is "no measurable difference". Outputs in --out: peer_accuracy.csv (one row per run), a table on
stdout (and RESULTS.md with --record).

    python benchmarks/peer_accuracy.py --seeds 0 1 2 --precision bf16   # ~10 min per run on an AVX-512 BF16 CPU
    python benchmarks/peer_accuracy.py --seeds 0 1 2 --precision fp32   # ~25-75 min per run, 2 cores
    python benchmarks/peer_accuracy.py --summary-only                   # the table from the CSV
"""
from __future__ import annotations

import argparse
import csv
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.cifar10_fast import cifar_copy, run_seed  # noqa: E402
from benchmarks.peer_speed import PEER, peer_result  # noqa: E402
from benchmarks.report import RESULTS, cpu_model, record, subprocess_env  # noqa: E402
from benchmarks.runs_table import standard_error, write_csv  # noqa: E402

COLUMNS = ["seed", "side", "precision", "tta_acc", "acc", "train_s", "date", "machine"]
# Both sides channels_last (the project's CPU default); the precision is the one option that differs by flag.
PRECISIONS = {"fp32": (["trainer=cpu"], ["--channels-last"]),
              "bf16": (["trainer=cpu_fast"], ["--channels-last", "--bf16"])}


def peer_command(root: Path, seed: int, precision: str) -> list[str]:
    return [sys.executable, str(PEER), str(root), "--seed", str(seed), *PRECISIONS[precision][1]]


def run_peer_seed(root: Path, seed: int, precision: str) -> dict:
    cmd = peer_command(root, seed, precision)
    proc = subprocess.run(cmd, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"the peer failed: {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}")
    result = peer_result(proc.stdout)
    print(f"peer seed {seed}: test acc (TTA) {result['tta_acc']:.4f}, without {result['acc']:.4f}", flush=True)
    return {"tta_acc": result["tta_acc"], "acc": result["acc"], "train_s": result["train_s"]}


def run_project_seed(project: argparse.Namespace, seed: int, root: Path) -> dict:
    result = run_seed(project, seed, [f"data.root={root}", "data.download=false"], ROOT / "benchmarks" / "runs")
    return {"tta_acc": result["acc"], "acc": result["plain"], "train_s": round(result["fit"], 1)}


def side_stats(rows: list[dict], side: str, key: str) -> dict:
    values = [100 * float(r[key]) for r in rows if r["side"] == side]
    se = standard_error(values)
    return {"n": len(values), "mean": statistics.mean(values), "spread": max(values) - min(values), "se": se}


def summary(rows: list[dict]) -> str:
    lines = ["| metric | project mean | spread | s.e. | peer mean | spread | s.e. | peer - project | s.e. | verdict |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key, label in (("tta_acc", "test acc with TTA (%)"), ("acc", "test acc without TTA (%)")):
        a, b = side_stats(rows, "project", key), side_stats(rows, "peer", key)
        diff, se = b["mean"] - a["mean"], math.hypot(a["se"], b["se"])
        verdict = ("no measurable difference" if abs(diff) < 2 * se else
                   f"the {'peer' if diff > 0 else 'project'} is better") if math.isfinite(se) else "needs 2+ seeds"
        lines.append(f"| {label} | {a['mean']:.2f} | {a['spread']:.2f} | {a['se']:.2f} | {b['mean']:.2f} | "
                     f"{b['spread']:.2f} | {b['se']:.2f} | {diff:+.2f} | {se:.2f} | {verdict} |")
    seeds = sorted({int(float(r['seed'])) for r in rows})
    return (f"Seeds {seeds}, precision {sorted({r['precision'] for r in rows})}, channels_last on both sides; "
            "s.e. = standard error over seeds.\n\n" + "\n".join(lines))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--precision", choices=list(PRECISIONS), default="fp32")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "evidence" / "peer_accuracy")
    parser.add_argument("--summary-only", action="store_true", help="print the table from the CSV; no training")
    parser.add_argument("--record", action="store_true", help="append a dated entry to --results")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    csv_path = args.out / "peer_accuracy.csv"
    rows = list(csv.DictReader(open(csv_path))) if csv_path.exists() else []
    if not args.summary_only:
        root = cifar_copy()
        project = argparse.Namespace(experiment="cifar10_fast", extra=PRECISIONS[args.precision][0])
        done = {(int(r["seed"]), r["side"], r["precision"]) for r in rows}
        for seed in args.seeds:  # A, B per seed
            for side in ("project", "peer"):
                if (seed, side, args.precision) in done:
                    continue
                result = (run_project_seed(project, seed, root) if side == "project"
                          else run_peer_seed(root, seed, args.precision))
                rows.append({"seed": seed, "side": side, "precision": args.precision, **result,
                             "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": cpu_model()})
                write_csv(csv_path, rows, COLUMNS)  # after every run: an interrupted benchmark resumes
    if not rows:
        sys.exit(f"no results yet: {csv_path}")
    text = summary(rows)
    print(text)
    if args.record:
        record(args.results, "cifar10_fast against airbench94's own loop: test accuracy (issue 21)", text)


if __name__ == "__main__":
    main()

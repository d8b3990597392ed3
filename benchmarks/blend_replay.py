"""Replay (issue 20): how much weight should auto's blend give the update point, and how much tolerance should the
trials' choice keep now that the update point joins it?

v17 trains at the geometric mean of the trials' choice ``t`` and the update point ``u`` wherever a trial learned:
``t ** (1 - w) * u ** w`` with ``w = 0.5``, ``t`` chosen with a 5% tolerance (``trials.choose``: a larger candidate
whose score is within 5% of the best is kept where the trials' signal is weak). This reads each current auto run's recorded search under --runs
(``lr_range_test.json``: ``suggestions["trials"]`` and ``["update"]``, the rule ``blend``; its trials' signal from
``RangeTestResult.trial_signal``: ``weak`` where lr_source says "a weak signal", else ``strong``) and, for each
tolerance in --tolerances (``t`` chosen again by ``trials.choose`` among the recorded trials, the refinement trial
included as it ran) and each weight in --weights, reads the validation and test accuracy that LR would train to off that seed's sweep (linear in log LR
between the two nearest swept peaks, as ``trial_scores.py`` reads: an estimate, not a run). Gap = the sweep's
validation-best run minus that, in points, on each split. Writes blend_replay.csv (one row per run and weight) to
--out and prints, per signal group, tolerance and weight, the mean gap on both splits, and the paired change in test
gap against v17 (5%, 0.5).

    python benchmarks/blend_replay.py --runs benchmarks/runs/auto_lr --seeds 0 1 2 --out benchmarks/runs/blend_fit
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runs_table as rt  # noqa: E402
import trial_scores as ts  # noqa: E402
from callbacks.range_test.result import RangeTestResult  # noqa: E402
from callbacks.range_test.trials import choose  # noqa: E402

WEIGHTS = (0.0, 0.2, 0.35, 0.5, 0.65, 0.8, 1.0)
TOLERANCES = (0.0, 0.01, 0.02, 0.03, 0.05)
V17 = (0.05, 0.5)  # (tolerance, weight)


def blended(t: float, u: float, w: float) -> float:
    """``t ** (1 - w) * u ** w``: the trials' choice and the update point, weighted in log LR."""
    return math.exp((1 - w) * math.log(t) + w * math.log(u))


def replay(rows: list[dict], runs: Path, seeds: set[int], weights=WEIGHTS, tolerances=TOLERANCES,
           job: str = "auto_v17") -> list[dict]:
    out = []
    for (setting, seed), sweep in ts.sweeps(rows).items():
        path = runs / f"{setting}_s{seed}_{job}" / "lr_range_test.json"
        if seed not in seeds or not path.exists():
            continue
        result = json.loads(path.read_text())
        if result.get("rule") != "blend":  # no trial learned: v17's fallbacks, no blend
            continue
        group = "weak" if "a weak signal" in RangeTestResult.from_json(path).trial_signal else "strong"
        best = max(sweep, key=lambda r: float(r["val"]))
        val = {float(r["lr"]): float(r["val"]) for r in sweep}
        test = {float(r["lr"]): float(r["test"]) for r in sweep}
        u, chance = result["suggestions"]["update"], result["trials"][0].get("chance_loss")
        for tolerance in tolerances:
            t = choose(result["trials"], tolerance=tolerance, chance=chance)["lr"]
            for w in weights:
                lr = blended(t, u, w)
                out.append({"setting": setting, "seed": seed, "group": group, "tolerance": tolerance, "weight": w,
                            "lr": lr,
                            "best_lr": float(best["lr"]),
                            "gap_val": 100 * (float(best["val"]) - ts.interpolated(val, lr)),
                            "gap_test": 100 * (float(best["test"]) - ts.interpolated(test, lr))})
    return out


def table(picked: list[dict]) -> list[dict]:
    """Per signal group (and all), tolerance and weight: runs, mean gap on validation and test, and the paired change
    in test gap against v17 (mean +/- s.e.)."""
    rows = []
    for group in ("weak", "strong", "all"):
        members = [p for p in picked if group in ("all", p["group"])]
        base = {(p["setting"], p["seed"]): p for p in members if (p["tolerance"], p["weight"]) == V17}
        for knobs in sorted({(p["tolerance"], p["weight"]) for p in members}):
            at = [p for p in members if (p["tolerance"], p["weight"]) == knobs]
            change = [p["gap_test"] - base[(p["setting"], p["seed"])]["gap_test"] for p in at]
            rows.append({"group": group, "tolerance": knobs[0], "weight": knobs[1], "runs": len(at),
                         "gap val": f"{statistics.mean(p['gap_val'] for p in at):+.2f}",
                         "gap test": f"{statistics.mean(p['gap_test'] for p in at):+.2f}",
                         "test change vs v17": f"{statistics.mean(change):+.2f} ± {rt.standard_error(change):.2f}"})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, required=True, help="folder of the auto runs (v17's)")
    parser.add_argument("--csv", type=Path, default=rt.EVIDENCE / "auto_lr" / "auto_lr.csv", help="the sweep rows")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS))
    parser.add_argument("--tolerances", type=float, nargs="+", default=list(TOLERANCES))
    args = parser.parse_args()
    picked = replay(rt.read_csv(args.csv), args.runs, set(args.seeds), args.weights, args.tolerances)
    if not picked:
        sys.exit(f"no blended auto runs under {args.runs} match a sweep in {args.csv}")
    args.out.mkdir(parents=True, exist_ok=True)
    rt.write_csv(args.out / "blend_replay.csv", picked,
                 ["setting", "seed", "group", "tolerance", "weight", "lr", "best_lr", "gap_val", "gap_test"])
    rows = table(picked)
    print(rt.markdown_table(rows, list(rows[0])))


if __name__ == "__main__":
    main()

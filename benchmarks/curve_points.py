"""Replay (issue 20): could one point of the range-test curve, times one multiple calibrated on other settings,
choose max_lr as well as the trials do?

Reads each auto run's recorded range test under --runs (``lr_range_test.json``: the LRs and raw losses; the range
test itself is the same in every auto method so far) and the sweep rows of ``auto_lr.csv``. Per setting and seed it
reads points off the curve: the four suggestions, recomputed from the raw losses by the project's own rules
(``min_div10``, ``steepest``, ``valley``, ``loss_min``); where the smoothed loss has climbed back a quarter, half or all
of the way from its minimum to its start (``rise25``, ``rise50``, ``rise100``); where the sweep stopped (``cap``); the
geometric midpoint of ``loss_min`` and ``cap`` (``mid_cap``); and what auto chose (``trials``, taken as it is). For
each point, ``log_ratio`` = log10(the sweep's validation-best peak / the point). Leave one setting out: the multiple
for a setting is 10 ** (the mean over the *other* settings of their mean log_ratio), so no setting is scored with a
multiple fitted on itself; the test accuracy of multiple x point is read off that seed's sweep (as trial_scores does:
linear in log LR, an estimate, not a run). Gap = the sweep's validation-best run minus that, in points. Writes
curve_points.csv (one row per setting, seed and point) to --out and prints the table.

    python benchmarks/curve_points.py --runs benchmarks/runs/auto_lr --out benchmarks/evidence/curve_points
"""
from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runs_table as rt  # noqa: E402
import trial_scores as ts  # noqa: E402
from callbacks.range_test.suggestions import compute_suggestions  # noqa: E402

POINTS = ("min_div10", "steepest", "valley", "loss_min", "rise25", "rise50", "rise100", "cap", "mid_cap", "trials")


def curve_points(result: dict) -> dict[str, float]:
    """The points of one recorded range test (see the module's docstring), each an LR."""
    lrs, losses = np.asarray(result["lrs"], float), np.asarray(result["losses"], float)
    points, smoothed = compute_suggestions(lrs, losses)
    low = int(np.flatnonzero(lrs <= points["loss_min"] * (1 + 1e-9))[-1])  # the minimum's index
    for share in (0.25, 0.5, 1.0):
        level = smoothed[low] + share * (smoothed[0] - smoothed[low])
        rise = [k for k in range(low, len(lrs)) if np.isfinite(smoothed[k]) and smoothed[k] >= level]
        points[f"rise{round(100 * share)}"] = float(lrs[rise[0] if rise else -1])
    stop = result.get("stop_index")
    points["cap"] = float(lrs[min(stop, len(lrs) - 1)] if stop is not None else lrs[-1])
    points["mid_cap"] = math.sqrt(points["loss_min"] * points["cap"])
    points["trials"] = float(result["lr"])
    return {name: float(points[name]) for name in POINTS}


def replay(rows: list[dict], runs: Path) -> list[dict]:
    """One row per setting, seed and point: the point's LR, the sweep's best, log_ratio, the leave-one-setting-out
    multiple and the test gap at multiple x point."""
    seen = []
    for (setting, seed), sweep in ts.sweeps(rows).items():
        result = ts.auto_result(runs, setting, seed)
        if result is None or not result.get("lrs"):
            continue
        best = max(sweep, key=lambda r: float(r["val"]))
        test = {float(r["lr"]): float(r["test"]) for r in sweep}
        seen.append((setting, seed, curve_points(result), float(best["lr"]), float(best["test"]), test))
    settings = sorted({s[0] for s in seen})
    mean_log = {(setting, point): statistics.mean(math.log10(best / p[point])
                                                  for s, _, p, best, _, _ in seen if s == setting)
                for setting in settings for point in POINTS}
    out = []
    for setting, seed, points, best, best_test, test in seen:
        for point, lr in points.items():
            others = [mean_log[(o, point)] for o in settings if o != setting]
            multiple = 1.0 if point == "trials" or not others else 10 ** statistics.mean(others)
            out.append({"setting": setting, "seed": seed, "point": point, "lr": lr, "best_lr": best,
                        "log_ratio": math.log10(best / lr), "multiple": multiple,
                        "gap_test": 100 * (best_test - ts.interpolated(test, multiple * lr))})
    return out


def table(picked: list[dict]) -> list[dict]:
    """Per point: log_ratio per setting (mean ± SD over seeds) and the leave-one-out gap, mean over settings (the
    mean of each setting's mean), the worst setting's mean and the worst seed."""
    rows = []
    settings = list(dict.fromkeys(p["setting"] for p in picked))
    for point in POINTS:
        mine = [p for p in picked if p["point"] == point]
        gaps = {s: [p["gap_test"] for p in mine if p["setting"] == s] for s in settings}
        ratios = {s: [p["log_ratio"] for p in mine if p["setting"] == s] for s in settings}
        spread = [statistics.mean(r) for r in ratios.values()]
        rows.append({"point": point, "gap": statistics.mean(statistics.mean(g) for g in gaps.values()),
                     "worst_setting": max(statistics.mean(g) for g in gaps.values()),
                     "worst_seed": max(max(g) for g in gaps.values()),
                     "log_ratio_range": f"{min(spread):+.2f} to {max(spread):+.2f}",
                     **{s: f"{statistics.mean(r):+.2f}" for s, r in ratios.items()}})
    return rows


def main() -> None:
    ts.replay_main(__doc__, replay, "curve_points.csv",
                   ["setting", "seed", "point", "lr", "best_lr", "log_ratio", "multiple", "gap_test"], table,
                   "folder of the auto runs (their lr_range_test.json)",
                   {"gap": "+.2f", "worst_setting": "+.2f", "worst_seed": "+.2f"})


if __name__ == "__main__":
    main()

"""What the max_lr trials buy for their cost (issue 20). The trials are most of auto's search (a 100-step range test,
then four or five trials of 50-200 steps); the range test alone is far cheaper. For every current auto run of the
issue-20 benchmark (``auto_lr.current_auto``) whose ``lr_source`` names the range test's update point and loss
minimum, this reads off that seed's sweep (linear in log LR between the two nearest swept peaks, as
``trial_scores.interpolated`` reads: an estimate, not a run) the test accuracy at auto's own LR and at LRs the range
test alone would give: the update point (the first LR whose step moved the weights 3%) times a few factors, and the
loss minimum. Gap = the seed's validation-chosen sweep run minus that, in points. Prints, per rule, the mean gap with
its standard error, the worst run, the paired change against auto's own LR and the settings whose mean gap is within
1 point; and the search's cost in optimizer steps against the training's, whole and range test alone. Reads the CSV
only; no training.

    python benchmarks/search_value.py
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import auto_lr  # noqa: E402
import runs_table as rt  # noqa: E402
import trial_scores as ts  # noqa: E402

UPDATE = re.compile(r"update point ([0-9.eE+-]+)")
LOSS_MIN = re.compile(r"loss_min ([0-9.eE+-]+)")
UPDATE_FACTORS = (0.7, 1.0, 1.4, 2.0)
RANGE_TEST_STEPS = 100  # conf/range_test/exp.yaml's num_steps: the range test's cost at most (it may stop earlier)


def gaps(rows: list[dict]) -> list[dict]:
    """Per current auto run with an update point on record: the gap (points) at auto's LR (``auto``, read off the
    sweep like the others), at ``update x f`` for each factor and at the loss minimum; and the search's and the
    range test's optimizer steps over the training's."""
    sweeps = ts.sweeps(rows)
    out = []
    for r in rows:
        key = (r["setting"], int(float(r["seed"])))
        update, loss_min = UPDATE.search(str(r["lr_source"])), LOSS_MIN.search(str(r["lr_source"]))
        if (r["kind"] != "auto" or r["status"] != "completed" or not auto_lr.current_auto(r) or key not in sweeps
                or not update or not loss_min):
            continue
        test = {float(s["lr"]): float(s["test"]) for s in sweeps[key]}
        best = float(max(sweeps[key], key=lambda s: float(s["val"]))["test"])
        read = {"auto": float(r["lr"]), "loss_min": float(loss_min.group(1)),
                **{f"update x{f:g}": f * float(update.group(1)) for f in UPDATE_FACTORS}}
        train = max(float(r["train_steps"]), 1.0)
        out.append({"setting": r["setting"], "seed": key[1],
                    **{rule: 100 * (best - ts.interpolated(test, lr)) for rule, lr in read.items()},
                    "search_cost": float(r["search_steps"]) / train, "range_test_cost": RANGE_TEST_STEPS / train})
    return out


def summary(runs: list[dict]) -> list[dict]:
    """Per rule: runs, mean gap ± s.e., worst, paired change against ``auto`` ± s.e., settings within 1 point."""
    out = []
    for rule in ["auto", "loss_min"] + [f"update x{f:g}" for f in UPDATE_FACTORS]:
        values = [g[rule] for g in runs]
        change = [g[rule] - g["auto"] for g in runs]
        per = {}
        for g in runs:
            per.setdefault(g["setting"], []).append(g[rule])
        out.append({"rule": rule, "runs": len(values), "gap": statistics.mean(values),
                    "se": rt.standard_error(values), "worst": max(values),
                    "vs_auto": statistics.mean(change), "se_vs_auto": rt.standard_error(change),
                    "settings_within_1": f"{sum(statistics.mean(v) <= 1 for v in per.values())}/{len(per)}"})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=rt.EVIDENCE / "auto_lr" / "auto_lr.csv")
    args = parser.parse_args()
    runs = gaps(rt.read_csv(args.csv))
    if not runs:
        raise SystemExit(f"{args.csv}: no current auto run with an update point and a sweep")
    table = summary(runs)
    print(rt.markdown_table(table, list(table[0]), {"gap": "+.2f", "se": ".2f", "worst": "+.1f", "vs_auto": "+.2f",
                                                    "se_vs_auto": ".2f"}))
    for what in ("search_cost", "range_test_cost"):
        costs = sorted(g[what] for g in runs)
        print(f"{what}: optimizer steps over the training's, median {statistics.median(costs):.2f}x "
              f"(range {costs[0]:.2f}-{costs[-1]:.2f}x) over {len(costs)} runs")


if __name__ == "__main__":
    main()

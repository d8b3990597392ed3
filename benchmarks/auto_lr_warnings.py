"""How far ``max_lr=auto`` missed a sweep, split by what its ``lr_source`` warns (issue 20).

Reads the current auto runs of the issue-20 benchmark (the rows of ``auto_lr.csv`` that ``auto_lr.py`` counts) and
each run's ``lr_range_test.json``, and sorts the runs by the warnings ``lr_source`` gives, read from the recorded
search's ``RangeTestResult`` as ``lr_source`` reads them (a run made before a warning existed gets it too):
- ``no upper limit``: the range test's loss never blew up (``RangeTestResult.no_limit``);
- ``weak signal``: the best trial ended under 18% below chance-level loss (``RangeTestResult.trial_signal``);
- ``no trial learned``: no trial ended 1% below it (the same).
Per group: runs, settings, the gap to the sweep's validation-chosen best (test points, mean ± s.e.), auto against the
control, the share of runs whose LR was more than 3x off the sweep's best, and the 10th-90th percentile of best / auto.

    python benchmarks/auto_lr_warnings.py
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import auto_lr  # noqa: E402
import runs_table as rt  # noqa: E402
from callbacks.range_test.result import RangeTestResult  # noqa: E402

WARNINGS = ("no upper limit", "weak signal", "no trial learned")


def warnings(search: RangeTestResult) -> list[str]:
    """The warnings ``lr_source`` gives for a recorded search (``RangeTestResult.from_json`` of its file)."""
    signal = search.trial_signal
    return [w for w, given in (("no upper limit", search.no_limit), ("weak signal", "a weak signal" in signal),
                               ("no trial learned", "no trial ended" in signal)) if given]


def runs(rows: list[dict]) -> list[dict]:
    """Per current auto run with a gap: setting, seed, gap, gap against the control, best / auto and warnings."""
    gaps = {(g["setting"], int(g["seed"])): g for g in auto_lr.gaps(rows)}
    out = []
    for r in rows:
        key = (r["setting"], int(float(r["seed"])))
        search = Path(str(r["run_dir"]).strip()) / "lr_range_test.json"
        if r["kind"] != "auto" or not auto_lr.current_auto(r) or key not in gaps or not search.exists():
            continue
        g = gaps[key]
        if math.isnan(g["gap_test"]):
            continue
        out.append({"setting": key[0], "seed": key[1], "gap": g["gap_test"], "gap_control": g["gap_control"],
                    "ratio": g["best_lr"] / g["auto_lr"], "warnings": warnings(RangeTestResult.from_json(search))})
    return out


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def group(name: str, members: list[dict]) -> dict:
    """One table row: how the runs of a group missed the sweep's best."""
    gaps = [m["gap"] for m in members]
    paired = [m["gap"] - m["gap_control"] for m in members if not math.isnan(m["gap_control"])]
    ratios = [m["ratio"] for m in members]
    return {"warning": name, "runs": len(members), "settings": len({m["setting"] for m in members}),
            "gap": f"{statistics.mean(gaps):+.2f} ± {rt.standard_error(gaps):.2f}",
            "against control": f"{statistics.mean(paired):+.2f} ± {rt.standard_error(paired):.2f}" if paired else "",
            "LR >3x off": f"{sum(abs(math.log(r)) > math.log(3) for r in ratios) / len(ratios):.0%}",
            "best / auto, 10-90%": f"{quantile(ratios, 0.1):.2g}-{quantile(ratios, 0.9):.2g}"}


def table(found: list[dict]) -> list[dict]:
    """A row per warning, one for the runs without any, and one for all."""
    members = {w: [m for m in found if w in m["warnings"]] for w in WARNINGS}
    members["none"] = [m for m in found if not m["warnings"]]
    return [group(w, ms) for w, ms in members.items() if len(ms) > 1] + [group("all", found)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=rt.EVIDENCE / "auto_lr" / "auto_lr.csv")
    args = parser.parse_args()
    rows = table(runs(rt.read_csv(args.csv)))
    print(rt.markdown_table(rows, list(rows[0])))


if __name__ == "__main__":
    main()

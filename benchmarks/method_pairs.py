"""Two versions of ``max_lr=auto`` on the same runs (issue 20): test accuracy paired per setting and seed.

The issue-20 benchmark (``benchmarks/auto_lr.py``) names each auto run ``<setting>_s<seed>_<job>``, the job after the
method (``auto_v14``, ``auto_v15``, ...). For every setting and seed that has a finished run of both ``--old`` and
``--new`` under ``--runs``, this reads each run's test accuracy (``result.json``) and the LRs its trials tried
(``lr_range_test.json``). A run "changed" when the two searches tried different LRs or chose different ones: where
they tried and chose the same, the new method trains exactly as the old one. Prints one row per run and, for the runs
that changed (``--all``: every pair), the mean gain (new minus old, test points) with its standard error, better /
worse / same.

    python benchmarks/method_pairs.py --old auto_v14 --new auto_v15 --settings shapes6_airbench_adamw cifar_adamw24
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
from auto_lr_settings import SETTINGS  # noqa: E402
from callbacks.run.result_file import read_result  # noqa: E402


def run_record(run_dir: Path) -> dict | None:
    """A finished auto run's test accuracy, LR and the LRs its trials tried; ``None`` when it did not finish."""
    result = read_result(run_dir, strict=False)
    if not result or result.get("status") != "completed":
        return None
    search = run_dir / "lr_range_test.json"
    trials = json.loads(search.read_text()).get("trials", []) if search.exists() else []
    return {"test": rt.metric(result, "test/acc"), "lr": (result.get("lr") or {}).get("max_lr"),
            "tried": sorted(round(t["lr"], 12) for t in trials)}


def pairs(runs: Path, old: str, new: str, settings: list[str], seeds: range = range(100)) -> list[dict]:
    """One row per setting and seed with a finished run of both jobs."""
    out = []
    for setting in settings:
        for seed in seeds:
            a, b = (run_record(runs / f"{setting}_s{seed}_{job}") for job in (old, new))
            if a and b:
                changed = a["tried"] != b["tried"] or not math.isclose(a["lr"], b["lr"])
                out.append({"setting": setting, "seed": seed, "old_lr": a["lr"], "new_lr": b["lr"],
                            "changed": changed, "gain": 100 * (b["test"] - a["test"])})
    return out


def summary(rows: list[dict]) -> dict:
    """Mean gain, its standard error and the counts over ``rows`` (``nan`` for fewer than two)."""
    gains = [r["gain"] for r in rows]
    return {"runs": len(gains), "gain": statistics.mean(gains) if gains else math.nan,
            "se": rt.standard_error(gains) if len(gains) > 1 else math.nan,
            "better": sum(g > 0 for g in gains), "worse": sum(g < 0 for g in gains), "same": sum(g == 0 for g in gains)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="the job name of the method in use, e.g. auto_v14")
    parser.add_argument("--new", required=True, help="the job name of the method under test, e.g. auto_v15")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--runs", type=Path, default=rt.RUNS / "auto_lr")
    parser.add_argument("--all", action="store_true", help="summarise every pair, not only those that changed")
    args = parser.parse_args()
    rows = pairs(args.runs, args.old, args.new, args.settings)
    if not rows:
        sys.exit(f"no setting has finished runs of both {args.old} and {args.new} under {args.runs}")
    print(rt.markdown_table(rows, ["setting", "seed", "old_lr", "new_lr", "changed", "gain"],
                            {"old_lr": ".3g", "new_lr": ".3g", "gain": "+.2f"}))
    s = summary(rows if args.all else [r for r in rows if r["changed"]])
    print(f"\n{'all pairs' if args.all else 'runs that changed'}: {s['runs']}, gain {s['gain']:+.2f} ± {s['se']:.2f} "
          f"test points ({s['better']} better, {s['worse']} worse, {s['same']} the same)")


if __name__ == "__main__":
    main()

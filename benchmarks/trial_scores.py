"""Replay (issue 20): would the max_lr trials choose better peaks if scored on validation instead of training loss?

Reads the auto runs made with ``range_test.trial_val_batches`` (each trial's validation loss and accuracy in
``lr_range_test.json``; since v21 recorded only after trials that ended below 10% of chance-level loss,
``trials.NEAR_MEMORISED``, so a replay of every trial needs runs made before v21) under --runs, and the sweep rows of
``auto_lr.csv``. Per setting and seed, each rule picks one of the trials' LRs: ``train_loss`` (what auto chose: the
training loss with the tolerance and refinement), ``val_loss`` (lowest validation loss), ``val_acc`` (highest
validation accuracy; ties: the larger LR). The test
accuracy a rule's LR would train to is read off that seed's sweep (linear in log LR between the two nearest swept
peaks; the end value outside them): an estimate, not a run. Gap = the sweep's validation-best run minus that, in
points. Writes trial_scores.csv (one row per setting, seed and rule) to --out and prints the table.

    python benchmarks/trial_scores.py --runs benchmarks/runs/auto_lr_probe/val --out benchmarks/evidence/trial_scores
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

RULES = ("train_loss", "val_loss", "val_acc")


def pick(trials: list[dict], chosen: float, rule: str) -> float:
    """The LR ``rule`` picks among ``trials`` (those with validation scores); ``chosen``: auto's own choice."""
    scored = [t for t in trials if "val_loss" in t and math.isfinite(t["val_loss"])]
    if rule == "train_loss" or not scored:
        return chosen
    if rule == "val_loss":
        return min(scored, key=lambda t: (t["val_loss"], -t["lr"]))["lr"]
    return max(scored, key=lambda t: (t["val_acc"], t["lr"]))["lr"]


def interpolated(sweep: dict[float, float], lr: float) -> float:
    """``sweep`` ({peak: accuracy}) read at ``lr``, linear in log LR; the end value outside the swept range."""
    peaks = sorted(sweep)
    if lr <= peaks[0] or lr >= peaks[-1]:
        return sweep[peaks[0] if lr <= peaks[0] else peaks[-1]]
    low = max(p for p in peaks if p <= lr)
    high = min(p for p in peaks if p >= lr)
    if low == high:
        return sweep[low]
    w = (math.log(lr) - math.log(low)) / (math.log(high) - math.log(low))
    return (1 - w) * sweep[low] + w * sweep[high]


def sweeps(rows: list[dict]) -> dict[tuple[str, int], list[dict]]:
    """The sweep rows of ``auto_lr.csv`` that trained (a number in ``val``), per (setting, seed)."""
    out: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        if r["kind"] == "sweep" and not math.isnan(float(r["val"])):
            out.setdefault((r["setting"], int(float(r["seed"]))), []).append(r)
    return dict(sorted(out.items()))


def auto_result(runs: Path, setting: str, seed: int) -> dict | None:
    """The recorded range test (``lr_range_test.json``) of the setting's auto run of that seed under ``runs`` (the
    latest method's, by name), or ``None``."""
    found = sorted(runs.glob(f"{setting}_s{seed}_auto*/lr_range_test.json"))
    return json.loads(found[-1].read_text()) if found else None


def replay(rows: list[dict], runs: Path) -> list[dict]:
    out = []
    for (setting, seed), sweep in sweeps(rows).items():
        result = auto_result(runs, setting, seed)
        if result is None:
            continue
        best = max(sweep, key=lambda r: float(r["val"]))
        test = {float(r["lr"]): float(r["test"]) for r in sweep}
        for rule in RULES:
            lr = pick(result["trials"], result["lr"], rule)
            out.append({"setting": setting, "seed": seed, "rule": rule, "lr": lr, "best_lr": float(best["lr"]),
                        "gap_test": 100 * (float(best["test"]) - interpolated(test, lr))})
    return out


def table(picked: list[dict]) -> list[dict]:
    rows = []
    for setting in dict.fromkeys(p["setting"] for p in picked):
        row = {"setting": setting, "seeds": len({p["seed"] for p in picked if p["setting"] == setting})}
        for rule in RULES:
            gaps = [p["gap_test"] for p in picked if (p["setting"], p["rule"]) == (setting, rule)]
            row[f"{rule} gap"] = f"{statistics.mean(gaps):+.2f} ± {rt.standard_error(gaps):.2f}"
            row[f"{rule} worst"] = f"{max(gaps):+.2f}"
        rows.append(row)
    return rows


def replay_main(doc: str, replay_rows, out_name: str, columns: list[str], summarise, runs_help: str,
                specs: dict | None = None) -> None:
    """The command line of a replay over the auto runs (this script's and curve_points.py's): ``--runs``, ``--csv``
    (the sweep rows), ``--out``; writes ``replay_rows(rows, runs)`` to ``out_name`` and prints ``summarise``'s table."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--runs", type=Path, required=True, help=runs_help)
    parser.add_argument("--csv", type=Path, default=rt.EVIDENCE / "auto_lr" / "auto_lr.csv", help="the sweep rows")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    picked = replay_rows(rt.read_csv(args.csv), args.runs)
    if not picked:
        sys.exit(f"no auto runs under {args.runs} ({runs_help}) match a sweep in {args.csv}")
    args.out.mkdir(parents=True, exist_ok=True)
    rt.write_csv(args.out / out_name, picked, columns)
    rows = summarise(picked)
    print(rt.markdown_table(rows, list(rows[0]), specs or {}))


def main() -> None:
    replay_main(__doc__, replay, "trial_scores.csv", ["setting", "seed", "rule", "lr", "best_lr", "gap_test"], table,
                "folder of the auto runs with trial_val_batches")


if __name__ == "__main__":
    main()

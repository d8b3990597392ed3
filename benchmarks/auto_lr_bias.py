"""Is auto's LR off by the trials' short horizon (issue 20)? Per setting of the issue-20 benchmark: the run's
optimizer steps over one trial's (``N / L``), and the sweep's best peak (by validation accuracy averaged over seeds,
``auto_lr.mean_sweep``) over auto's LR (geometric mean over the setting's current auto runs). A trial shorter than
the run favours small peaks (the short-horizon bias), so if the trials' length drove auto's error, best / auto would
rise with N / L. Prints one row per setting and, per optimizer family (the Adam family: a ``betas`` optimizer, as
``trials.adam_family`` reads it; the SGD family: every other), the least-squares slope of log10(best / auto) on
log10(N / L), their correlation and the mean ratio; writes auto_lr_bias.csv beside auto_lr.csv. Then, per family,
what a constant factor on auto's LR would cost or gain, read off each setting's seed-averaged sweep (the curve gap of
``auto_lr.curve_gaps`` at ``factor x`` each run's LR, against the factor 1). Reads the CSV only (``lr_source`` names
each trial's length); no training.

    python benchmarks/auto_lr_bias.py
"""
from __future__ import annotations

import argparse
import math
import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import auto_lr  # noqa: E402
import runs_table as rt  # noqa: E402

ADAM_FAMILY = ("adam", "adamw")  # the benchmark's optimizer configs with betas (conf/optimizer/)
FACTORS = (0.5, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5)
TRIAL_LENGTH = re.compile(r"trials? of (\d+) steps")


def settings(rows: list[dict]) -> list[dict]:
    """Per setting with a sweep and current auto runs whose trials ran: N / L, best / auto and the family."""
    out = []
    for name in dict.fromkeys(r["setting"] for r in rows):
        val, _ = auto_lr.mean_sweep(rows, name)
        autos = [r for r in rows if r["setting"] == name and r["kind"] == "auto" and auto_lr.current_auto(r)
                 and not math.isnan(float(r["test"])) and TRIAL_LENGTH.search(str(r["lr_source"]))]
        if not val or not autos:
            continue
        best = max(val, key=lambda p: val[p])
        lengths = [float(r["train_steps"]) / int(TRIAL_LENGTH.search(str(r["lr_source"])).group(1)) for r in autos]
        optimizer = str(autos[0].get("optimizer") or "sgd").strip().lower()
        optimizer = "sgd" if optimizer in ("", "nan") else optimizer
        out.append({"setting": name, "optimizer": optimizer,
                    "family": "adam" if optimizer in ADAM_FAMILY else "sgd", "runs": len(autos),
                    "run_over_trial": statistics.geometric_mean(lengths),
                    "best_over_auto": best / statistics.geometric_mean(float(r["lr"]) for r in autos)})
    return out


def fit(members: list[dict]) -> dict:
    """Least squares of log10(best / auto) on log10(N / L): slope, correlation, mean ratio (geometric)."""
    x = [math.log10(m["run_over_trial"]) for m in members]
    y = [math.log10(m["best_over_auto"]) for m in members]
    mx, my = statistics.mean(x), statistics.mean(y)
    sxx = sum((a - mx) ** 2 for a in x)
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sxx if sxx > 0 else math.nan
    corr = statistics.correlation(x, y) if sxx > 0 and len(set(y)) > 1 else math.nan
    return {"settings": len(members), "slope": slope, "correlation": corr, "mean_best_over_auto": 10 ** my,
            "sd_log10": statistics.stdev(y) if len(y) > 1 else math.nan}


def scaled(rows: list[dict], factors=FACTORS) -> list[dict]:
    """Per family and factor: the curve gap (points) of every current auto run at ``factor x`` its LR, its mean, the
    paired change against factor 1 with its standard error, and the settings whose mean is within 1 point."""
    gaps = {}
    for name in dict.fromkeys(r["setting"] for r in rows):
        autos = [r for r in rows if r["setting"] == name and r["kind"] == "auto" and auto_lr.current_auto(r)
                 and not math.isnan(float(r["test"]))]
        if not autos:
            continue
        family = "adam" if str(autos[0].get("optimizer", "")).strip().lower() in ADAM_FAMILY else "sgd"
        others = [r for r in rows if r["setting"] == name and r["kind"] == "sweep"]
        for f in factors:
            moved = others + [{**r, "lr": f * float(r["lr"])} for r in autos]
            gaps.setdefault((family, f), {})[name] = auto_lr.curve_gaps(moved, name)
    out = []
    for (family, f), per in gaps.items():
        per = {k: v for k, v in per.items() if v}
        if not per:
            continue
        every = [g for v in per.values() for g in v]
        base = [g for k in per for g in gaps[(family, 1.0)][k]]
        change = [a - b for a, b in zip(every, base)]
        out.append({"family": family, "factor": f, "runs": len(every), "curve_gap": statistics.mean(every),
                    "change": statistics.mean(change), "se_change": rt.standard_error(change),
                    "settings_within_1": f"{sum(statistics.mean(v) <= 1 for v in per.values())}/{len(per)}"})
    return sorted(out, key=lambda r: (r["family"], r["factor"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=rt.EVIDENCE / "auto_lr" / "auto_lr.csv")
    args = parser.parse_args()
    table = settings(rt.read_csv(args.csv))
    columns = ["setting", "optimizer", "family", "runs", "run_over_trial", "best_over_auto"]
    rt.write_csv(args.csv.parent / "auto_lr_bias.csv", table, columns)
    print(rt.markdown_table(table, columns, {"run_over_trial": ".2f", "best_over_auto": ".2f"}))
    fits = [{"family": f, **fit([m for m in table if m["family"] == f])} for f in ("sgd", "adam")]
    print(rt.markdown_table(fits, list(fits[0]), {"slope": "+.3f", "correlation": "+.3f",
                                                  "mean_best_over_auto": ".2f", "sd_log10": ".3f"}))
    moved = scaled(rt.read_csv(args.csv))
    print(rt.markdown_table(moved, list(moved[0]), {"curve_gap": "+.2f", "change": "+.2f", "se_change": ".2f"}))


if __name__ == "__main__":
    main()

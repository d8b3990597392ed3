"""How often Smith's accuracy test reads a rise out of pure noise, by the rule before and the rule now.

A simulation, not a training run: each draw is one accuracy test whose points are binomial draws of one constant
accuracy ``p`` (nothing learns) on ``n`` images each, at ``k`` evenly spaced LRs. The rule before counted a rise
when the best point beat the first by more than one standard error of the best; the rule now is
``callbacks.range_test.suggestions.accuracy_test_bounds`` itself (a rise beyond :func:`noise_rise`, then its other
checks). The same draws go through both. A second table draws a real rise (``p`` to ``p + 0.3`` between 20% and 60%
of the ramp) and counts how often the rule now finds bounds, and where (the medians of base_lr and max_lr: the rise
runs from LR 0.2 to 0.6 of a ramp 0-1). Writes accuracy_noise.csv to --out.

    python benchmarks/accuracy_noise.py --out benchmarks/evidence/accuracy_noise [--draws 4000] [--quick]
"""
from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from callbacks.range_test.suggestions import accuracy_test_bounds  # noqa: E402


def bounds(lrs: np.ndarray, accs: np.ndarray, n: int) -> dict | None:
    try:
        return accuracy_test_bounds(lrs, accs, num_images=n)
    except ValueError:
        return None


def rates(k: int, n: int, p: float, draws: int, rise: float, rng: np.random.Generator) -> dict:
    """Share of ``draws`` tests (``k`` points on ``n`` images, accuracy ``p`` plus ``rise`` along the ramp) in which
    the rule before and the rule now find a rise."""
    lrs = np.linspace(0.0, 1.0, k)
    truth = p + rise * np.clip((lrs - 0.2) / 0.4, 0.0, 1.0)
    before, found = 0, []
    for _ in range(draws):
        accs = rng.binomial(n, truth) / n
        best = accs.max()
        before += best - accs[0] > math.sqrt(best * (1 - best) / n)
        found += [b for b in [bounds(lrs, accs, n)] if b is not None]
    median = {key: round(float(np.median([b[key] for b in found])), 3) if found else math.nan
              for key in ("base_lr", "max_lr")}
    return {"points": k, "images": n, "accuracy": p, "rise": rise, "draws": draws,
            "before": round(before / draws, 4), "now": round(len(found) / draws, 4),
            "base_lr_median": median["base_lr"], "max_lr_median": median["max_lr"]}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/evidence/accuracy_noise")
    parser.add_argument("--draws", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="200 draws, two settings (the suite's check)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    grid = [(5, 128, 0.1), (40, 2048, 0.5)] if args.quick else [
        (k, n, p) for k in (5, 21, 40) for n in (128, 2048) for p in (0.1, 0.5)]
    draws = 200 if args.quick else args.draws
    rows = [rates(k, n, p, draws, rise, rng) for rise in (0.0, 0.3) for k, n, p in grid]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "accuracy_noise.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print("| points | images | accuracy | true rise | rule before: rise found | rule now: bounds found | "
          "base_lr, max_lr (medians where found) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['points']} | {r['images']} | {r['accuracy']} | {r['rise']} | {r['before']:.1%} | {r['now']:.1%} | "
              f"{r['base_lr_median']}, {r['max_lr_median']} |")
    return rows


if __name__ == "__main__":
    main()

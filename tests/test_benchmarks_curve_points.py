"""benchmarks/curve_points.py: points read off a curve with a known shape, and the leave-one-setting-out multiple
worked out by hand."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import curve_points  # noqa: E402

LRS = 10 ** np.linspace(-4, 1, 101)  # 20 points per decade; 0.01 is the 41st


def _parabola(center: float = -2.0) -> list[float]:
    """A loss that is a parabola in log10 LR with its minimum at 10 ** center, 1.0 there and 2.0 two decades away."""
    return [1.0 + 0.25 * (x - center) ** 2 for x in np.log10(LRS)]


def _result(chosen: float = 0.05) -> dict:
    return {"lrs": LRS.tolist(), "losses": _parabola(), "stop_index": 90, "lr": chosen}


def test_points_of_a_parabola_sit_where_the_loss_climbs_back():
    """Minimum at 0.01, start (LR 1e-4) 1.0 above it: a quarter of the way back up is one decade past the minimum
    (0.1), half is sqrt(2) decades (0.26), all of it two decades (1.0)."""
    points = curve_points.curve_points(_result())
    assert points["loss_min"] == pytest.approx(0.01, rel=0.13)  # within one point of the grid (0.05 decade)
    assert math.log10(points["rise25"]) == pytest.approx(-1.0, abs=0.1)
    assert math.log10(points["rise50"]) == pytest.approx(-2 + math.sqrt(2), abs=0.1)
    assert math.log10(points["rise100"]) == pytest.approx(0.0, abs=0.1)
    assert points["cap"] == pytest.approx(LRS[90]) and points["trials"] == 0.05
    assert points["mid_cap"] == pytest.approx(math.sqrt(points["loss_min"] * LRS[90]))
    assert points["min_div10"] <= points["loss_min"] and set(points) == set(curve_points.POINTS)


def test_each_setting_is_scored_with_a_multiple_fitted_on_the_others(tmp_path):
    """Three settings on the same curve: the sweep's best is 3x the loss minimum on a and b, 30x on c. c's multiple
    comes from a and b alone (3x: it lands on 0.03, 10 points below c's best at 0.3); a's from b and c (10 **
    mean(log10 3, log10 30) = 9.5x)."""
    tests = {0.01: 0.40, 0.03: 0.50, 0.1: 0.55, 0.3: 0.60}
    best_of = {"a": 0.03, "b": 0.03, "c": 0.3}
    rows = []
    for setting, best in best_of.items():
        run = tmp_path / f"{setting}_s0_auto_v5"
        run.mkdir()
        (run / "lr_range_test.json").write_text(json.dumps(_result()))
        rows += [{"setting": setting, "seed": "0", "kind": "sweep", "lr": str(lr),
                  "val": str(0.9 if lr == best else 0.5), "test": str(test)} for lr, test in tests.items()]
    picked = {(p["setting"], p["point"]): p for p in curve_points.replay(rows, tmp_path)}
    low = picked[("c", "loss_min")]["lr"]
    assert picked[("c", "loss_min")]["multiple"] == pytest.approx(0.03 / low)
    at = curve_points.ts.interpolated(tests, 0.03)
    assert picked[("c", "loss_min")]["gap_test"] == pytest.approx(100 * (0.60 - at))
    assert picked[("a", "loss_min")]["multiple"] == pytest.approx(10 ** ((math.log10(0.03 / low) +
                                                                         math.log10(0.3 / low)) / 2))
    assert picked[("a", "loss_min")]["log_ratio"] == pytest.approx(math.log10(0.03 / low))
    assert picked[("a", "trials")]["multiple"] == 1.0  # auto's own choice is taken as it is
    at = curve_points.ts.interpolated(tests, 0.05)
    assert picked[("a", "trials")]["gap_test"] == pytest.approx(100 * (0.50 - at))
    table = {row["point"]: row for row in curve_points.table(list(picked.values()))}
    assert table["loss_min"]["worst_setting"] == pytest.approx(picked[("c", "loss_min")]["gap_test"])

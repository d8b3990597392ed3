"""benchmarks/auto_lr_bias.py: run over trial length and best over auto's LR per setting, and the fit per family,
on hand-written rows worked out by hand."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import auto_lr  # noqa: E402
import auto_lr_bias as bias  # noqa: E402


def _row(setting, seed, kind, lr, val, optimizer="", steps=200, trial=50):
    source = f"range_test (loss_min 0.1, then 5 trials of {trial} steps (3200 images), ...)" if kind == "auto" else "config"
    return {"setting": setting, "seed": seed, "kind": kind, "lr": lr, "val": val, "test": val, "optimizer": optimizer,
            "train_steps": steps, "lr_source": source, "run_dir": f"runs/{setting}_s{seed}_{auto_lr.AUTO_JOB}"}


def test_each_setting_gets_its_length_ratio_and_best_over_auto():
    rows = [_row("a", 0, "sweep", 0.1, 0.5), _row("a", 0, "sweep", 0.4, 0.6),   # best peak 0.4
            _row("a", 1, "sweep", 0.1, 0.5), _row("a", 1, "sweep", 0.4, 0.6),
            _row("a", 0, "auto", 0.1, 0.5), _row("a", 1, "auto", 0.4, 0.6),    # geometric mean 0.2
            _row("b", 0, "sweep", 0.01, 0.7, "adamw"), _row("b", 0, "auto", 0.04, 0.6, "adamw", steps=400, trial=100),
            _row("c", 0, "sweep", 0.1, 0.5)]                                    # no auto run: left out
    a, b = bias.settings(rows)
    assert (a["setting"], a["family"], a["runs"]) == ("a", "sgd", 2)
    assert a["run_over_trial"] == pytest.approx(4.0) and a["best_over_auto"] == pytest.approx(2.0)
    assert (b["family"], b["run_over_trial"], b["best_over_auto"]) == ("adam", pytest.approx(4.0), pytest.approx(0.25))


def test_the_fit_recovers_a_known_slope():
    members = [{"run_over_trial": n, "best_over_auto": n ** 0.5} for n in (1.0, 4.0, 16.0)]  # slope 0.5 exactly
    result = bias.fit(members)
    assert result["slope"] == pytest.approx(0.5) and result["correlation"] == pytest.approx(1.0)
    assert result["mean_best_over_auto"] == pytest.approx(2.0) and result["settings"] == 3
    flat = bias.fit([{"run_over_trial": n, "best_over_auto": 1.5} for n in (2.0, 3.0)])
    assert flat["slope"] == pytest.approx(0.0) and math.isnan(flat["correlation"])


def test_a_factor_on_autos_lr_is_read_off_the_seed_averaged_sweep():
    """Sweep (one seed): 0.1 -> 60%, 0.2 -> 50%, best 0.1. Auto at 0.2: curve gap 10 points; x0.5 lands on the best
    (0, a change of -10); x1.5 lands above the sweep's top (read at its end value, 50%: 10 points, no change)."""
    rows = [_row("a", 0, "sweep", 0.1, 0.6), _row("a", 0, "sweep", 0.2, 0.5), _row("a", 0, "auto", 0.2, 0.5),
            _row("z", 0, "sweep", 0.1, 0.6)]                                       # no auto run: left out
    table = {r["factor"]: r for r in bias.scaled(rows, factors=(0.5, 1.0, 1.5))}
    assert table[1.0]["curve_gap"] == pytest.approx(10.0) and table[1.0]["family"] == "sgd"
    assert table[0.5]["curve_gap"] == pytest.approx(0.0) and table[0.5]["change"] == pytest.approx(-10.0)
    assert table[1.5]["change"] == pytest.approx(0.0) and table[0.5]["settings_within_1"] == "1/1"

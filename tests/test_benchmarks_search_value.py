"""benchmarks/search_value.py: the gap of rules the range test alone would give (its update point, its loss minimum),
read off each seed's sweep, against auto's own LR, on hand-written rows worked out by hand."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import auto_lr  # noqa: E402
import search_value as sv  # noqa: E402


def _row(setting, seed, kind, lr, val, test=None, update=0.1, loss_min=0.01, job=auto_lr.AUTO_JOB, steps=200):
    source = (f"range_test (loss_min {loss_min:g}, then 5 trials of 50 steps, ...; trials chose 0.2, update point "
              f"{update:g} (a step moved the weights 3%): their geometric mean 0.14)" if kind == "auto" else "config")
    return {"setting": setting, "seed": seed, "kind": kind, "lr": lr, "val": val, "test": val if test is None else test,
            "status": "completed", "lr_source": source, "train_steps": steps, "search_steps": 350 if kind == "auto" else 0,
            "run_dir": f"runs/{setting}_s{seed}_{job if kind == 'auto' else 'lr' + str(lr)}"}


SWEEP = [(0.01, 0.40), (0.1, 0.60), (1.0, 0.50)]  # (peak, val = test): the best peak 0.1, chosen on validation


def test_each_rule_is_read_off_its_seeds_sweep_in_log_lr():
    """Auto at 0.1 (the best: gap 0); update point 0.1: x1 gap 0, x2 reads 0.3 of a decade from 0.1 towards 1.0
    (60 - 0.30103 * 10 = 56.99: gap 3.01 points); loss minimum 0.01: 60 - 40 = 20 points; x0.7 of 0.1 reads
    0.1549 of a decade below 0.1 (60 - 0.1549 * 20: gap 3.10)."""
    rows = [_row("a", 0, "sweep", lr, acc) for lr, acc in SWEEP] + [_row("a", 0, "auto", 0.1, 0.55)]
    (run,) = sv.gaps(rows)
    assert run["auto"] == pytest.approx(0.0) and run["update x1"] == pytest.approx(0.0)
    assert run["update x2"] == pytest.approx(10 * 0.30103, abs=1e-3)
    assert run["update x0.7"] == pytest.approx(20 * 0.154902, abs=1e-3)
    assert run["loss_min"] == pytest.approx(20.0)
    assert run["search_cost"] == pytest.approx(350 / 200) and run["range_test_cost"] == pytest.approx(100 / 200)


def test_old_methods_failed_runs_and_runs_without_a_sweep_or_update_point_are_left_out():
    rows = [_row("a", 0, "sweep", lr, acc) for lr, acc in SWEEP]
    rows += [_row("a", 0, "auto", 0.1, 0.6, job="auto_v9"),            # an older method's run
             {**_row("a", 0, "auto", 0.1, 0.6), "status": "failed"},     # no training
             _row("b", 0, "auto", 0.1, 0.6),                             # no sweep for setting b
             {**_row("a", 0, "auto", 0.1, 0.6), "lr_source": "range_test (loss_min 0.01, rise point 0.3)"}]
    assert sv.gaps(rows) == []


def test_the_summary_pairs_each_rule_with_autos_own_lr():
    """Two seeds: auto lands on the best both times; the update point sits at 1.0 on seed 1 (gap 10 points), at the
    best on seed 0. update x1: mean gap 5, paired change +5 ± 5, settings within 1 point 0 of 1."""
    rows = []
    for seed, update in ((0, 0.1), (1, 1.0)):
        rows += [_row("a", seed, "sweep", lr, acc) for lr, acc in SWEEP] + [_row("a", seed, "auto", 0.1, 0.6,
                                                                                  update=update)]
    table = {r["rule"]: r for r in sv.summary(sv.gaps(rows))}
    assert table["auto"]["gap"] == pytest.approx(0.0) and table["auto"]["settings_within_1"] == "1/1"
    one = table["update x1"]
    assert (one["runs"], one["gap"], one["worst"]) == (2, pytest.approx(5.0), pytest.approx(10.0))
    assert one["vs_auto"] == pytest.approx(5.0) and one["se_vs_auto"] == pytest.approx(5.0)
    assert one["settings_within_1"] == "0/1"

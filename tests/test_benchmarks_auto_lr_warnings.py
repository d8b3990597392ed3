"""benchmarks/auto_lr_warnings.py: a recorded search's warnings and a group's numbers, worked out by hand."""
from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import auto_lr_warnings as aw  # noqa: E402


def _search(score: float | None, learned: bool = True, stop_index: int | None = 3, loss_rise: float = 50.0):
    from callbacks.range_test.result import RangeTestResult

    trials = [] if score is None else [{"lr": 0.1, "score": score, "learned": learned, "chance_loss": 2.0,
                                        "planned_steps": 50, "factor": 1.0}]
    return RangeTestResult(kind="loss", lrs=[0.01, 0.1, 1.0, 10.0], losses=[2.0] * 4, smoothed=[2.0] * 4,
                           suggestions={"loss_min": 0.1, "trials": 0.1}, rule="trials" if trials else "loss_min",
                           lr=0.1, settings={"suggestion": "loss_min"}, stop_index=stop_index, loss_rise=loss_rise,
                           trials=trials)


def test_each_warning_is_the_one_lr_source_gives():
    assert aw.warnings(_search(1.2)) == []                                  # 40% below chance, the loss blew up
    assert aw.warnings(_search(1.8)) == ["weak signal"]                     # 10% below chance
    assert "a weak signal" in _search(1.8).source                           # as lr_source says it
    assert aw.warnings(_search(1.99, learned=False)) == ["no trial learned"]
    assert aw.warnings(_search(1.2, stop_index=None, loss_rise=1.3)) == ["no upper limit"]
    assert aw.warnings(_search(None, stop_index=None, loss_rise=3.0)) == []  # rose 3x: blew up; no trials


def test_a_group_reports_the_mean_gap_the_paired_control_and_how_far_the_lr_was_off():
    members = [{"setting": "a", "gap": 1.0, "gap_control": 0.0, "ratio": 0.25},
               {"setting": "a", "gap": 3.0, "gap_control": 1.0, "ratio": 2.0},
               {"setting": "b", "gap": 5.0, "gap_control": math.nan, "ratio": 1.0}]
    row = aw.group("x", members)
    assert (row["runs"], row["settings"]) == (3, 2)
    assert row["gap"] == "+3.00 ± 1.15"                  # sd 2 / sqrt(3)
    assert row["against control"] == "+1.50 ± 0.50"      # paired where a control ran: 1 and 2
    assert row["LR >3x off"] == "33%"                    # 0.25 is 4x off; 2 is not
    assert row["best / auto, 10-90%"] == "0.25-2"


def test_the_table_leaves_out_a_warning_no_run_gives():
    """Runs that never warn "no trial learned" (the 12 of one entry): that row is left out, not a crash on an empty
    mean; a group of one run is left out too, the "all" row stays."""
    found = [{"setting": "a", "gap": 1.0, "gap_control": 0.0, "ratio": 1.0, "warnings": ["weak signal"]},
             {"setting": "a", "gap": 2.0, "gap_control": 1.0, "ratio": 1.0, "warnings": ["weak signal"]},
             {"setting": "b", "gap": 0.0, "gap_control": 0.0, "ratio": 1.0, "warnings": []}]
    rows = aw.table(found)
    assert [r["warning"] for r in rows] == ["weak signal", "all"]
    assert rows[-1]["runs"] == 3 and rows[0]["gap"] == "+1.50 ± 0.50"

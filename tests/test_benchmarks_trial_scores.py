"""benchmarks/trial_scores.py: the rules' picks and the sweep read-off, on numbers worked out by hand."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import trial_scores  # noqa: E402

TRIALS = [{"lr": 0.01, "score": 1.0, "val_loss": 1.20, "val_acc": 0.50},
          {"lr": 0.03, "score": 1.1, "val_loss": 1.10, "val_acc": 0.55},
          {"lr": 0.10, "score": 1.3, "val_loss": 1.15, "val_acc": 0.55},
          {"lr": 0.30, "score": math.inf}]  # diverged: no validation scores


def test_each_rule_picks_its_trial():
    assert trial_scores.pick(TRIALS, 0.017, "train_loss") == 0.017  # what auto chose
    assert trial_scores.pick(TRIALS, 0.017, "val_loss") == 0.03
    assert trial_scores.pick(TRIALS, 0.017, "val_acc") == 0.10      # a tie: the larger LR
    assert trial_scores.pick([{"lr": 0.01, "score": 1.0}], 0.01, "val_acc") == 0.01  # nothing recorded: auto's


def test_the_sweep_is_read_linearly_in_log_lr_and_flat_outside():
    sweep = {0.01: 0.40, 0.04: 0.60}
    assert trial_scores.interpolated(sweep, 0.02) == pytest.approx(0.50)  # halfway in log LR
    assert trial_scores.interpolated(sweep, 0.001) == 0.40 and trial_scores.interpolated(sweep, 1.0) == 0.60
    assert trial_scores.interpolated(sweep, 0.04) == 0.60


def test_replay_reads_the_runs_and_gaps_against_the_validation_best(tmp_path):
    rows = [{"setting": "s", "seed": 0.0, "kind": "sweep", "lr": lr, "val": val, "test": test}
            for lr, val, test in [(0.01, 0.50, 0.45), (0.04, 0.60, 0.55), (0.16, 0.55, 0.58)]]
    run = tmp_path / "s_s0_auto_v4"
    run.mkdir()
    (run / "lr_range_test.json").write_text(json.dumps({"lr": 0.01, "trials": [
        {"lr": 0.01, "score": 1.0, "val_loss": 1.3, "val_acc": 0.4},
        {"lr": 0.02, "score": 1.2, "val_loss": 1.1, "val_acc": 0.6}]}))
    picked = {p["rule"]: p for p in trial_scores.replay(rows, tmp_path)}
    assert picked["train_loss"]["gap_test"] == pytest.approx(100 * (0.55 - 0.45))
    assert picked["val_loss"]["lr"] == 0.02 and picked["val_acc"]["lr"] == 0.02
    assert picked["val_acc"]["gap_test"] == pytest.approx(100 * (0.55 - 0.50))  # 0.02: halfway from 0.45 to 0.55
    assert picked["val_acc"]["best_lr"] == 0.04

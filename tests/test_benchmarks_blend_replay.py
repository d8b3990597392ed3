"""benchmarks/blend_replay.py: the blend's weight and the trials' tolerance replayed on a recorded run, worked by hand."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import blend_replay  # noqa: E402
from callbacks.range_test.trials import trial_score  # noqa: E402

CHANCE = 2.0
# two trials that learned a little (5% below chance: a weak signal); the larger one scores 2.6% worse, on every batch
SMALL = [2.4, 2.3, 2.2, 2.1, 2.0, 1.95, 1.9, 1.9]
LARGE = [2.4, 2.3, 2.2, 2.1, 2.0, 2.0, 1.95, 1.95]


def recorded_run(tmp_path: Path, rule: str = "blend") -> Path:
    run = tmp_path / "s_s0_auto_v17"
    run.mkdir(parents=True)
    trials = [{"lr": lr, "losses": losses, "score": trial_score(losses), "learned": True, "chance_loss": CHANCE}
              for lr, losses in ((0.01, SMALL), (0.03, LARGE))]
    (run / "lr_range_test.json").write_text(json.dumps({
        "kind": "loss", "lrs": [0.001, 0.01], "losses": [2.4, 2.3], "smoothed": [2.4, 2.3], "rule": rule, "lr": math.sqrt(0.03 * 0.04), "trials": trials,
        "suggestions": {"trials": 0.03, "update": 0.04}}))
    return tmp_path


SWEEP = [{"setting": "s", "seed": 0.0, "kind": "sweep", "lr": lr, "val": val, "test": test}
         for lr, val, test in [(0.01, 0.50, 0.45), (0.04, 0.60, 0.55), (0.16, 0.55, 0.58)]]


def test_the_blend_is_a_weighted_geometric_mean():
    assert blend_replay.blended(0.01, 0.04, 0.5) == pytest.approx(0.02)
    assert blend_replay.blended(0.01, 0.04, 0.0) == pytest.approx(0.01)
    assert blend_replay.blended(0.01, 0.04, 1.0) == pytest.approx(0.04)


def test_replay_rechooses_the_trials_and_reads_the_sweep(tmp_path):
    picked = {(p["tolerance"], p["weight"]): p for p in
              blend_replay.replay(SWEEP, recorded_run(tmp_path), {0}, weights=(0.0, 0.5, 1.0), tolerances=(0.0, 0.05))}
    assert {p["group"] for p in picked.values()} == {"weak"}
    # v17's own knobs give back the run's LR: the 5% tolerance keeps the larger trial, 2.6% worse
    assert picked[(0.05, 0.5)]["lr"] == pytest.approx(math.sqrt(0.03 * 0.04))
    # with none, the paired test sees the larger trial worse on every batch: the smaller one is chosen
    assert picked[(0.0, 0.0)]["lr"] == pytest.approx(0.01)
    assert picked[(0.0, 0.0)]["gap_test"] == pytest.approx(100 * (0.55 - 0.45))  # the sweep's best is chosen on val
    assert picked[(0.0, 1.0)]["lr"] == pytest.approx(0.04) and picked[(0.0, 1.0)]["gap_val"] == pytest.approx(0.0)
    rows = blend_replay.table(list(picked.values()))
    change = {(r["group"], r["tolerance"], r["weight"]): r["test change vs v17"] for r in rows}
    assert change[("weak", 0.05, 0.5)].startswith("+0.00 ±")  # v17 against itself
    assert change[("all", 0.0, 0.0)].startswith(f"{100 * (0.55 - 0.45) - picked[(0.05, 0.5)]['gap_test']:+.2f} ±")


def test_runs_that_did_not_blend_are_left_out(tmp_path):
    assert blend_replay.replay(SWEEP, recorded_run(tmp_path, rule="rise"), {0}) == []
    assert blend_replay.replay(SWEEP, recorded_run(tmp_path / "x", rule="blend"), {1}) == []  # another seed

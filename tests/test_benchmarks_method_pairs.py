"""benchmarks/method_pairs.py: two auto versions paired per run, read from run folders written by hand."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import method_pairs  # noqa: E402
from callbacks.run.result_file import write_result  # noqa: E402


def _run(runs: Path, name: str, test_acc: float, tried: list[float], status: str = "completed") -> None:
    write_result(runs / name, status=status, metrics={"test/acc": test_acc}, lr={"max_lr": tried[0]})
    (runs / name / "lr_range_test.json").write_text(json.dumps({"trials": [{"lr": lr, "score": 1.0} for lr in tried]}))


def test_gains_are_paired_per_seed_and_only_runs_whose_search_differed_count_as_changed(tmp_path):
    _run(tmp_path, "a_s0_auto_v1", 0.50, [0.1, 0.3])
    _run(tmp_path, "a_s0_auto_v2", 0.53, [0.1, 0.3, 0.0316])  # one more trial below: changed, +3 points
    _run(tmp_path, "a_s1_auto_v1", 0.60, [0.1, 0.3])
    _run(tmp_path, "a_s1_auto_v2", 0.60, [0.1, 0.3, 0.0316])  # changed, the same accuracy
    _run(tmp_path, "a_s2_auto_v1", 0.40, [0.2])
    _run(tmp_path, "a_s2_auto_v2", 0.41, [0.2])               # the same search: not changed (noise of a rerun)
    _run(tmp_path, "a_s3_auto_v1", 0.40, [0.2])
    _run(tmp_path, "a_s3_auto_v2", 0.10, [0.2], status="interrupted")  # not finished: no pair
    _run(tmp_path, "a_s4_auto_v1", 0.40, [0.2, 0.6])
    _run(tmp_path, "a_s4_auto_v2", 0.38, [0.6, 0.2])  # the same trials, another choice (the LR recorded first)
    rows = method_pairs.pairs(tmp_path, "auto_v1", "auto_v2", ["a"], seeds=range(5))
    assert [(r["seed"], r["changed"]) for r in rows] == [(0, True), (1, True), (2, False), (4, True)]
    assert [r["gain"] for r in rows] == pytest.approx([3.0, 0.0, 1.0, -2.0])
    rows = [r for r in rows if r["seed"] != 4]
    changed = method_pairs.summary([r for r in rows if r["changed"]])
    assert changed["gain"] == pytest.approx(1.5) and changed["se"] == pytest.approx(1.5)  # sd 2.121 / sqrt(2)
    assert (changed["better"], changed["worse"], changed["same"]) == (1, 0, 1)
    assert math.isnan(method_pairs.summary(rows[:1])["se"])

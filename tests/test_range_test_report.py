"""callbacks.range_test.report: PNG, CSV, JSON, TensorBoard figure + scalars, rich table."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from pytorch_lightning.loggers import TensorBoardLogger
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from callbacks.range_test.result import RangeTestResult
from callbacks.range_test.suggestions import compute_suggestions
from callbacks.range_test.report import log_result, print_result, save_result

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def loss_result(repeats: int = 2) -> RangeTestResult:
    runs = []
    for r in range(repeats):
        lrs = list(np.geomspace(1e-4, 1.0, 40))
        x = np.log10(lrs)
        losses = list(2.0 - np.tanh(x + 2.5 + 0.1 * r) + 3 * np.clip(x + 1, 0, None) ** 2)
        losses[-1] = float("nan")
        sugg, sm = compute_suggestions(lrs, losses)
        runs.append({"seed": r, "lrs": lrs, "losses": losses, "smoothed": [float(v) for v in sm],
                     "suggestions": sugg, "stop_index": 39})
    names = list(runs[0]["suggestions"])
    spread = {n: {"values": [r["suggestions"][n] for r in runs], "geomean": float(np.exp(np.mean(
        [np.log(r["suggestions"][n]) for r in runs]))), "std": 0.0} for n in names}
    sugg = {n: spread[n]["geomean"] for n in names}
    first = runs[0]
    return RangeTestResult(kind="loss", lrs=first["lrs"], losses=first["losses"], smoothed=first["smoothed"],
                           suggestions=sugg, rule="valley", lr=sugg["valley"], status="stopped at step 39: nan",
                           elapsed_s=1.5, stop_index=39, settings={"mode": "exp", "min_lr": 1e-4, "max_lr": 1.0},
                           repeats=runs, spread=spread)


def accuracy_result() -> RangeTestResult:
    lrs = list(np.linspace(0.0, 1.0, 20))
    evals = [{"step": s, "lr": lrs[max(s, 0)], "acc": a, "images": 64, "stderr": float(np.sqrt(a * (1 - a) / 64))}
             for s, a in [(-1, 0.1), (4, 0.3), (9, 0.6), (14, 0.7), (19, 0.4)]]
    return RangeTestResult(kind="accuracy", lrs=lrs, losses=list(np.linspace(2.3, 1.0, 20)),
                           smoothed=list(np.linspace(2.3, 1.2, 20)),
                           suggestions={"base_lr": lrs[4], "max_lr": lrs[14], "peak_lr": lrs[14]},
                           rule="accuracy_test", lr=lrs[14], base_lr=lrs[4], status="ran all 20 steps",
                           evals=evals, start_acc=0.1, peak_acc=0.7, eval_images=64,
                           settings={"min_lr": 0.0, "max_lr": 1.0})


def test_save_writes_the_three_files_with_every_repeat(tmp_path):
    res = loss_result()
    paths = save_result(res, str(tmp_path / "out"))
    assert [p.rsplit("/", 1)[1] for p in paths] == ["lr_range_test.png", "lr_range_test.csv", "lr_range_test.json"]
    assert open(paths[0], "rb").read(8) == PNG_MAGIC
    with open(paths[1]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 80 and {r["repeat"] for r in rows} == {"0", "1"}
    for r, run in enumerate(res.repeats):
        mine = [row for row in rows if row["repeat"] == str(r)]
        assert [float(x["lr"]) for x in mine] == run["lrs"]
        np.testing.assert_array_equal([float(x["loss"]) for x in mine], run["losses"])  # nan included
        assert [float(x["smoothed_loss"]) for x in mine] == run["smoothed"]
    data = json.loads(open(paths[2]).read())
    assert data["lr"] == res.lr and data["rule"] == "valley" and data["suggestions"] == res.suggestions


def test_accuracy_csv_marks_the_measured_steps(tmp_path):
    res = accuracy_result()
    names = [p.rsplit("/", 1)[1] for p in save_result(res, str(tmp_path))]
    assert names == ["accuracy_range_test.png", "accuracy_range_test.csv", "accuracy_range_test.json"]
    with open(tmp_path / "accuracy_range_test.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 21 and rows[0]["step"] == "-1" and float(rows[0]["val_acc"]) == 0.1
    measured = {int(r["step"]): (float(r["val_acc"]), int(r["images"])) for r in rows if r["val_acc"]}
    assert measured == {e["step"]: (e["acc"], 64) for e in res.evals}
    assert [float(r["loss"]) for r in rows[1:]] == res.losses


@pytest.mark.parametrize("make", [loss_result, accuracy_result])
def test_tensorboard_scalars_and_figure(tmp_path, make):
    res = make()
    tb = TensorBoardLogger(str(tmp_path), name="tb")
    assert log_result(res, [tb]) == 1
    acc = EventAccumulator(tb.log_dir, size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    name = "accuracy_range_test" if res.kind == "accuracy" else "lr_range_test"
    finite = [(k, v) for k, v in enumerate(res.losses) if np.isfinite(v)]
    loss_events = acc.Scalars(f"{name}/loss")
    assert [e.step for e in loss_events] == [k for k, _ in finite]
    np.testing.assert_allclose([e.value for e in loss_events], [v for _, v in finite], rtol=1e-6)
    assert len(acc.Scalars(f"{name}/lr")) == len(res.lrs)
    assert f"{name}/curve" in acc.Tags()["images"]
    if res.kind == "loss":
        assert len(acc.Scalars(f"{name}/repeat_1/loss")) == len(finite)
    else:
        assert [e.value for e in acc.Scalars(f"{name}/val_acc")] == pytest.approx([e["acc"] for e in res.evals])


def test_print_table_shows_every_rule_status_and_choice():
    res = loss_result()
    con = Console(record=True, width=140)
    print_result(res, con)
    text = con.export_text()
    for name, value in res.suggestions.items():
        assert name in text and f"{value:.4g}" in text
    assert "valley *" in text and f"found max_lr = {res.lr:.4g}" in text and "stopped at step 39" in text
    con2 = Console(record=True, width=140)
    accuracy_result().print(con2)
    text2 = con2.export_text()
    assert "images/point" in text2 and "64" in text2 and "found max_lr = 0.7368, base_lr = 0.2105" in text2


@pytest.mark.parametrize("best, says", [(1.5, "; best trial 7% below chance-level loss, a weak signal: sweep 0.3x-3x "
                                               "around it"),
                                        (1.2, "; best trial 25% below chance-level loss"),
                                        (1.6, "; no trial ended 1% below chance-level loss (too short to learn on "
                                              "this data): the rule's LR; sweep 0.3x-3x around it"),
                                        (None, "")])
def test_lr_source_says_how_far_below_chance_the_best_trial_ended(best, says):
    """ln 5 = 1.609: a best trial at 1.5 is (1.609 - 1.5) / 1.609 = 6.8% below chance (under 18%: weak, advice);
    at 1.2, 25.4% (no advice); at 1.6, 0.6% below, it did not learn (under 1%) and no trial did: a warning, the
    rule's LR; trials of a module without a chance level say nothing. A trial that did not learn (here the lowest
    score of all) does not count. The table marks the chosen trial, whose LR is the one found."""
    import math

    chance = math.log(5) if best is not None else None
    trials = [{"lr": lr, "score": score, "steps": 50, "factor": lr / 0.01, "planned_steps": 50,
               "images_per_step": 64, "learned": learned, "chance_loss": chance}
              for lr, score, learned in [(0.01, best or 1.5, best != 1.6), (0.03, 1.58, best != 1.6),
                                         (0.1, 1.0, False)]]
    res = loss_result(repeats=1)
    res.settings["suggestion"], res.trials, res.lr = "valley", trials, 0.01
    assert res.source.endswith(f"0.01: {best or 1.5:.4g}, 0.03: 1.58, 0.1: 1{says})")
    console = Console(record=True, width=400)
    print_result(res, console)
    text = console.export_text()
    assert says in text and "0.01 *" in text and "0.03 *" not in text and f"found max_lr = {res.lr:.4g}" in text
    narrow = Console(record=True, width=100)  # as into a log file: the tables' notes stay whole lines
    print_result(res, narrow)
    lines = narrow.export_text().splitlines()
    assert "score: mean training loss over each trial's last quarter (lowest wins)" in lines
    assert any(line.endswith(f"; {res.status}") and line.split()[1] == "s;" for line in lines)

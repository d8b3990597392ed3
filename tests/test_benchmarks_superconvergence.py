"""benchmarks/superconvergence.py (issue 21): its --quick mode end to end, and the per-seed validation choice, the
mean/standard-error curves, the epochs-to-reach headline and the figures on hand-written CSVs."""
from __future__ import annotations

import csv
import math
import statistics
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import runs_table as rt  # noqa: E402
import superconvergence as sc  # noqa: E402
from callbacks.run.result_file import read_result  # noqa: E402


def write_rows(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=sc.COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({"status": "completed", "network": "small", "optimizer": "SGD", "batch_size": 64,
                          "train_images": 2400, "date": "2026-01-02 03:04 UTC", "machine": "testbox", **r}
                         for r in rows)
    return path


# (schedule, budget, seed, factor, val, test): two LRs per seed; the better validation run is the one to report
RUNS = [("one_cycle", b, seed, f, val, test)
        for b, accs in {1: (0.50, 0.52), 2: (0.60, 0.62), 4: (0.70, 0.71)}.items()
        for seed, shift in ((0, 0.0), (1, 0.02))
        for f, val, test in ((1, accs[0] + shift, accs[1] + shift), (3, accs[0] - 0.1, 0.99))] + \
       [("constant", b, seed, 1, 0.4, test + shift)
        for b, test in {1: 0.40, 2: 0.50, 4: 0.60}.items() for seed, shift in ((0, 0.0), (1, 0.02))]


def hand_csv(tmp_path: Path) -> Path:
    rows = [{"schedule": s, "budget_epochs": b, "seed": seed, "lr_factor": f, "lr": 0.1 * f, "val_acc": val, "status": "completed",
             "test_acc": test} for s, b, seed, f, val, test in RUNS]
    return write_rows(tmp_path / "sc.csv", sc.mark_chosen(rows))


def test_choice_on_validation_never_test(tmp_path):
    rows = rt.read_csv(hand_csv(tmp_path))
    chosen = [r for r in rows if r["chosen"] == 1]
    # one chosen run per schedule, budget and seed, and it is the x1 run (best val) although x3 has test 0.99
    assert len(chosen) == len({(r["schedule"], r["budget_epochs"], r["seed"]) for r in rows}) == 12
    assert all(r["lr_factor"] == 1 for r in chosen)


def test_curves_mean_and_standard_error(tmp_path):
    table = sc.curves(rt.read_csv(hand_csv(tmp_path)))
    point = table["one_cycle"][2.0]
    accs = [62.0, 64.0]
    assert point["mean"] == pytest.approx(statistics.mean(accs))
    assert point["se"] == pytest.approx(statistics.stdev(accs) / math.sqrt(2)) and point["n"] == 2
    assert list(table["constant"]) == [1.0, 2.0, 4.0]


def test_epochs_to_reach_interpolates_in_log_budget():
    curve = {1.0: {"mean": 40.0}, 2.0: {"mean": 50.0}, 4.0: {"mean": 60.0}}
    assert sc.epochs_to_reach(curve, 40.0) == 1.0
    assert sc.epochs_to_reach(curve, 55.0) == pytest.approx(2 ** 1.5)  # half-way between 2 and 4 in log2
    assert math.isinf(sc.epochs_to_reach(curve, 60.5))


def test_headline_and_summary(tmp_path):
    text = sc.summary(hand_csv(tmp_path))
    # one-cycle leads constant at 1 epoch (53.0 vs 41.0); constant reaches 53.0 between 2 (51.0) and 4 (61.0)
    need = 2 ** (1 + (53.0 - 51.0) / (61.0 - 51.0))
    assert "one-cycle first leads every other schedule at 1 epochs (53.00%" in text
    assert f"- constant: {need:.2g} epochs ({need:.2g}x)" in text
    assert "leads it by 12.00 +/- 1.41 points (a measurable lead)" in text
    assert "| one_cycle | 53.00 +/- 1.00 (n=2) | 63.00 +/- 1.00 (n=2) | 72.00 +/- 1.00 (n=2) |" in text
    # every chosen run is x1 of {1, 3}: the smallest swept, said per schedule, budget and seed
    assert "- one_cycle at 4 epochs, seed 1: the smallest swept LR (x1)" in text
    # no lead anywhere: said in words
    never = [{"schedule": s, "budget_epochs": 1, "seed": 0, "lr_factor": 1, "lr": 0.1, "val_acc": 0.5, "status": "completed",
              "test_acc": acc} for s, acc in (("one_cycle", 0.5), ("step", 0.6))]
    assert "one-cycle does not lead" in sc.summary(write_rows(tmp_path / "never.csv", sc.mark_chosen(never)))


def test_figures_from_csv(tmp_path):
    path = hand_csv(tmp_path)
    assert sc.plot_accuracy_vs_budget(path, tmp_path / "budget.png").stat().st_size > 10_000
    epochs = tmp_path / "epochs.csv"
    rt.write_csv(epochs, [{"schedule": s, "budget_epochs": 4, "seed": seed, "lr": 0.1, "epoch": e,
                           "val_acc": 0.1 * e, "date": "2026-01-02 03:04 UTC", "machine": "testbox"}
                          for s in ("a", "b") for seed in (0, 1) for e in (1, 2, 3, 4)], sc.EPOCH_COLUMNS)
    assert sc.plot_accuracy_vs_epoch(epochs, tmp_path / "epoch.png").stat().st_size > 10_000


@pytest.mark.parametrize("schedule", sc.SCHEDULES)
def test_schedule_overrides_compose(schedule):
    """Each schedule's overrides are a valid train config with the LR shape its docstring names."""
    from conftest import compose_config
    from omegaconf import OmegaConf

    cfg = compose_config(["experiment=smoke", *sc.schedule_overrides(schedule, 0.4, 8)])
    sched = OmegaConf.to_container(cfg.scheduler) if cfg.get("scheduler") else {}
    if schedule == "constant":
        assert sched.get("enabled") is False and cfg.optimizer.lr == pytest.approx(0.4)
    elif schedule == "one_cycle":
        assert sched["max_lr"] == pytest.approx(0.4)
    elif schedule == "step":
        assert sched["values"] == pytest.approx([0.4, 0.4, 0.04, 0.04, 0.004, 0.004])
    else:
        assert (sched["base_lr"], sched["max_lr"], sched["step_size_up"]) == pytest.approx((0.04, 0.4, 2.0))


def test_quick_end_to_end(tmp_path, capsys):
    """Two schedules at budgets 1 and 2, one LR each, in this process: every run recorded, chosen, and trained
    with the schedule its row names; a second call trains nothing."""
    args = ["--quick", "--in-process", "--schedules", "one_cycle", "step", "--budgets", "1", "2", "--out",
            str(tmp_path)]
    code, out, err = rt.run_as_main(ROOT / "benchmarks" / "superconvergence.py", args)
    assert code == 0, out[-2000:] + err[-2000:]
    rows = list(csv.DictReader(open(tmp_path / "superconvergence.csv")))
    assert sorted((r["schedule"], float(r["budget_epochs"])) for r in rows) == sorted(
        (s, b) for s in ("one_cycle", "step") for b in (1.0, 2.0))
    assert all(r["status"] == "completed" and r["chosen"] == "1" and 0 <= float(r["test_acc"]) <= 1 for r in rows)

    def overrides(schedule):
        run = next(r for r in rows if r["schedule"] == schedule and float(r["budget_epochs"]) == 2)
        return read_result(rt.ROOT / run["run_dir"])["overrides"]
    assert "scheduler.knots=[0,0.5,0.5,0.75,0.75,1]" in overrides("step") and "trainer.max_epochs=2" in overrides("step")
    assert "scheduler=one_cycle" in overrides("one_cycle")
    epochs = list(csv.DictReader(open(tmp_path / "superconvergence_epochs.csv")))
    assert sorted((r["schedule"], r["epoch"]) for r in epochs) == [("one_cycle", "1"), ("one_cycle", "2"),
                                                                   ("step", "1"), ("step", "2")]
    assert (tmp_path / "accuracy_vs_budget.png").stat().st_size > 10_000
    assert "| one_cycle |" in out and "Headline" in out
    code, again, _ = rt.run_as_main(ROOT / "benchmarks" / "superconvergence.py", args)
    assert code == 0 and again.count("[done before]") == 4
    assert again.split("| schedule |")[1] == out.split("| schedule |")[1]

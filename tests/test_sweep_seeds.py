"""A sweep repeated over seeds, read per setting (callbacks/sweeps/seeds.py), on hand-made sweep directories:
every number checked against numpy computed here, independently of the module."""
import csv
import math

import numpy as np

import test_sweep_summary as base
from callbacks.sweeps.seeds import settings_of
from callbacks.sweeps.summary import _points, plot, report

ACCS = {  # setting -> val/acc per seed 0, 1, 2 (None: that seed diverged); test/acc is val/acc - 0.02 (make_job)
    "0.1": [0.80, 0.82, 0.81],
    "auto": [0.805, 0.815, 0.80],  # within noise of 0.1: paired gap 0.0033 +/- 0.0044
    "0.3": [0.70, 0.71, 0.69],     # far below: measurable
    "1.0": [0.50, None, 0.60],     # one seed diverged
}
AUTO_LRS = [0.08, 0.12, 0.1]


def seed_sweep(tmp_path):
    sweep = base.make_sweep(tmp_path / "sweep", ["experiment=smoke", "scheduler.max_lr=0.1,auto,0.3,1.0",
                                                  "seed=0,1,2"])
    num = 0
    for lr, accs in ACCS.items():
        for seed, acc in enumerate(accs):
            used = AUTO_LRS[seed] if lr == "auto" else float(lr)
            base.make_job(sweep, num, ["experiment=smoke", f"scheduler.max_lr={lr}", f"seed={seed}"], acc=acc,
                          lr=used, status="completed" if acc is not None else "diverged")
            num += 1
    return sweep


def read_settings(sweep):
    with open(sweep / "settings.csv") as f:
        return {row["scheduler.max_lr"]: row for row in csv.DictReader(f)}


def se(values):
    return np.std(values, ddof=1) / math.sqrt(len(values))


def test_settings_average_over_seeds_rank_by_mean_and_judge_gaps_by_two_standard_errors(tmp_path):
    sweep = seed_sweep(tmp_path)
    summary = report(sweep)
    rows = read_settings(sweep)
    assert list(rows) == ["0.1", "auto", "0.3", "1.0"] and [r["rank"] for r in rows.values()] == ["1", "2", "3", ""]
    for lr, accs in ACCS.items():
        done = np.array([a for a in accs if a is not None])
        row = rows[lr]
        assert math.isclose(float(row["val/acc mean"]), done.mean(), rel_tol=1e-12)
        assert math.isclose(float(row["val/acc sd"]), np.std(done, ddof=1), rel_tol=1e-9)
        assert math.isclose(float(row["val/acc se"]), se(done), rel_tol=1e-9)
        assert math.isclose(float(row["test/acc mean"]), (done - 0.02).mean(), rel_tol=1e-9)
        assert row["jobs"] == "3" and row["seeds"] == ("0 2" if lr == "1.0" else "0 1 2")
    best = np.array(ACCS["0.1"])
    for lr in ("auto", "0.3"):  # same three seeds: paired
        diffs = best - np.array(ACCS[lr])
        assert rows[lr]["paired"] == "True"
        assert math.isclose(float(rows[lr]["gap"]), diffs.mean(), rel_tol=1e-9)
        assert math.isclose(float(rows[lr]["gap_se"]), se(diffs), rel_tol=1e-9)
    assert rows["0.1"]["verdict"] == "best" and float(rows["0.1"]["gap"]) == 0.0
    assert rows["auto"]["verdict"] == "no measurable difference"
    assert rows["0.3"]["verdict"].startswith("measurably worse")
    diverged = np.array([0.50, 0.60])  # seeds 0 and 2 only: unpaired, ranked after every complete setting
    assert rows["1.0"]["paired"] == "False" and rows["1.0"]["verdict"].startswith("1 diverged")
    assert math.isclose(float(rows["1.0"]["gap"]), best.mean() - diverged.mean(), rel_tol=1e-9)
    assert math.isclose(float(rows["1.0"]["gap_se"]), math.hypot(se(best), se(diverged)), rel_tol=1e-9)
    geo = math.exp(np.mean(np.log(AUTO_LRS)))
    assert math.isclose(float(rows["auto"]["lr_geomean"]), geo, rel_tol=1e-9)
    assert (float(rows["auto"]["lr_min"]), float(rows["auto"]["lr_max"])) == (0.08, 0.12)
    md = (sweep / "summary.md").read_text()
    assert "Best setting: scheduler.max_lr=0.1: val/acc 0.81 ± 0.0058 (mean ± standard error over 3 seeds)" in md
    assert md.index("## Per setting") < md.index("## Per job") < md.index("Best: job 1 ")  # seed 1 of 0.1: 0.82
    assert f"| 2 | auto | 3/3 | 0.8067 ± 0.0044 |" in md and f"{geo:.3g} (0.08-0.12)" in md
    # the plot: the settings' means over the swept numbers, auto a level line with its LR, none over the seed
    numeric, points, references = _points(summary)
    assert numeric == ["scheduler.max_lr"] and sorted(p.coords[0] for p in points) == [0.1, 0.3, 1.0]
    assert [r.group for r in references] == [f"scheduler.max_lr=auto (lr {geo:.3g} (0.08-0.12))"]
    assert math.isclose(references[0].error, se(np.array(ACCS["auto"])), rel_tol=1e-9)
    by_lr = {p.coords[0]: p for p in points}
    assert math.isclose(by_lr[0.3].value, np.mean(ACCS["0.3"])) and math.isnan(by_lr[1.0].value)
    assert by_lr[1.0].status == "1 diverged"  # marked on the plot, not drawn as a mean of the seeds that survived
    info = plot(summary)
    assert info.kind == "line" and info.path.name == "lineplot.png"
    assert "![val/acc, mean ± se per setting](lineplot.png)" in md


def test_a_sweep_without_repeated_seeds_has_no_settings_table(tmp_path):
    sweep = base.make_sweep(tmp_path / "s", ["scheduler.max_lr=0.1,0.2", "seed=0"])
    for num, lr in enumerate((0.1, 0.2)):
        base.make_job(sweep, num, [f"scheduler.max_lr={lr}", "seed=0"], acc=0.5 + lr, lr=lr)
    summary = report(sweep)
    assert summary.settings == [] and not (sweep / "settings.csv").exists()
    assert "## Per setting" not in (sweep / "summary.md").read_text()
    assert summary.rows[0]["scheduler.max_lr"] == "0.2"  # per job, as before


def test_a_metric_to_minimise_ranks_the_lowest_mean_first_and_gaps_stay_positive_for_worse():
    rows = [{"status": "completed", "seed": str(s), "optimizer.weight_decay": wd, "val/loss": loss}
            for wd, losses in (("1e-4", [0.9, 1.0]), ("1e-3", [0.5, 0.55])) for s, loss in enumerate(losses)]
    rows.append({"status": "completed", "seed": "0", "optimizer.weight_decay": "1e-2", "val/loss": 0.7})
    settings = settings_of(rows, ["optimizer.weight_decay", "seed"], "val/loss", "min")
    assert [s.values["optimizer.weight_decay"] for s in settings] == ["1e-3", "1e-2", "1e-4"]
    assert math.isclose(settings[2].gap, np.mean([0.9 - 0.5, 1.0 - 0.55]))
    assert settings[2].verdict.startswith("measurably worse")  # paired differences 0.40, 0.45: se 0.025
    assert settings[1].verdict == "one seed: no spread to judge by" and math.isnan(settings[1].score.se)
    assert math.isnan(settings[0].test.mean)  # val/loss's twin, test/loss, was not logged


def test_paired_seeds_with_one_same_gap_are_measurably_apart_and_equal_ones_are_identical():
    rows = [{"status": "completed", "seed": str(s), "k": k, "val/acc": acc + shift}
            for k, shift in (("a", 0.0), ("b", -0.25), ("c", 0.0)) for s, acc in enumerate([0.5, 0.75, 0.625])]
    settings = {s.values["k"]: s for s in settings_of(rows, ["k", "seed"], "val/acc", "max")}
    assert settings["b"].gap == 0.25 and settings["b"].gap_se == 0.0  # exact in binary: no rounding noise
    assert settings["b"].verdict == "measurably worse (the same gap on every seed)"
    assert "identical on every seed" in {settings["a"].verdict, settings["c"].verdict}


def test_a_sweep_where_no_setting_completed_every_seed_has_no_best_and_no_gaps():
    rows = [{"status": "completed", "seed": "0", "k": "a", "val/acc": 0.5},
            {"status": "failed", "seed": "1", "k": "a", "val/acc": ""},
            {"status": "diverged", "seed": "0", "k": "b", "val/acc": ""}]
    settings = settings_of(rows, ["k", "seed"], "val/acc", "max")
    assert [s.rank for s in settings] == [None, None] and all(math.isnan(s.gap) for s in settings)
    assert [s.verdict for s in settings] == ["1 failed", "1 diverged"]


def test_a_reading_over_two_seeds_says_it_is_a_hint(tmp_path):
    """Two seeds gave "measurably worse (6.2 standard errors)" with nothing said about how little that rests on."""
    from callbacks.sweeps.seeds import markdown

    rows = [{"status": "completed", "seed": str(s), "k": k, "val/acc": acc}
            for k, accs in (("a", (0.80, 0.82)), ("b", (0.70, 0.73))) for s, acc in enumerate(accs)]
    two = markdown(settings_of(rows, ["k", "seed"], "val/acc", "max"), "val/acc")
    assert "over 2 seeds)" in two and "With fewer than 3 seeds a standard error rests on too little" in two
    rows += [{"status": "completed", "seed": "2", "k": k, "val/acc": acc} for k, acc in (("a", 0.81), ("b", 0.72))]
    assert "fewer than 3 seeds" not in markdown(settings_of(rows, ["k", "seed"], "val/acc", "max"), "val/acc")

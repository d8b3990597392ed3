"""The issue-12 evidence benchmarks: each script's --quick mode end to end (both in one subprocess, synthetic data),
and the figure/summary functions on hand-written CSVs (superconvergence.py: tests/test_benchmarks_superconvergence.py)."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import optimizers  # noqa: E402
import range_test_validation as rtv  # noqa: E402
import runs_table as rt  # noqa: E402
from callbacks.run.result_file import read_result, write_result  # noqa: E402


def csv_rows(path: Path) -> list[dict]:
    return list(csv.DictReader(open(path)))


def write(path: Path, columns: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(rows)
    return path


# ---- the scripts' quick modes ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> dict:
    """Both scripts' --quick command lines, run one after the other in ONE Python process (tests/quick_benchmarks.py:
    Lightning imported once, not once per script, ~8 s each): {name: (run, its --out folder)}."""
    tmp = tmp_path_factory.mktemp("quick_evidence")
    outs = {name: tmp / name for name in ("optimizers", "range_test_validation")}
    commands = [["optimizers.py", "--quick", "--in-process", "--optimizers", "sgd", "adagrad", "--out",
                 str(outs["optimizers"])],
                ["range_test_validation.py", "--quick", "--in-process", "--out", str(outs["range_test_validation"])]]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "quick_benchmarks.py"), str(tmp / "out.json"),
                           json.dumps(commands)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = json.loads((tmp / "out.json").read_text())["runs"]
    return {name: (run, outs[name]) for name, run in zip(outs, runs)}


def quick_run(quick, name: str) -> tuple[str, Path]:
    """(stdout, --out folder) of one script's quick run, which must have exited 0."""
    run, out = quick[name]
    assert run["returncode"] == 0, run["stdout"][-3000:] + run["stderr"][-3000:]
    return run["stdout"], out


def test_optimizers_quick(quick):
    stdout, out = quick_run(quick, "optimizers")
    rows = csv_rows(out / "optimizers.csv")
    assert [r["optimizer"] for r in rows] == ["sgd", "adagrad"]
    assert set(optimizers.COLUMNS) <= set(rows[0])
    for r in rows:
        assert r["status"] == "completed"
        assert r["lr_source"].startswith("range_test")  # max_lr=auto: each optimizer's own range test
        assert float(r["max_lr"]) > 0 and float(r["train_loss"]) > 0
        assert (rt.ROOT / r["run_dir"] / "lr_range_test.json").exists()
    assert (out / "optimizers.png").stat().st_size > 10_000
    assert "| adagrad |" in stdout


def test_range_test_validation_quick(quick):
    stdout, out = quick_run(quick, "range_test_validation")
    rows = csv_rows(out / "range_test_validation.csv")
    assert set(rtv.COLUMNS) <= set(rows[0])
    assert sorted(float(r["factor"]) for r in rows) == [1.0, 2.0]
    suggestion = float(rows[0]["suggestion"])
    assert sorted(float(r["lr"]) for r in rows) == pytest.approx([suggestion, 2 * suggestion])
    default_rule = OmegaConf.load(ROOT / "conf" / "range_test" / "exp.yaml").suggestion
    assert {r["rule"] for r in rows} == {default_rule} and {r["auto"] for r in rows} == {"yes"}
    for r in rows:  # the run trained at the LR its row says
        assert read_result(rt.ROOT / r["run_dir"])["lr"]["max_lr"] == pytest.approx(float(r["lr"]), rel=1e-5)
    assert (out / "range_test_validation.png").stat().st_size > 10_000
    assert "within_1_point" in stdout


def test_help_and_plot_only_without_results(tmp_path, monkeypatch, capsys):
    """Each script's command line, in this process (its main() with sys.argv set; a subprocess each cost ~7 s of
    imports)."""
    import superconvergence

    def main_exits(module, *argv):
        monkeypatch.setattr(sys, "argv", [module.__file__, *argv])
        with pytest.raises(SystemExit) as stopped:
            module.main()
        return stopped.value.code, capsys.readouterr().out

    for module in (superconvergence, optimizers, rtv):
        code, out = main_exits(module, "--help")
        assert code == 0 and "--plot-only" in out, module.__name__
    code, _ = main_exits(optimizers, "--plot-only", "--out", str(tmp_path))
    assert code not in (0, None) and "no results yet" in str(code)


# ---- figures and summaries from fixed CSVs ---------------------------------------------------------------------

def test_caption_names_date_and_machine(tmp_path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    rt.caption(fig, [{"date": "2026-01-02 03:04 UTC", "machine": "testbox"},
                     {"date": "2026-01-03 01:00 UTC", "machine": "testbox"}])
    texts = [t.get_text() for t in fig.texts]
    plt.close(fig)
    assert texts == ["Runs of 2026-01-02 03:04 UTC to 2026-01-03 01:00 UTC on testbox."]


def test_optimizers_scatter_from_csv(tmp_path):
    path = write(tmp_path / "opt.csv", optimizers.COLUMNS,
                 [[name, 0, 2, lr, "range_test (min_div10)", status, loss, acc, acc, 10, 5.0, "small", 128, 4500,
                   "2026-01-02 03:04 UTC", "testbox", ""]
                  for name, lr, status, loss, acc in [("sgd", 0.1, "completed", 1.2, 0.6),
                                                      ("adam", 0.001, "completed", 1.0, 0.65),
                                                      ("adagrad", 0.01, "diverged", "", "")]])
    assert optimizers.plot_scatter(path, tmp_path / "opt.png").stat().st_size > 10_000
    lines = optimizers.summary(path).splitlines()
    assert len(lines) == 5 and lines[4].startswith("| adagrad | 0 | 2 | 0.01 |") and "| diverged | - | - |" in lines[4]


def test_range_rank_and_gap_from_csv(tmp_path):
    rows = []
    for seed, accs in ((0, {0.5: 0.60, 1.0: 0.70, 2.0: 0.72}), (1, {0.5: 0.61, 1.0: 0.705, 2.0: 0.69})):
        for factor, acc in accs.items():
            rows.append(["fast", seed, "min_div10", "yes", 0.1, factor, 0.1 * factor, "completed", acc])
        rows.append(["fast", seed, "loss_min", "", 1.0, 1.0, 1.0, "diverged", ""])
        rows.append(["fast", seed, "loss_min", "", 1.0, 0.5, 0.5, "completed", 0.5])
    path = write(tmp_path / "rtv.csv", rtv.COLUMNS,
                 [r + [2, 2000, 128, "small", "2026-01-02 03:04 UTC", "testbox", ""] for r in rows])
    ranked = rtv.rank_table(rt.read_csv(path))
    seed0 = next(r for r in ranked if r["seed"] == 0 and r["rule"] == "min_div10")
    assert seed0["rank"] == 2 and seed0["gap_points"] == pytest.approx(2.0)
    seed1 = next(r for r in ranked if r["seed"] == 1 and r["rule"] == "min_div10")
    assert seed1["rank"] == 1 and seed1["gap_points"] == pytest.approx(0.0)
    means = {m["rule"]: m for m in rtv.mean_table(ranked)}
    assert means["min_div10"]["mean_gap_points"] == pytest.approx(1.0)
    assert means["min_div10"]["within_1_point"] == "no"  # the worst seed misses by 2 points
    assert rtv.plot_sweep(path, tmp_path / "rtv.png").stat().st_size > 10_000
    assert "| fast | min_div10 | yes | 2 |" in rtv.summary(path)


def test_range_figure_names_the_rule_configured_now_not_the_csv_auto_column():
    """The figure's solid line and label follow the recipe's range_test.suggestion as configured now (a CSV of
    2026-11-28 says auto=yes for min_div10, the default then); with max_lr trials the label says auto adds them."""
    default = OmegaConf.load(ROOT / "conf" / "range_test" / "exp.yaml")
    expected = (default.suggestion, bool(default.trial_factors))
    assert rtv.configured_rule("cifar10_fast") == expected and rtv.configured_rule("no_such_recipe") == expected
    assert rtv.rule_label("min_div10", "loss_min", True) == "min_div10"
    assert rtv.rule_label("loss_min", "loss_min", True) == "loss_min (configured rule; auto = it + max_lr trials)"
    assert rtv.rule_label("loss_min", "loss_min", False) == "loss_min (configured rule = auto)"


def test_peak_overrides():
    piecewise = {"_target_": "callbacks.schedules.shapes.piecewise", "knots": [0, 5, 24], "values": [0.0, 0.4, 0.0],
                 "unit": "epoch"}
    assert rtv.peak_overrides(piecewise, 0.8, 24, 24) == ["scheduler.values=[0,0.8,0]"]
    assert rtv.peak_overrides(piecewise, 0.8, 2, 24) == ["scheduler.values=[0,0.8,0]", "scheduler.unit=fraction",
                                                         "scheduler.knots=[0,0.208333,1]"]
    assert rtv.peak_overrides({"_target_": "x.one_cycle", "max_lr": "auto"}, 0.5, 2, 3) == ["scheduler.max_lr=0.5"]
    assert rtv.peak_overrides({"enabled": False}, 0.5, 2, 3) == ["optimizer.lr=0.5"]


def test_resumable_job_is_not_rerun(tmp_path):
    write_result(tmp_path / "job", status="completed", metrics={"test/acc": 0.5})
    result = rt.run_job(rt.Job("job", ["this=would_fail"]), tmp_path)
    assert result["status"] == "completed" and rt.metric(result, "test/acc") == 0.5


def test_accuracy_noise_quick_counts_rises_read_from_noise_by_both_rules(tmp_path):
    """benchmarks/accuracy_noise.py --quick: 200 draws per row. On pure noise the rule before (one standard error)
    reads a rise in about half the tests and more, the rule now in a few percent; on a real rise of 0.3 both find
    one."""
    import accuracy_noise

    rows = accuracy_noise.main(["--quick", "--out", str(tmp_path)])
    assert csv_rows(tmp_path / "accuracy_noise.csv")[0]["points"] == "5" and len(rows) == 4
    noise = [r for r in rows if r["rise"] == 0.0]
    assert all(r["before"] > 0.35 and r["now"] < 0.1 for r in noise), noise
    assert all(r["before"] == 1.0 and r["now"] > 0.9 for r in rows if r["rise"] > 0), rows

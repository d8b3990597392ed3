"""Sweep summary, plots, argument checks and resume decisions on hand-made sweep directories (no training)."""
import csv
import json
import math

import pytest
from omegaconf import OmegaConf

from callbacks.run.result_file import read_result, result_path, write_result
from callbacks.sweeps.checks import SweepError, check_sweep, check_writable
from callbacks.sweeps.plot import Point, heatmap, lineplot
from callbacks.sweeps.resume import ResumeRefused, resume_decision
from callbacks.sweeps.summary import main, report, summarize
from conftest import CONF

BASIC = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
# What a swept numeric key may take besides numbers, as the SweepSummary callback gets it from conf/train.yaml.
WORDS = OmegaConf.load(CONF / "train.yaml").hydra.callbacks.sweep_summary.words


def make_sweep(root, task, sweeper=None):
    """multirun.yaml as Hydra writes it: the command line's overrides and the sweeper."""
    root.mkdir(parents=True, exist_ok=True)
    OmegaConf.save({"monitor": "val/acc", "monitor_mode": "max",
                    "hydra": {"overrides": {"task": task}, "sweeper": sweeper or {"_target_": BASIC, "params": None}}},
                   root / "multirun.yaml")
    return root


def make_job(sweep, num, overrides, status="completed", acc=None, reason="", lr=None, ckpt=False):
    run_dir = sweep / f"{num}_{','.join(o for o in overrides if not o.startswith('experiment'))}"
    (run_dir / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create(overrides), run_dir / ".hydra" / "overrides.yaml")
    OmegaConf.save({"hydra": {"job": {"num": num}}}, run_dir / ".hydra" / "hydra.yaml")
    metrics = {} if acc is None else {"val/acc": acc, "val/acc_best": acc + 0.01, "test/acc": acc - 0.02,
                                      "val/loss": 2.0 - acc}
    result = {"status": status, "reason": reason, "overrides": overrides, "monitor": "val/acc", "monitor_mode": "max",
              "metrics": metrics, "objective": acc if acc is not None else 0.0,
              "lr": {"max_lr": lr, "source": "config"}, "epochs": 3 if status == "completed" else 1,
              "steps": 48 if status == "completed" else 5, "wall_s": 1.5 + num, "run_dir": str(run_dir),
              "checkpoint": str(run_dir / "checkpoints" / "last.ckpt")}
    if ckpt:
        (run_dir / "checkpoints").mkdir()
        (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"x")
    if status is not None:
        write_result(run_dir, **result)
    return run_dir


def grid_sweep(tmp_path):
    """2x2: max_lr 0.01, 1.0 (two decades) x weight decay 1e-4, 3e-4 (not a decade); max_lr=1.0, wd=3e-4 diverged."""
    sweep = make_sweep(tmp_path / "sweep", ["experiment=smoke", "scheduler.max_lr=0.01,1.0",
                                            "optimizer.weight_decay=1e-4,3e-4"])
    accs = {0: 0.5, 1: 0.7, 2: 0.6, 3: None}
    combos = [(0.01, 1e-4), (0.01, 3e-4), (1.0, 1e-4), (1.0, 3e-4)]
    for num, (lr, wd) in enumerate(combos):
        make_job(sweep, num, ["experiment=smoke", f"scheduler.max_lr={lr}", f"optimizer.weight_decay={wd}"],
                 status="completed" if accs[num] is not None else "diverged", acc=accs[num], lr=lr,
                 reason="" if accs[num] is not None else "non-finite loss (nan) at step 5, lr 1.0")
    return sweep


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_summary_rows_hold_each_jobs_values_best_first_diverged_last(tmp_path, capsys):
    sweep = grid_sweep(tmp_path)
    summary = report(sweep)
    rows = read_csv(sweep / "summary.csv")
    assert [r["job"] for r in rows] == ["1", "2", "0", "3"]  # val/acc 0.7, 0.6, 0.5, then the diverged job
    assert [r["rank"] for r in rows] == ["1", "2", "3", ""]
    for row in rows:
        result = read_result(sweep / row["run_dir"])
        assert row["status"] == result["status"] and row["reason"] == result["reason"]
        assert row["scheduler.max_lr"] == result["overrides"][1].split("=")[1]
        assert float(row["lr"]) == result["lr"]["max_lr"] and int(row["steps"]) == result["steps"]
        for name, value in result["metrics"].items():
            assert float(row[name]) == value  # full precision, not rounded
    assert rows[-1]["status"] == "diverged" and "non-finite" in rows[-1]["reason"] and rows[-1]["val/acc"] == ""
    assert list(rows[0])[:6] == ["rank", "job", "scheduler.max_lr", "optimizer.weight_decay", "val/acc",
                                 "val/acc_best"]
    md = (sweep / "summary.md").read_text()
    assert "**Complete**: all 4 jobs" in md and "1 diverged" in md and "![val/acc](heatmap.png)" in md
    assert "Best: job 1 (scheduler.max_lr=0.01 optimizer.weight_decay=0.0003)" in md
    assert md.count("\n| ") == 5 and summary.complete
    assert "Best: job 1" in capsys.readouterr().out  # printed to the console too
    assert (sweep / "heatmap.png").stat().st_size > 10_000


def test_heatmap_uses_log_axes_only_where_values_span_decades(tmp_path):
    summary = summarize(grid_sweep(tmp_path))
    from callbacks.sweeps.summary import plot

    info = plot(summary)
    assert (info.kind, info.xscale, info.yscale) == ("heatmap", "log", "linear")
    assert info.path.name == "heatmap.png" and info.path.exists()


def test_scattered_points_give_a_scatter_not_an_empty_grid(tmp_path):
    points = [Point((0.01 * 3 ** i, 1e-5 * 2 ** i), 0.5 + 0.01 * i, "completed") for i in range(5)]
    points.append(Point((2.0, 1e-3), math.nan, "diverged"))
    info = heatmap(points, ("scheduler.max_lr", "optimizer.weight_decay"), "val/acc", tmp_path / "h.png")
    assert (info.kind, info.xscale, info.yscale) == ("scatter", "log", "log") and info.path.exists()


def test_one_swept_number_gives_a_line_plot(tmp_path):
    sweep = make_sweep(tmp_path / "s", ["scheduler.max_lr=0.1,0.2,0.3"])
    for num, lr in enumerate([0.1, 0.2, 0.3]):
        make_job(sweep, num, [f"scheduler.max_lr={lr}"], acc=0.4 + num / 10, lr=lr)
    written = report(sweep)
    assert (sweep / "lineplot.png").exists() and not (sweep / "heatmap.png").exists()
    from callbacks.sweeps.summary import plot

    assert (plot(written).kind, plot(written).xscale) == ("line", "linear")
    wide = [Point((lr,), 0.5, "completed") for lr in (0.001, 0.01, 0.1)] + [Point((10.0,), math.nan, "diverged")]
    assert lineplot(wide, "scheduler.max_lr", "val/acc", tmp_path / "l.png").xscale == "log"


def test_an_incomplete_sweeps_plot_stacks_its_marks_and_draws_no_empty_legend(tmp_path, monkeypatch, recwarn):
    """Two groups without a value at one x printed their labels on top of each other, and a group with no value at
    all asked matplotlib for a legend of nothing ("No artists with labels found")."""
    from callbacks.sweeps import plot as plots

    placed = []
    real = plots._mark
    monkeypatch.setattr(plots, "_mark", lambda ax, x, y, status, transform=None, stacked=0: (
        placed.append((x, status, stacked)), real(ax, x, y, status, transform, stacked)))
    points = [Point((0.1,), math.nan, "interrupted", group="wd=1"), Point((0.1,), math.nan, "missing", group="wd=2"),
              Point((0.1,), math.nan, "missing", group="wd=3"), Point((0.2,), math.nan, "missing", group="wd=1")]
    lineplot(points, "scheduler.max_lr", "val/acc", tmp_path / "l.png")
    assert placed == [(0.1, "interrupted", 0), (0.1, "missing", 1), (0.2, "missing", 0)]
    assert not [w for w in recwarn if "No artists with labels" in str(w.message)]


def test_unfinished_and_unstarted_jobs_make_an_incomplete_summary(tmp_path):
    steps = "+callbacks.steps.dirpath=${output_dir}/steps"  # read as written, never resolved
    job = "+callbacks.steps.dirpath=$\\{output_dir\\}/steps"  # as Hydra passes it to each job
    sweep = make_sweep(tmp_path / "s", [steps, "scheduler.max_lr=0.1,0.2", "optimizer.weight_decay=1e-4,1e-3"])
    make_job(sweep, 0, [job, "scheduler.max_lr=0.1", "optimizer.weight_decay=0.0001"], acc=0.6, lr=0.1)
    make_job(sweep, 1, [job, "scheduler.max_lr=0.1", "optimizer.weight_decay=0.001"], status="running", lr=0.1)
    make_job(sweep, 2, [job, "scheduler.max_lr=0.2", "optimizer.weight_decay=0.0001"], status="failed", lr=0.2,
             reason="RuntimeError: CUDA out of memory")
    assert main([str(sweep)]) == 1  # the command says so too
    rows = {r["job"]: r for r in read_csv(sweep / "summary.csv")}
    assert len(rows) == 4
    assert rows["1"]["status"] == "running" and "interrupted" in rows["1"]["reason"]
    assert rows["2"]["status"] == "failed" and rows["2"]["reason"] == "RuntimeError: CUDA out of memory"
    assert rows["3"]["status"] == "missing" and rows["3"]["reason"] == "not started"
    assert rows["3"]["scheduler.max_lr"] == "0.2" and rows["3"]["optimizer.weight_decay"] == "0.001"
    md = (sweep / "summary.md").read_text()
    assert "**INCOMPLETE**: 2 of 4 jobs have no final result" in md and "Complete" not in md
    assert "- job 1 (scheduler.max_lr=0.1 optimizer.weight_decay=0.001): status 'running'" in md
    assert "- job 3 (scheduler.max_lr=0.2 optimizer.weight_decay=0.001): not started" in md


def test_summary_command_refuses_a_folder_that_is_not_a_sweep(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    assert f"{tmp_path} is not a Hydra sweep directory" in capsys.readouterr().err
    assert main([str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "summary.csv").exists()


def test_unwritable_sweep_directory_is_named(tmp_path):
    (tmp_path / "a_file").write_text("")
    with pytest.raises(SweepError, match=r"hydra.sweep.dir=.*a_file/sweep is not a writable directory"):
        check_writable(tmp_path / "a_file" / "sweep")


def sweep_config(tmp_path, task, sweeper=None, **top):
    return OmegaConf.create({"scheduler": {"max_lr": 0.2, "div_factor": 10.0}, "optimizer": {"weight_decay": 5e-4},
                             "monitor": "val/acc", "monitor_mode": "max", **top,
                             "hydra": {"sweep": {"dir": str(tmp_path / "sweep")}, "overrides": {"task": task},
                                       "runtime": {"choices": {"optimizer": "nesterov", "model": "small"}},
                                       "sweeper": sweeper or {"_target_": BASIC, "params": None}}})


def test_sweep_arguments_are_checked_before_any_job(tmp_path):
    check_sweep(sweep_config(tmp_path, ["scheduler.max_lr=0.1,auto", "+extra=1,2"]), WORDS)
    check_sweep(sweep_config(tmp_path, ["optimizer=adam,sgd", "optimizer.betas=1,2"]), WORDS)  # the group brings it
    with pytest.raises(SweepError, match=r"'scheduler.max_lrr'.*Did you mean scheduler.max_lr\?"):
        check_sweep(sweep_config(tmp_path, ["scheduler.max_lrr=0.1,0.2"]), WORDS)
    with pytest.raises(SweepError, match=r"optimizer.weight_decay is a number \(now 0.0005\).*'abc'"):
        check_sweep(sweep_config(tmp_path, ["optimizer.weight_decay=1e-4,abc"]), WORDS)
    with pytest.raises(SweepError, match=r"scheduler.div_factor is a number.*'auto'"):
        check_sweep(sweep_config(tmp_path, ["scheduler.div_factor=10,auto"]), WORDS)
    with pytest.raises(SweepError, match=r"sweep over scheduler.max_lr is empty"):
        check_sweep(sweep_config(tmp_path, ["scheduler.max_lr=range(0,0)"]), WORDS)
    optuna = {"_target_": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper", "n_trials": 3,
              "direction": "maximize", "params": {"scheduler.max_lr": "tag(log, interval(0.01, 1.0))"}}
    check_sweep(sweep_config(tmp_path, [], optuna), WORDS)
    with pytest.raises(SweepError, match=r"direction=maximize but monitor_mode=min.*direction=minimize"):
        check_sweep(sweep_config(tmp_path, [], optuna, **{"monitor_mode": "min"}), WORDS)
    long = sweep_config(tmp_path, ["scheduler.max_lr=0.1,0.2", "+" + "x" * 250 + "=1"])
    long.hydra.sweep.subdir = "${hydra.job.num}_${hydra.job.override_dirname}"
    long.hydra.job = {"config": {"override_dirname": {"exclude_keys": ["seed"], "item_sep": ",", "kv_sep": "="}}}
    with pytest.raises(SweepError, match=r"job 0's folder name would be 2\d\d bytes.*exclude_keys"):
        check_sweep(long, WORDS)
    long.hydra.job.config.override_dirname.exclude_keys.append("x" * 250)
    check_sweep(long, WORDS)  # left out of the name: fine
    with pytest.raises(SweepError, match="no jobs to run"):
        check_sweep(sweep_config(tmp_path, [], {**optuna, "n_trials": 0}), WORDS)


def test_a_sweep_folder_is_resumed_only_with_its_own_arguments_and_never_swept_into_again(tmp_path):
    """A second sweep into a sweep's folder retrained into its job folders (or mixed its jobs into the summary); a
    resume with other arguments let Hydra rewrite the jobs' .hydra/ before each job refused; +resume=true with a
    folder that holds no sweep started a new one. Each is refused before Hydra writes anything."""
    task = ["experiment=smoke", "scheduler.max_lr=0.1,0.2"]
    with pytest.raises(SweepError, match=r"\+resume=true resumes .* holds none \(no multirun.yaml\)"):
        check_sweep(sweep_config(tmp_path, [*task, "+resume=true"]), WORDS)
    assert not (tmp_path / "sweep").exists()
    check_sweep(sweep_config(tmp_path, task), WORDS)  # a new folder: fine
    make_sweep(tmp_path / "sweep", task)
    check_sweep(sweep_config(tmp_path, task), WORDS)  # a sweep that stopped before its first job: run it again
    make_job(tmp_path / "sweep", 0, ["scheduler.max_lr=0.1"], acc=0.5, lr=0.1)
    before = (tmp_path / "sweep" / "multirun.yaml").read_text()
    with pytest.raises(SweepError, match=r"already holds a sweep \(run with experiment=smoke scheduler.max_lr=0.1,0.2\); "
                                         r"resume it with the same arguments plus \+resume=true"):
        check_sweep(sweep_config(tmp_path, task), WORDS)
    with pytest.raises(SweepError, match=r"cannot resume .*this command differs \(\+seed=1\)"):
        check_sweep(sweep_config(tmp_path, [*task, "seed=1", "+resume=true"]), WORDS)
    with pytest.raises(SweepError, match=r"differs \(-scheduler.max_lr=0.1,0.2, \+scheduler.max_lr=0.1,0.3\)"):
        check_sweep(sweep_config(tmp_path, ["experiment=smoke", "scheduler.max_lr=0.1,0.3", "+resume=true"]), WORDS)
    check_sweep(sweep_config(tmp_path, ["+resume=true", *reversed(task)]), WORDS)  # the same sweep, in any order
    assert (tmp_path / "sweep" / "multirun.yaml").read_text() == before


def test_a_single_runs_folder_is_not_a_sweep_and_a_sweep_whose_every_job_failed_fails(tmp_path, capsys):
    from callbacks.sweeps.hydra_callback import SweepSummary

    runs = tmp_path / "outputs"
    for name in ("a", "b"):  # two single runs (python train.py ...): Hydra's mode RUN, no job number
        (runs / name / ".hydra").mkdir(parents=True)
        OmegaConf.save(["experiment=smoke"], runs / name / ".hydra" / "overrides.yaml")
        OmegaConf.save({"hydra": {"mode": "RUN", "job": {"num": "???"}}}, runs / name / ".hydra" / "hydra.yaml")
    for folder in (runs, runs / "a"):
        assert main([str(folder)]) == 2
        assert "not a Hydra sweep directory" in capsys.readouterr().err and not (folder / "summary.csv").exists()
    sweep = make_sweep(tmp_path / "sweep", ["scheduler.max_lr=0.1,0.2"])
    for num, lr in enumerate((0.1, 0.2)):
        make_job(sweep, num, [f"scheduler.max_lr={lr}"], status="failed", reason="ValueError: data.root: /x does not exist")
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}}})
    with pytest.raises(SystemExit) as stop:
        SweepSummary().on_multirun_end(config)
    assert stop.value.code == 1
    assert "Error: every job of the sweep failed (job 0: ValueError: data.root: /x does not exist)" in capsys.readouterr().err
    make_job(sweep, 2, ["scheduler.max_lr=0.3"], acc=0.6, lr=0.3)
    SweepSummary().on_multirun_end(config)  # one job trained: the sweep stands


def test_ctrl_c_in_a_sweeps_parent_records_its_running_jobs_as_interrupted(tmp_path):
    """joblib stops its workers when Ctrl-C reaches the parent: a job it stopped stayed "running" (and the parent
    ended in a KeyboardInterrupt traceback); train.py now records those jobs and names the resume command."""
    from callbacks.run.hydra_job import sweep_interrupted

    sweep = make_sweep(tmp_path / "sweep", ["scheduler.max_lr=0.1,0.2,0.3"])
    done = make_job(sweep, 0, ["scheduler.max_lr=0.1"], acc=0.5, lr=0.1)
    stopped = make_job(sweep, 1, ["scheduler.max_lr=0.2"], status="running", lr=0.2, ckpt=True)
    said = make_job(sweep, 2, ["scheduler.max_lr=0.3"], status="interrupted", reason="SIGINT at step 5", lr=0.3)
    assert sweep_interrupted(["-m", "x=1"]).endswith("hydra.sweep.dir=<its folder> +resume=true")
    assert read_result(stopped)["status"] == "running"  # no folder named: nothing touched
    line = sweep_interrupted(["-m", f"hydra.sweep.dir={sweep}"])
    assert line == (f"1 job(s) the launcher stopped are recorded as interrupted. Resume the sweep: the same command "
                    f"plus hydra.sweep.dir={sweep} +resume=true")
    assert sweep_interrupted([f"hydra.sweep.dir={sweep}"]) == (f"Resume the sweep: the same command plus "
                                                               f"hydra.sweep.dir={sweep} +resume=true")
    record = read_result(stopped)
    assert record["status"] == "interrupted" and "launcher stopped this job" in record["reason"]
    assert record["checkpoint"].endswith("last.ckpt")  # the rest of the record kept: resume_decision resumes it
    assert resume_decision(stopped, overrides=["scheduler.max_lr=0.2"])[0] == "resume"
    assert read_result(done)["status"] == "completed" and read_result(said)["reason"] == "SIGINT at step 5"


def test_the_sweep_check_takes_auto_exactly_where_train_py_fills_it_in(tmp_path):
    """The words come from conf/train.yaml (the Hydra callback's argument), not from the check's own code; they must
    be train.py's AUTO on train.py's AUTO_KEYS."""
    from hydra.utils import instantiate

    from train import AUTO, AUTO_KEYS

    assert {word: list(spec["keys"]) for word, spec in WORDS.items()} == {AUTO: [f"scheduler.{k}" for k in AUTO_KEYS]}
    assert instantiate(OmegaConf.load(CONF / "train.yaml").hydra.callbacks.sweep_summary).words == WORDS
    with pytest.raises(SweepError, match=r"sweep numbers or 'auto' \(the LR range test picks it\), e.g. scheduler.max_lr"):
        check_sweep(sweep_config(tmp_path, ["scheduler.max_lr=0.1,big"]), WORDS)
    check_sweep(sweep_config(tmp_path, ["scheduler.max_lr=0.1,Auto"]), WORDS)  # train.py reads any case, so may a sweep
    with pytest.raises(SweepError, match=r"scheduler.max_lr is a number.*'auto'"):
        check_sweep(sweep_config(tmp_path, ["scheduler.max_lr=0.1,auto"]))  # no words given: numbers only


def test_resume_decision_skips_finished_jobs_and_resumes_the_rest(tmp_path):
    sweep = tmp_path / "s"
    done = make_job(sweep, 0, ["scheduler.max_lr=0.1"], acc=0.6, lr=0.1, ckpt=True)
    diverged = make_job(sweep, 1, ["scheduler.max_lr=9"], status="diverged", lr=9.0)
    interrupted = make_job(sweep, 2, ["scheduler.max_lr=0.2"], status="running", lr=0.2, ckpt=True)
    failed = make_job(sweep, 3, ["scheduler.max_lr=0.3"], status="failed", lr=0.3)
    never = make_job(sweep, 4, ["scheduler.max_lr=0.4"], status=None, ckpt=True)
    action, result = resume_decision(done, overrides=["scheduler.max_lr=0.1", "+resume=true"])
    assert action == "skip" and result["metrics"]["val/acc"] == 0.6
    assert resume_decision(diverged)[0] == "skip"
    assert resume_decision(interrupted) == ("resume", str(interrupted / "checkpoints" / "last.ckpt"))
    assert resume_decision(failed) == ("fresh", None)  # no checkpoint to resume from
    assert resume_decision(never) == ("resume", str(never / "checkpoints" / "last.ckpt"))
    result_path(interrupted).write_text('{"status": "runn')  # killed while writing
    assert resume_decision(interrupted)[0] == "resume"
    with pytest.raises(ResumeRefused, match=r"ran with \['scheduler.max_lr=0.1'\].*'seed=1'"):
        resume_decision(done, overrides=["scheduler.max_lr=0.1", "seed=1", "+resume=true"])
    result_path(interrupted).write_text(json.dumps({"status": "running", "overrides": ["scheduler.max_lr=0.2"]}))
    assert resume_decision(interrupted, overrides=["scheduler.max_lr=0.2", "+resume=true"])[0] == "resume"
    with pytest.raises(ResumeRefused, match="'seed=1'"):  # not resumed from another seed's checkpoint either
        resume_decision(interrupted, overrides=["scheduler.max_lr=0.2", "seed=1", "+resume=true"])


def test_a_job_that_raised_is_recorded_as_failed_not_left_running(tmp_path):
    from hydra.core.utils import JobReturn, JobStatus

    from callbacks.sweeps.checks import record_failure

    run_dir = make_job(tmp_path / "s", 0, ["scheduler.max_lr=0.1"], status="running", lr=0.1)
    config = OmegaConf.create({"monitor": "val/acc", "monitor_mode": "max",
                               "hydra": {"runtime": {"output_dir": str(run_dir)}}})
    record_failure(config, JobReturn(overrides=["scheduler.max_lr=0.1"], status=JobStatus.FAILED,
                                     _return_value=RuntimeError("CUDA error: out of memory")))
    result = read_result(run_dir)
    assert result["status"] == "failed" and result["reason"] == "RuntimeError: CUDA error: out of memory"
    assert result["objective"] == -math.inf and result["lr"]["max_lr"] == 0.1  # the rest of the record is kept
    done = make_job(tmp_path / "s", 1, ["scheduler.max_lr=0.2"], acc=0.5, lr=0.2)
    before = result_path(done).read_text()
    config.hydra.runtime.output_dir = str(done)
    record_failure(config, JobReturn(status=JobStatus.FAILED, _return_value=ValueError("late")))
    assert result_path(done).read_text() == before  # train.py's own final record wins


def test_an_optuna_sweep_short_of_its_trial_budget_is_incomplete(tmp_path):
    optuna = {"_target_": "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper", "n_trials": 3,
              "direction": "maximize", "params": {"scheduler.max_lr": "tag(log, interval(0.01, 1.0))"}}
    sweep = make_sweep(tmp_path / "s", ["experiment=smoke"], optuna)
    make_job(sweep, 0, ["experiment=smoke", "scheduler.max_lr=0.0312"], acc=0.5, lr=0.0312)
    make_job(sweep, 1, ["experiment=smoke", "scheduler.max_lr=0.4471"], acc=0.7, lr=0.4471)
    summary = summarize(sweep)
    assert summary.swept == ["scheduler.max_lr"] and summary.expected == 3
    assert [r["job"] for r in summary.rows] == [1, 0, 2] and summary.rows[2]["status"] == "missing"
    assert summary.missing == ["job 2 (overrides unknown): not started"] and not summary.complete


def test_job_folder_names_leave_out_the_data_paths():
    """A path's '/' in a job's folder name would nest the job three folders deep (data.root=/data/x); an Optuna
    sweep's hparams_search is the same in every job."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.config_loader_impl import get_overrides_dirname
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from conftest import CONF

    overrides = ["experiment=image_folder_resnet", "data.root=/data/my images", "data.cache_dir=/scratch/c",
                 "optimizer.weight_decay=0.001", "seed=3", "hparams_search=one_cycle_optuna"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        job = compose(config_name="train", overrides=overrides, return_hydra_config=True).hydra.job
    GlobalHydra.instance().clear()
    names = job.config.override_dirname
    dirname = get_overrides_dirname(OverridesParser.create().parse_overrides(overrides), list(names.exclude_keys),
                                    names.item_sep, names.kv_sep)
    assert dirname == "experiment=image_folder_resnet,optimizer.weight_decay=0.001"
    csv = ["experiment=attributes", "data.csv_path=/d/a.csv", "data.image_root=/home/me/imgs", "optimizer.weight_decay=0.1"]
    assert "/" not in get_overrides_dirname(OverridesParser.create().parse_overrides(csv), list(names.exclude_keys),
                                            names.item_sep, names.kv_sep)


def test_the_summary_command_reads_results_without_importing_torch():
    """``python -m callbacks.sweeps.summary`` took 10 s, 7.6 of them importing Lightning and torch for one rank check."""
    import subprocess
    import sys

    from conftest import ROOT

    code = "import sys, callbacks.sweeps.summary; print(sorted({'torch', 'pytorch_lightning'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr

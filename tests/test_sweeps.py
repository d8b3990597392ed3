"""Sweeps end to end: train.py -m on the smoke experiment in a process of its own, as a user runs it, with each launcher
and the Optuna preset; the summary is compared with what every job logged itself. The command lines run as train.py's
``__main__`` in processes forked from one that has done train.py's imports (conftest.run_train_forked); the
interrupted sweep is a plain ``python train.py`` subprocess (it is sent SIGINT)."""
import csv
import glob
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from callbacks.run.result_file import read_result
from conftest import CONF, CPU_OVERRIDES, ROOT, SHORT_TRIALS, run_train_forked, start_train_forked

# Small: 4 steps an epoch, one epoch. Fixed keys stay out of the job folder names (255-byte limit), as a user would
# do with an experiment config.
FIXED = ["experiment=smoke", *CPU_OVERRIDES, "data.num_train=128", "data.num_val=64", "data.batch_size=32",
         "trainer.max_epochs=1", "plot_schedule=false", "range_test.num_steps=30", *SHORT_TRIALS]
EXCLUDE = ",".join(["seed", "ckpt_path", "resume", "test"] + [o.split("=")[0].lstrip("~+") for o in FIXED])
NAMES = f"hydra.job.config.override_dirname.exclude_keys=[{EXCLUDE}]"


def sweep(sweep_dir, *args, timeout=240):
    result = run_train_forked(["-m", *FIXED, NAMES, f"hydra.sweep.dir={sweep_dir}", *args], cwd=sweep_dir.parent,
                              timeout=timeout)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


def summary_rows(sweep_dir):
    with open(sweep_dir / "summary.csv") as f:
        return {int(row["job"]): row for row in csv.DictReader(f)}


def job_result(sweep_dir, row):
    return read_result(sweep_dir / row["run_dir"])


def tensorboard(run_dir):
    """Last value of every scalar, and the hparams of the run, from the run's own event files."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    scalars, hparams = {}, {}
    for path in glob.glob(os.path.join(run_dir, "**", "events.out.tfevents.*"), recursive=True):
        acc = EventAccumulator(path, size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars[tag] = max((e.step, e.wall_time, e.value) for e in acc.Scalars(tag))[2]
        try:
            content = acc.PluginTagToContent("hparams")
        except KeyError:
            continue
        if "_hparams_/session_start_info" in content:
            data = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
            for name, value in data.session_start_info.hparams.items():
                hparams[name] = value.number_value if value.HasField("number_value") else value.string_value
    return scalars, hparams


def leaf(name):
    return name.replace(".", "/").split("/")[-1]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    sweep_dir = tmp_path_factory.mktemp("grid") / "sweep"
    result = sweep(sweep_dir, "scheduler.max_lr=0.02,0.2", "optimizer.weight_decay=1e-4,1e-3")
    return sweep_dir, result


def test_2x2_sweep_summary_holds_each_jobs_own_logged_values(grid):
    sweep_dir, result = grid
    rows = summary_rows(sweep_dir)
    assert sorted(rows) == [0, 1, 2, 3]
    seen = set()
    for num, row in rows.items():
        run_dir = sweep_dir / row["run_dir"]
        scalars, hparams = tensorboard(run_dir)
        assert row["status"] == "completed", row
        for metric in ("val/acc", "val/loss", "test/acc"):
            assert float(row[metric]) == pytest.approx(scalars[metric], rel=1e-6), (num, metric)
        lrs = [v for k, v in hparams.items() if leaf(k) == "max_lr" and "range_test" not in k]
        wds = [v for k, v in hparams.items() if leaf(k) == "weight_decay"]
        assert lrs and lrs[0] == pytest.approx(float(row["scheduler.max_lr"])), hparams
        assert wds and wds[0] == pytest.approx(float(row["optimizer.weight_decay"])), hparams
        assert float(row["lr"]) == float(row["scheduler.max_lr"]) and row["lr_source"] == "config"
        assert int(row["epochs"]) == 1 and float(row["wall_s"]) > 0
        metrics = job_result(sweep_dir, row)["metrics"]
        assert all(float(row[name]) == value for name, value in metrics.items())  # every metric, full precision
        seen.add((row["scheduler.max_lr"], row["optimizer.weight_decay"]))
    assert len(seen) == 4  # four distinct jobs, one row each
    ranked = sorted(rows.values(), key=lambda r: int(r["rank"]))
    assert [float(r["val/acc"]) for r in ranked] == sorted((float(r["val/acc"]) for r in ranked), reverse=True)
    assert (sweep_dir / "heatmap.png").stat().st_size > 5000
    assert "**Complete**: all 4 jobs" in (sweep_dir / "summary.md").read_text()
    assert "| rank | job | scheduler.max_lr | optimizer.weight_decay |" in result.stdout  # printed at the end


def test_summary_command_rebuilds_the_same_csv(grid):
    sweep_dir, _ = grid
    before = (sweep_dir / "summary.csv").read_bytes()
    for name in ("summary.csv", "summary.md", "heatmap.png"):
        (sweep_dir / name).unlink()
    done = run_summary_command(sweep_dir)
    assert done.returncode == 0, done.stderr
    assert (sweep_dir / "summary.csv").read_bytes() == before
    assert (sweep_dir / "heatmap.png").exists() and "**Complete**" in done.stdout


STEPS = ["data.num_train=512", "trainer.max_epochs=2", "test=false",  # 32 steps; a checkpoint every 3 steps
         "+callbacks.steps._target_=pytorch_lightning.callbacks.ModelCheckpoint",
         "+callbacks.steps.every_n_train_steps=3", "+callbacks.steps.dirpath=${output_dir}/steps"]
STEPS_NAMES = NAMES.replace("]", "," + ",".join(o.split("=")[0].lstrip("+") for o in STEPS) + "]")
INTERRUPTED = [*STEPS, STEPS_NAMES, "scheduler.max_lr=1e20,0.1,0.2"]  # job 0 diverges at once


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A sweep stopped by Ctrl-C while job 1 trains: job 0 diverged, job 1 interrupted, job 2 never started."""
    import signal

    sweep_dir = tmp_path_factory.mktemp("interrupted") / "sweep"
    # forked (conftest.start_train_forked): a process of its own with Python's own SIGINT handler, as from a shell
    run = start_train_forked(["-m", *FIXED, *INTERRUPTED, f"hydra.sweep.dir={sweep_dir}"], cwd=sweep_dir.parent,
                             merge_stderr=True, timeout=120)
    run.wait_until(lambda: glob.glob(str(sweep_dir / "1_*" / "steps" / "*.ckpt")), "step checkpoint of job 1",
                   timeout=120)
    run.send_signal(signal.SIGINT)
    proc = run.wait()
    assert proc.returncode == 130, proc.stdout[-3000:]
    # the job says how a sweep resumes (not a single run's ckpt_path=...)
    assert f"Resume the sweep: the same command plus hydra.sweep.dir={sweep_dir} +resume=true" in proc.stdout
    return sweep_dir


def run_summary_command(sweep_dir):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "callbacks.sweeps.summary", str(sweep_dir)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_an_interrupted_sweep_gets_a_summary_that_says_what_is_missing(interrupted):
    done = run_summary_command(interrupted)
    assert done.returncode == 1, done.stdout + done.stderr  # incomplete
    rows = summary_rows(interrupted)
    assert [rows[n]["status"] for n in (0, 1, 2)] == ["diverged", "interrupted", "missing"]
    assert "non-finite" in rows[0]["reason"] and float(rows[0]["lr"]) == 1e20  # a row, with its reason
    assert "SIGINT" in rows[1]["reason"] and rows[2]["reason"] == "not started"
    md = (interrupted / "summary.md").read_text()
    assert "**INCOMPLETE**: 2 of 3 jobs have no final result" in md
    assert "- job 1 (scheduler.max_lr=0.1)" in md and "- job 2 (scheduler.max_lr=0.2): not started" in md


def test_resume_skips_finished_jobs_and_resumes_unfinished_ones_from_last_ckpt(interrupted):
    before = summary_rows(interrupted) if (interrupted / "summary.csv").exists() else None
    job0, job1 = (next(interrupted.glob(f"{n}_*")) for n in (0, 1))
    stopped_at = read_result(job1)["steps"]

    def outputs(run_dir):  # what training writes (Hydra rewrites .hydra/ and its log for every job)
        return {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")
                if p.is_file() and ".hydra" not in p.parts and p.suffix != ".log"}

    finished = outputs(job0)
    result = sweep(interrupted, *INTERRUPTED, "+resume=true")
    assert outputs(job0) == finished  # the diverged job did not run again
    assert f"Restoring states from the checkpoint path at {job1 / 'checkpoints' / 'last.ckpt'}" in \
        result.stdout + result.stderr
    rows = summary_rows(interrupted)
    assert [rows[n]["status"] for n in (0, 1, 2)] == ["diverged", "completed", "completed"]
    assert 0 < stopped_at < int(rows[1]["steps"]) == int(rows[2]["steps"]) == 32
    assert before is None or rows[0]["reason"] == before[0]["reason"]
    assert len(list(interrupted.glob("*/.hydra"))) == 3  # the same job folders: resume is not in their names
    assert "**Complete**: all 3 jobs" in (interrupted / "summary.md").read_text()


def test_a_resume_with_other_settings_stops_the_sweep_and_changes_no_job(interrupted):
    """The same sweep resumed with another seed (a key left out of the folder names): each job folder holds a run of
    seed 0, so the sweep stops at its first job with one line and exit 2, whatever state the jobs were in (finished or
    interrupted), and no result, checkpoint or summary changes."""
    def records():  # what the runs and the summary wrote (Hydra rewrites multirun.yaml, and .hydra/ and the log of
        return {p: p.read_bytes() for p in interrupted.rglob("*")  # every job it starts: what was asked)
                if p.is_file() and ".hydra" not in p.parts and p.suffix != ".log" and p.name != "multirun.yaml"}

    before = records()
    done = run_train_forked(["-m", *FIXED, *INTERRUPTED, f"hydra.sweep.dir={interrupted}", "+resume=true", "seed=1"],
                            cwd=interrupted.parent, timeout=120)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-3000:]
    said = done.stdout + done.stderr
    assert "Error: cannot resume" in said and "'seed=1'" in said and "use a new hydra.sweep.dir" in said
    assert "Traceback" not in said
    assert records() == before  # so asked again it is refused again (test_sweep_summary.py: resume_decision)


def test_joblib_runs_two_auto_seeds_in_parallel_each_with_its_own_range_test_and_a_row_over_both(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep_dir = tmp_path / "sweep"
    sweep(sweep_dir, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "scheduler.max_lr=auto", "range_test=quick",
          "seed=0,1", "test=false")
    rows = summary_rows(sweep_dir)
    assert sorted(rows) == [0, 1] and {r["status"] for r in rows.values()} == {"completed"}
    for row in rows.values():
        used = OmegaConf.load(sweep_dir / row["run_dir"] / "config.yaml").scheduler.max_lr
        assert float(row["lr"]) == used > 0 and row["lr_source"].startswith("range_test")
        assert float(row["val/acc"]) == job_result(sweep_dir, row)["metrics"]["val/acc"]
    with open(sweep_dir / "settings.csv") as f:  # the seeds read as one setting: mean and LRs over both jobs
        (setting,) = list(csv.DictReader(f))
    accs = [float(r["val/acc"]) for r in rows.values()]
    lrs = sorted(float(r["lr"]) for r in rows.values())
    assert setting["seeds"] == "0 1" and float(setting["val/acc mean"]) == pytest.approx(sum(accs) / 2, rel=1e-12)
    assert [float(setting["lr_min"]), float(setting["lr_max"])] == lrs and setting["verdict"] == "best"
    assert "## Per setting, over seeds" in (sweep_dir / "summary.md").read_text()


def test_submitit_local_runs_two_jobs_one_diverging_and_the_sweep_finishes(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep_dir = tmp_path / "sweep"
    sweep(sweep_dir, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5", "scheduler.max_lr=0.1,1e20",
          "test=false")  # 1e20: the loss is not finite after a step or two
    rows = summary_rows(sweep_dir)
    assert (sweep_dir / ".submitit").is_dir()  # the jobs really went through submitit
    assert sorted(rows) == [0, 1] and [rows[0]["status"], rows[1]["status"]] == ["completed", "diverged"]
    assert float(rows[0]["val/acc"]) == job_result(sweep_dir, rows[0])["metrics"]["val/acc"]
    assert "non-finite" in rows[1]["reason"] and float(rows[1]["lr"]) == 1e20 and rows[1]["rank"] == ""
    assert "**Complete**: all 2 jobs" in (sweep_dir / "summary.md").read_text()  # the sweep went on to the end
    assert (sweep_dir / "lineplot.png").exists()


def test_optuna_preset_runs_its_trials_and_the_best_is_in_the_summary(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep_dir = tmp_path / "sweep"
    sweep(sweep_dir, "hparams_search=one_cycle_optuna", "hydra.sweeper.n_trials=3", "test=false")
    rows = summary_rows(sweep_dir)
    assert sorted(rows) == [0, 1, 2]
    best = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    top = next(r for r in rows.values() if r["rank"] == "1")
    assert float(top["val/acc"]) == pytest.approx(best.best_value)
    for key, value in best.best_params.items():
        assert float(top[key]) == pytest.approx(value)
    lrs = [float(r["scheduler.max_lr"]) for r in rows.values()]
    assert len(set(lrs)) == 3 and all(0.01 <= lr <= 3.0 for lr in lrs)  # sampled, on the preset's range
    assert "Optuna's best trial" in (sweep_dir / "summary.md").read_text()


def test_a_misspelt_swept_key_stops_the_sweep_before_any_job(tmp_path):
    sweep_dir = tmp_path / "sweep"
    result = run_train_forked(["-m", *FIXED, NAMES, f"hydra.sweep.dir={sweep_dir}", "scheduler.max_lrr=0.1,0.2"],
                              cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert "Could not override 'scheduler.max_lrr'" in result.stderr
    assert "Did you mean scheduler.max_lr?" in result.stderr
    assert not sweep_dir.exists()


def test_slurm_preset_composes_one_task_per_device():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["hydra/launcher=slurm", "trainer=ddp", "+trainer.num_nodes=2",
                                                      "hydra.launcher.timeout_min=30"], return_hydra_config=True)
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "SlurmLauncher"
    assert launcher.params["tasks_per_node"] == launcher.params["gpus_per_node"] == cfg.trainer.devices == 2
    assert launcher.params["nodes"] == 2 and launcher.params["timeout_min"] == 30

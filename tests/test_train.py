"""train.py end to end: a smoke run as a user runs it and what it leaves behind, resume (mid-epoch, interrupted,
finished, refused), max_steps stops and divergence. Also: test_train_auto_lr.py (max_lr=auto) and
test_train_start_up_errors.py (bad input)."""
import glob
import json
import os
import re
import shlex

import pytest
import torch

from callbacks.range_test.finder import RangeTestResult
from callbacks.run.result_file import read_result
from conftest import TEST_THREADS, compose_config, run_in_process, run_train_forked, smoke_overrides, start_train_forked
from run_records import logged_hparams, scalars
from train import run


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("smoke")
    # forked: train.py's imports done once per worker (the plain `python train.py` path: the start-up error test)
    result = run_train_forked(["experiment=smoke", f"hydra.run.dir={out}", "~callbacks.progress_bar",
                               "trainer.enable_progress_bar=false"], cwd=out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_smoke_run_writes_metrics_checkpoints_and_learns(smoke_run):
    out, result = smoke_run
    tags = scalars(out)
    for tag in ["train/loss", "train/acc", "val/loss", "val/acc", "test/acc", "train/lr", "train/momentum"]:
        assert tag in tags, f"{tag} not logged; have {sorted(tags)}"
    assert {os.path.basename(p) for p in glob.glob(str(out / "checkpoints" / "*.ckpt"))} >= {"last.ckpt"}
    assert len(glob.glob(str(out / "checkpoints" / "best-*.ckpt"))) == 1
    test_acc = tags["test/acc"][-1][1]
    val_acc = [v for _, v in sorted(tags["val/acc"])]
    assert test_acc > 0.3, "the smoke data is learnable: accuracy should rise well above chance (0.1)"
    assert val_acc[-1] > val_acc[0]
    header = result.stderr.split("\n")
    assert any(line.startswith("model       small: 24,346 parameters") for line in header), result.stderr[-2000:]
    assert any(line.startswith("completed in ") and "test/acc" in line for line in header)
    assert "config" not in result.stdout.split("\n")[:3]  # the config tree only with print_config=true
    log = (out / "train.log").read_text()
    # the process used the threads its header reports: OMP_NUM_THREADS from run_train, or fewer usable cores
    from callbacks.run.machine import cgroup_cpu_limit, thread_count

    threads, why = thread_count(None, str(TEST_THREADS), len(os.sched_getaffinity(0)), cgroup_cpu_limit())
    assert f"threads {threads} ({why})" in log, log[:2000]
    assert "model       small: 24,346 parameters" in log
    # the TensorBoard line pastes as it is, from any folder: this Python's own tensorboard, the run's log folder
    program, flag, logdir = shlex.split(re.search(r"TensorBoard (.*)", log).group(1))
    assert os.path.isabs(program) and os.path.exists(program) and program.endswith("tensorboard")
    assert flag == "--logdir" and os.path.samefile(logdir, out / "tensorboard")
    for noise in ("Tip:", "GPU available", "LeafSpec", "weights_only", "Total FLOPs"):
        assert noise not in result.stdout + result.stderr, noise
    assert (out / ".hydra" / "config.yaml").exists() and (out / "tensorboard" / "schedule.png").exists()


def test_resuming_with_a_longer_run_is_refused_not_stretched(smoke_run, tmp_path):
    out, _ = smoke_run
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 3 * 16
    # in-process (train.run_from_overrides): the refusal is run()'s; how main() prints a start-up error and exits
    # is test_a_start_up_error_is_one_plain_message's
    from train import run_from_overrides

    with pytest.raises(Exception) as err:
        run_from_overrides(["experiment=smoke", "~callbacks.progress_bar", "trainer.enable_progress_bar=false",
                            f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}", "trainer.max_epochs=4"], tmp_path)
    # 4 epochs is 64 steps, the checkpoint's one-cycle planned 48: the schedule says so instead of stretching
    assert "48" in str(err.value) and "64" in str(err.value), str(err.value)
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"] == 48


def run_and_resume_from_step_5(tmp_path, *extra):
    """Run ``smoke`` (+ ``extra``) to the end in tmp_path/a, saving every 5 steps, then resume a second run in
    tmp_path/b from a's step-5 checkpoint; assert both end with the same weights bitwise. Returns both configs."""
    every = ["+callbacks.steps._target_=pytorch_lightning.callbacks.ModelCheckpoint",
             f"+callbacks.steps.dirpath={tmp_path}/a/steps", "+callbacks.steps.every_n_train_steps=5",
             "+callbacks.steps.save_top_k=-1", "+callbacks.steps.filename='s{step}'",
             "trainer.deterministic=true", "data.cutout=4", *extra]
    full = compose_config(smoke_overrides(*every), output_dir=tmp_path / "a")
    run(full)
    resumed = compose_config(smoke_overrides(*every, f"ckpt_path='{tmp_path}/a/steps/sstep=5.ckpt'"),
                             output_dir=tmp_path / "b")
    resumed.callbacks.steps.dirpath = str(tmp_path / "b" / "steps")
    run(resumed)
    a = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert a["global_step"] == b["global_step"] == 16
    assert a["state_dict"].keys() == b["state_dict"].keys() and len(a["state_dict"]) > 0
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    return full, resumed


def test_mid_epoch_resume_gives_the_same_weights(tmp_path):
    run_and_resume_from_step_5(tmp_path)

def test_range_test_task_writes_its_outputs_and_leaves_no_training(tmp_path):
    cfg = compose_config(smoke_overrides("task=lr_range_test", "range_test.num_steps=30"), output_dir=tmp_path)
    found = run(cfg)
    assert found is not None and 1e-5 < found < 10
    for name in ("lr_range_test.png", "lr_range_test.csv", "lr_range_test.json"):
        assert (tmp_path / name).exists(), name
    assert RangeTestResult.from_json(tmp_path / "lr_range_test.json").lr == found
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "tensorboard" / "schedule.png").exists()
    assert "train/loss" not in scalars(tmp_path)  # the task stops after the test: no training steps
    record = read_result(tmp_path)  # a sweep of range tests reads each job's LR from it
    assert record["status"] == "completed" and record["lr"]["max_lr"] == found == record["found"]["scheduler.max_lr"]
    assert record["lr"]["search_steps"] >= 30
    assert (tmp_path / "config.yaml").read_text().startswith(f"# lr_source: {record['lr']['source']}\n")


def test_mid_epoch_resume_of_an_auto_run_is_bitwise_and_runs_no_second_range_test(tmp_path):
    full, resumed = run_and_resume_from_step_5(tmp_path, "scheduler.max_lr=auto", "range_test.num_steps=20",
                                               "test=false")
    assert (tmp_path / "a" / "lr_range_test.json").exists() and not (tmp_path / "b" / "lr_range_test.json").exists()
    assert resumed.scheduler.max_lr == full.scheduler.max_lr != "auto"
    # the resumed run still says how its LR was found, and what that search cost (the first run's, from the checkpoint)
    first, again = read_result(tmp_path / "a")["lr"], read_result(tmp_path / "b")["lr"]
    assert first["source"].startswith("range_test (") and first["search_steps"] > 20
    assert again == {**first, "source": f"checkpoint: {first['source']}"}
    assert (tmp_path / "b" / "config.yaml").read_text().splitlines()[0] == f"# lr_source: checkpoint: {first['source']}"

def test_last_checkpoint_holds_the_final_weights_when_max_steps_ends_mid_epoch(tmp_path):
    cfg = compose_config(smoke_overrides("trainer.max_steps=11", "test=false"), output_dir=tmp_path)
    run(cfg)
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"] == 11


def test_a_max_steps_stop_before_the_first_epoch_ends_validates_once_and_keeps_a_best_checkpoint(tmp_path):
    """Lightning validates at epoch ends only: a run stopped by max_steps in its first epoch warned that val/acc was
    never logged ("HINT: Did you call log('val/acc')") and kept no best checkpoint. The stop now validates its last
    weights inside the fit, once: the best checkpoint holds them, scored with the val/acc result.json records."""
    _, said = run_in_process(smoke_overrides("trainer.max_steps=5", "test=false"), tmp_path)  # 8 steps an epoch
    assert "could not find the monitored key" not in said, said
    result = read_result(tmp_path)
    best = glob.glob(str(tmp_path / "checkpoints" / "best-*.ckpt"))
    assert len(best) == 1, os.listdir(tmp_path / "checkpoints")
    checkpoint = torch.load(best[0], map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == result["steps"] == 5
    scores = [v["best_model_score"] for k, v in checkpoint["callbacks"].items() if "'monitor': 'val/acc'" in k]
    assert [float(s) for s in scores] == [pytest.approx(result["metrics"]["val/acc"])]
    assert [step for step, _ in scalars(tmp_path)["val/acc"]] == [4]  # validated once, at the last step


def test_divergence_is_a_result_and_keeps_the_last_good_checkpoint(tmp_path):
    import math

    # epoch 0 trains normally (checkpointed), then the LR jumps to 1e6 and the loss goes non-finite
    cfg = compose_config(smoke_overrides("scheduler=piecewise", "~scheduler.max_lr", "scheduler.knots=[0,1,1,2]",
                                         "scheduler.values=[0.05,0.05,1e6,1e6]", "test=false"), output_dir=tmp_path)
    value = run(cfg)
    assert value == -math.inf  # the worst value, for a sweeper to rank
    result = read_result(tmp_path)
    assert result["status"] == "diverged" and "non-finite training loss" in result["reason"]
    assert result["steps"] >= 8 and "lr 1e+06" in result["reason"]
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 8  # the end of epoch 0, not the broken weights
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())
    assert logged_hparams(tmp_path)["status"] == "diverged"


def test_hparams_hold_what_a_researcher_compares(tmp_path):
    cfg = compose_config(smoke_overrides("trainer.max_epochs=1", "test=false"), output_dir=tmp_path)
    run(cfg)
    hparams = logged_hparams(tmp_path)
    assert len(hparams) < 30 and not any("_target_" in k or "dirpath" in k for k in hparams)
    assert hparams["scheduler/max_lr"] == 0.2 and hparams["scheduler/max_lr_source"] == "config"
    assert hparams["network"] == "small" and hparams["optimizer"] == "SGD" and hparams["schedule"] == "one_cycle"
    assert hparams["status"] == "completed" and hparams["data/batch_size"] == 32
    result = read_result(tmp_path)
    tags = scalars(tmp_path)
    assert result["status"] == "completed" and result["steps"] == 8
    assert result["metrics"]["val/acc"] == pytest.approx(sorted(tags["val/acc"])[-1][1])
    assert result["objective"] == result["metrics"]["val/acc"]


def test_sigint_mid_epoch_saves_a_checkpoint_and_resume_continues_in_the_same_run(tmp_path):
    """Ctrl-C: a resumable mid-epoch last.ckpt and exit 130; ckpt_path=<run dir>/checkpoints/last.ckpt continues in
    that run directory (one TensorBoard run, no repeated steps) and ends with the uninterrupted run's weights."""
    import signal

    from train import run_from_overrides

    args = smoke_overrides("data.num_train=512", "trainer.max_epochs=4", "trainer.deterministic=true", "test=false",
                           "+callbacks.steps._target_=pytorch_lightning.callbacks.ModelCheckpoint",
                           "+callbacks.steps.every_n_train_steps=3", "+callbacks.steps.dirpath=${output_dir}/steps")
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    run_from_overrides(args, ref_dir)  # the uninterrupted reference: only its weights are compared, in-process
    # forked (conftest.start_train_forked): a process of its own with Python's own SIGINT handler, as from a shell
    run = start_train_forked([*args, f"hydra.run.dir={run_dir}"], cwd=tmp_path, merge_stderr=True, timeout=120)
    run.wait_until(lambda: glob.glob(str(run_dir / "steps" / "*.ckpt")), "step checkpoint", timeout=120)
    run.send_signal(signal.SIGINT)
    proc = run.wait()
    out = proc.stdout
    assert proc.returncode == 130, out[-3000:]
    assert "ckpt_path=" in out and "Traceback" not in out
    interrupted = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    total = 4 * 16
    assert 0 < interrupted["global_step"] < total
    record = read_result(run_dir)  # what was logged before Ctrl-C stays in result.json (it had no metrics)
    assert record["status"] == "interrupted" and record["steps"] == interrupted["global_step"]
    assert ("train/loss" in record["metrics"]) == (interrupted["global_step"] >= 4)  # logged at step 4, 8, ...
    assert not [k for k in record["metrics"] if k.startswith("lr-")]
    resumed = run_train_forked([*args, f"hydra.run.dir={tmp_path / 'elsewhere'}",
                                f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = torch.load(ref_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    b = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert a["global_step"] == b["global_step"] == total
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    steps = [s for s, _ in scalars(run_dir)["train/lr"]]
    # every step Lightning logs on (smoke: log_every_n_steps=4) logged exactly once across both parts
    assert sorted(steps) == [s for s in range(total) if (s + 1) % 4 == 0]
    assert not (tmp_path / "elsewhere" / "checkpoints").exists()
    log = (run_dir / "train.log").read_text()  # the run's log goes on in its own folder, not only in Hydra's new one
    assert log.count("Interrupted (SIGINT") == 1 and f"resume: continuing in {run_dir}" in log
    assert log.index("Interrupted (SIGINT") < log.index("completed in ")


@pytest.mark.parametrize("content", [b"", b"just some text\n", None])
def test_unreadable_checkpoints_are_named(tmp_path, content, smoke_run):
    path = tmp_path / "bad.ckpt"
    if content is None:  # a truncated real checkpoint
        good = (smoke_run[0] / "checkpoints" / "last.ckpt").read_bytes()
        path.write_bytes(good[: len(good) // 2])
    else:
        path.write_bytes(content)
    cfg = compose_config(smoke_overrides(f"ckpt_path={path}"), output_dir=tmp_path / "out")
    with pytest.raises(ValueError, match=f"ckpt_path: {path} is not a readable checkpoint"):
        run(cfg)


@pytest.mark.parametrize("change, message", [
    ("scheduler=cyclic", "schedule: checkpoint 'one_cycle', config 'cyclic'"),
    ("trainer.max_epochs=5", "total_steps: checkpoint 48, config 80"),  # more epochs: its one cycle would stretch
])
def test_a_finished_checkpoint_resumed_with_another_schedule_is_refused_and_its_records_stand(
        smoke_run, tmp_path, change, message):
    """The resume continues in the finished run's directory; refused before its first step, it leaves that run's
    result.json and config.yaml as they were (they said "running" and the refused config)."""
    out, _ = smoke_run
    before = {name: (out / name).read_text() for name in ("result.json", "config.yaml")}
    cfg = compose_config(smoke_overrides("trainer.max_epochs=3", "data.num_train=1024", "data.batch_size=64", change,
                                         f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}"), output_dir=tmp_path)
    with pytest.raises(ValueError, match=message):
        run(cfg)
    assert cfg.output_dir == str(out)  # it did resume in the finished run's directory
    assert {name: (out / name).read_text() for name in before} == before
    assert json.loads(before["result.json"])["status"] == "completed"


def test_a_run_uses_the_threads_it_reports(tmp_path, caplog):
    import logging

    before = torch.get_num_threads()
    cfg = compose_config(smoke_overrides("trainer.max_epochs=1", "test=false", "speed.threads=1"), output_dir=tmp_path)
    try:
        with caplog.at_level(logging.INFO, logger="train"):
            run(cfg)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert any(r.getMessage().startswith("device") and "threads 1 (speed.threads)" in r.getMessage()
               for r in caplog.records), caplog.text


def test_resuming_a_finished_run_keeps_its_metrics_and_objective(tmp_path):
    """A resume from the last checkpoint of a run that had finished trains no step and validates nothing; its
    result.json must keep the validation metrics and the objective the first ending recorded (they were erased)."""
    overrides = smoke_overrides("trainer.max_epochs=1")
    first = run(compose_config(overrides, output_dir=tmp_path))
    before = read_result(tmp_path)
    assert before["status"] == "completed" and before["objective"] == first and "val/loss" in before["metrics"]
    again = run(compose_config([*overrides, f"ckpt_path={tmp_path / 'checkpoints' / 'last.ckpt'}"],
                               output_dir=tmp_path))
    after = read_result(tmp_path)
    assert after["status"] == "completed" and after["steps"] == before["steps"]
    assert again == first and after["objective"] == before["objective"]
    for key, value in before["metrics"].items():
        assert after["metrics"].get(key) == pytest.approx(value), key


@pytest.mark.parametrize("search, train_steps, expected", [
    ({"search_s": 3.0, "search_steps": 50, "source": "range_test"}, 400, "50 optimizer steps: 0.12x the training's 400"),
    ({"search_s": 3.0, "search_steps": 900, "source": "range_test"}, 30, "900 optimizer steps: 30x the training's 30; "
     "on runs this short a sweep of a few fixed max_lr"),
    ({"search_s": 0.0, "search_steps": 0, "source": "config"}, 30, None),   # no search: no line
])
def test_the_search_cost_line(caplog, search, train_steps, expected):
    from callbacks.run.console import log_search_cost

    with caplog.at_level("INFO", logger="train"):
        log_search_cost(search, train_steps)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("lr search")]
    assert (lines == []) if expected is None else (len(lines) == 1 and expected in lines[0]), lines


def test_the_tensorboard_command_quotes_a_run_directory_with_spaces(tmp_path):
    """hydra.run.dir='runs/run dir é' printed '--logdir runs/run dir é/tensorboard': pasted, three arguments."""
    from callbacks.run.console import tensorboard_command

    folder = tmp_path / "run dir é" / "tensorboard"
    program, flag, logdir = shlex.split(tensorboard_command(str(folder)))
    assert flag == "--logdir" and logdir == str(folder) and os.path.exists(program)

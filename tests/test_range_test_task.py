"""``train.py task=lr_range_test``: the header first, the range test's progress (also into a pipe), one line with the
LR found, and the curve and figure in TensorBoard beside the files; ``~logger``: the files alone."""
from __future__ import annotations

import glob
import os
import re
import shlex

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from callbacks.range_test.finder import RangeTestResult
from conftest import SHORT_TRIALS, compose_config, run_train_forked, smoke_overrides
from train import run


def tensorboard_tags(run_dir) -> dict:
    """kind ("scalars", "images") -> tag -> [(step, value)] (images: [step]) from a run's TensorBoard events."""
    tags: dict = {"scalars": {}, "images": {}}
    for path in glob.glob(os.path.join(run_dir, "tensorboard", "events.out.tfevents.*")):
        acc = EventAccumulator(path, size_guidance={"scalars": 0, "images": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            tags["scalars"].setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
        for tag in acc.Tags()["images"]:
            tags["images"].setdefault(tag, []).extend(e.step for e in acc.Images(tag))
    return tags


def test_task_prints_header_progress_and_lr_found_in_order_and_logs_the_curve_to_tensorboard(tmp_path):
    """As a user runs it, the progress bar on, stdout and stderr into one pipe (not a terminal)."""
    args = smoke_overrides("task=lr_range_test", "range_test.num_steps=20", "trainer.enable_progress_bar=true",
                           "range_test.trial_min_images=160", f"hydra.run.dir={tmp_path}")
    # train.py's command line in a forked process (conftest.run_train_forked), stdout and stderr into one file
    proc = run_train_forked(args, cwd=tmp_path, timeout=240, env_extra={"PYTHONUNBUFFERED": "1"}, merge_stderr=True)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:]
    result = RangeTestResult.from_json(tmp_path / "lr_range_test.json")
    sweep = re.search(r"LR range test +\S* +(\d+)/(\d+) +eta ", out)
    trials = re.search(r"max_lr trials +\S* +(\d+)/(\d+) +eta ", out)
    lines = re.findall(r"max_lr trials(?: #\d+)? +\S* +(\d+)/(\d+) +eta ", out)  # the first round, then more
    assert sweep and int(sweep.group(1)) == len(result.losses), out  # every sweep step counted
    # 160 images at batch 32 (the project's loader, whose sampler yields whole batches): 5 steps, within [4, 6]
    assert [(t["planned_steps"], t["images_per_step"]) for t in result.trials] == [(5, 32)] * len(result.trials)
    assert "trials of 5 steps (160 images)" in result.source
    planned = len(result.trials) * result.trials[0]["planned_steps"]  # a diverged trial's line ends full too
    assert trials and all(done == total for done, total in lines), out
    assert sum(int(total) for _, total in lines) == planned, out
    header = out.index("schedule    ")
    assert "not trained; the LR range test: 20 steps, then max_lr trials" in out[header:].splitlines()[0]
    assert out.index("run dir     ") < sweep.start() < trials.start() < out.index("lr found    ")
    assert f"lr found    max_lr = {result.lr:.4g}" in out and result.source in out
    assert f"tensorboard --logdir {tmp_path / 'tensorboard'}" in out
    # the command that trains with what it found: the same overrides, the task gone, the LR found as max_lr
    command = shlex.split(re.search(r"train with  (python train\.py .*)", out).group(1))
    kept = [a for a in args if not a.startswith(("task=", "hydra."))]
    assert command == ["python", "train.py", *kept, f"scheduler.max_lr={result.lr:.4g}"]
    trained = compose_config(command[2:], output_dir=tmp_path / "next")
    assert trained.task.name == "train" and trained.scheduler.max_lr == pytest.approx(result.lr, rel=1e-3)

    tags = tensorboard_tags(tmp_path)
    finite = [(k, v) for k, v in enumerate(result.losses) if v == v]
    assert [step for step, _ in tags["scalars"]["lr_range_test/loss"]] == [k for k, _ in finite]
    assert [v for _, v in tags["scalars"]["lr_range_test/lr"]] == pytest.approx(result.lrs, rel=1e-6)
    assert "lr_range_test/smoothed_loss" in tags["scalars"] and tags["images"]["lr_range_test/curve"] == [0]
    assert not any(tag.startswith("train/") for tag in tags["scalars"])  # nothing trained


def test_task_without_loggers_writes_its_files_and_no_tensorboard(tmp_path):
    cfg = compose_config(smoke_overrides("task=lr_range_test", "range_test.num_steps=15",
                                         "range_test.trial_factors=null", "~logger"), output_dir=tmp_path)
    found = run(cfg)
    assert found == RangeTestResult.from_json(tmp_path / "lr_range_test.json").lr
    assert (tmp_path / "lr_range_test.png").exists() and not (tmp_path / "tensorboard").exists()


def test_the_header_says_how_an_auto_lr_will_be_found():
    from callbacks.run.console import lr_plan
    from train import auto_keys, runs_trials

    def plan(*overrides):
        cfg = compose_config(["experiment=smoke", *overrides])
        return lr_plan(cfg, auto_keys(cfg), runs_trials(cfg))

    assert plan() == "config"
    assert plan("scheduler.max_lr=auto", "range_test.num_steps=50") == (
        "max_lr found by the LR range test: 50 steps, then max_lr trials at 0.3x, 1x, 3x, 10x and one between the best "
        "and the next, blended with where a step moves the weights 3%")
    assert plan("scheduler.max_lr=auto", "range_test.trial_refine=false", "range_test.update_share=null").endswith(
        "trials at 0.3x, 1x, 3x, 10x")
    assert plan("scheduler.max_lr=auto", "range_test.update_share=0.05").endswith("moves the weights 5%")
    assert plan("scheduler.max_lr=auto", "optimizer=adagrad").endswith(
        "moves the weights 3%; Adagrad: carried to the run's LR peak")
    assert plan("scheduler.max_lr=auto", "optimizer=adagrad", "+optimizer.initial_accumulator_value=0.1").endswith("3%")
    assert plan("scheduler.max_lr=auto", "range_test.trial_factors=null") == \
        "max_lr found by the LR range test: 100 steps"
    assert plan("scheduler=cyclic", "scheduler.max_lr=auto", "scheduler.base_lr=auto", "range_test=accuracy") == \
        "max_lr and base_lr found by the accuracy range test: 4 epochs"
    assert plan("scheduler.max_lr=auto", "ckpt_path=last.ckpt") == "auto: read from the checkpoint"
    assert plan("task=lr_range_test").startswith("not trained; the LR range test: 100 steps, then max_lr trials")


def test_an_accuracy_test_that_finds_no_bounds_leaves_its_points_and_a_failed_result(tmp_path):
    """A ramp far below any LR that learns (to 1e-6): no bounds. The run stops with the points it saw, as before,
    and now also leaves them to read off by eye: the figure, the CSV and the JSON (every accuracy point), and
    result.json says failed, with the same reason."""
    from callbacks.run.result_file import read_result

    overrides = [o for o in smoke_overrides() if o not in SHORT_TRIALS]  # (the accuracy test runs no trials)
    cfg = compose_config([*overrides, "task=lr_range_test", "range_test=accuracy", "range_test.max_lr=1e-6",
                          "range_test.num_steps=20", "range_test.eval_every=5"], output_dir=tmp_path)
    with pytest.raises(ValueError, match=r"never rose above its starting value.*Validation accuracy by LR") as err:
        run(cfg)
    assert str(err.value).endswith(f"(its points: {tmp_path}/accuracy_range_test.png)")
    saved = RangeTestResult.from_json(tmp_path / "accuracy_range_test.json")
    assert saved.suggestions == {} and saved.base_lr is None and "no bounds found" in saved.status
    assert [e["step"] for e in saved.evals] == [-1, 4, 9, 14, 19] and len(saved.losses) == 20
    assert (tmp_path / "accuracy_range_test.png").read_bytes()[:4] == b"\x89PNG"
    assert len((tmp_path / "accuracy_range_test.csv").read_text().splitlines()) == 1 + 1 + 20  # header, start, steps
    result = read_result(tmp_path)
    assert result["status"] == "failed" and result["reason"] == str(err.value)


def test_the_train_command_after_the_range_test_puts_the_lr_where_the_schedule_reads_it():
    """Piecewise (both CIFAR-10 recipes) takes absolute LRs in scheduler.values: the command said optimizer.lr=...,
    which the schedule ignores (the run trained at the recipe's 1.5 peak). Its values are scaled instead."""
    from callbacks.run.console import _override_value, lr_overrides
    from callbacks.schedules.shapes import piecewise

    recipe = compose_config(["experiment=cifar10_fast"], output_dir="o")
    found = lr_overrides(recipe.scheduler, 0.5, None)
    assert list(found) == ["scheduler.values"] and found["scheduler.values"] == pytest.approx([0.1, 0.5, 0.035])
    command = [f"{key}={_override_value(value)}" for key, value in found.items()]
    trained = compose_config(["experiment=cifar10_fast", *command], output_dir="o")
    lrs = [piecewise(step, 100, **{k: v for k, v in trained.scheduler.items() if not k.startswith("_")})[0]
           for step in range(100)]
    assert max(lrs) == pytest.approx(0.5, rel=1e-2)  # the run peaks at the LR found (within a step), in the recipe's shape
    assert lr_overrides({"max_lr": 0.2, "base_lr": 0.01}, 0.3, 0.02) == {"scheduler.max_lr": 0.3,
                                                                        "scheduler.base_lr": 0.02}
    assert lr_overrides({}, 0.3, 0.02) == {"optimizer.lr": 0.3}  # scheduler=none: the optimizer's constant LR

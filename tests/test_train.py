"""train.py end to end: a smoke run as a user runs it, resume, and bad input caught before training."""
import glob
import json
import os
import re
import shlex

import pytest
import torch
from hydra.errors import InstantiationException
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from omegaconf import OmegaConf

from callbacks.range_test.finder import RangeTestResult
from callbacks.run.result_file import read_result
from conftest import (ROOT, TEST_THREADS, compose_config, run_in_process, run_train, run_train_forked,
                      smoke_overrides, start_train_forked)
from train import run


def scalars(run_dir):
    tags = {}
    for path in glob.glob(os.path.join(run_dir, "tensorboard", "events.out.tfevents.*")):
        acc = EventAccumulator(path, size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            tags.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
    return tags


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

@pytest.mark.parametrize("overrides, error, words", [
    (["data.root=/nonexistent/cifar", "data.download=false"], FileNotFoundError, ["data.root", "/nonexistent/cifar"]),
    (["data=synthetic", "model.backbone.name=resnet1000"], InstantiationException, ["model.backbone.name", "resnet9"]),
    (["data.batch_size=0"], InstantiationException, ["data.batch_size"]),
    (["data.batch_size=-8"], InstantiationException, ["data.batch_size"]),
])
def test_bad_input_fails_before_training_with_a_clear_message(tmp_path, overrides, error, words):
    cfg = compose_config(["trainer=cpu", *overrides], output_dir=tmp_path)
    with pytest.raises(error) as e:
        run(cfg)
    for word in words:
        assert word in str(e.value)
    assert not (tmp_path / "checkpoints").exists()


def test_corrupt_batch_file_fails_before_training(tmp_path):
    from test_datamodules import write_fake_cifar

    write_fake_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"\x80garbage")
    cfg = compose_config(["trainer=cpu", f"data.root={tmp_path}", "data.batch_size=8"], output_dir=tmp_path / "out")
    with pytest.raises(ValueError, match="test_batch"):
        run(cfg)


def test_unknown_option_from_the_command_line(tmp_path):
    result = run_train_forked(["experiment=smoke", "trainer=tpu9000", f"hydra.run.dir={tmp_path}"], cwd=tmp_path,
                              timeout=120)
    assert result.returncode != 0
    assert "trainer/tpu9000" in result.stderr and "Available options" in result.stderr


def test_range_test_task_writes_its_outputs_and_leaves_no_training(tmp_path):
    cfg = compose_config(smoke_overrides("task=lr_range_test", "range_test.num_steps=30"), output_dir=tmp_path)
    found = run(cfg)
    assert found is not None and 1e-5 < found < 10
    for name in ("lr_range_test.png", "lr_range_test.csv", "lr_range_test.json"):
        assert (tmp_path / name).exists(), name
    assert RangeTestResult.from_json(tmp_path / "lr_range_test.json").lr == found
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "tensorboard" / "schedule.png").exists()
    assert "train/loss" not in scalars(tmp_path)  # the task stops after the test: no training steps


def logged_hparams(run_dir) -> dict:
    """The hyper-parameters a run logged to TensorBoard's HParams dashboard, read back from the event files."""
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    out = {}
    for path in glob.glob(os.path.join(run_dir, "tensorboard", "events.out.tfevents.*")):
        acc = EventAccumulator(path)
        acc.Reload()
        try:
            contents = acc.PluginTagToContent("hparams").values()
        except KeyError:  # an event file without hyper-parameters
            continue
        for content in contents:
            data = HParamsPluginData.FromString(content)
            if data.HasField("session_start_info"):
                for key, value in data.session_start_info.hparams.items():
                    out[key] = value.number_value if value.HasField("number_value") else value.string_value
    return out


def one_cycle_lrs_from_torch(max_lr, total, shape):
    """Independent oracle: what torch's OneCycleLR sets at optimizer steps 0..total-1."""
    import warnings

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=max_lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total, **shape)
    lrs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(total):
            lrs.append(opt.param_groups[0]["lr"])
            sched.step()
    return lrs


@pytest.fixture(scope="module")
def auto_run(tmp_path_factory):
    """An auto run as a user runs it (train.py's command line, forked: conftest.run_train_forked): the range test,
    then one-cycle at the LR it found."""
    out = tmp_path_factory.mktemp("auto")
    result = run_train_forked(smoke_overrides("scheduler.max_lr=auto", "range_test.num_steps=30",
                                              f"hydra.run.dir={out}", "print_config=true"), cwd=out)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result, RangeTestResult.from_json(out / "lr_range_test.json").lr


def test_auto_run_trains_at_the_found_lr_and_every_record_says_so(auto_run):
    out, result, found = auto_run
    assert 1e-5 < found < 10 and found != 10.0
    # the logged LR is torch's OneCycleLR at the found peak, on every step Lightning logs on (log_every_n_steps=4)
    logged = sorted(scalars(out)["train/lr"])
    shape = dict(pct_start=0.45, anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0, three_phase=True,
                 base_momentum=0.85, max_momentum=0.95)
    total = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"]
    assert [s for s, _ in logged] == [s for s in range(total) if (s + 1) % 4 == 0]
    torch_lrs = one_cycle_lrs_from_torch(found, total, shape)
    assert [v for _, v in logged] == pytest.approx([torch_lrs[s] for s, _ in logged], rel=1e-5)
    # TensorBoard HParams, the resolved config beside .hydra/, the checkpoint and the printed config hold it too
    hparams = logged_hparams(out)
    assert hparams["scheduler/max_lr"] == pytest.approx(found, rel=1e-6)
    assert hparams["scheduler/max_lr_source"].startswith("range_test")
    assert OmegaConf.load(out / "config.yaml").scheduler.max_lr == found
    first_line = (out / "config.yaml").read_text().splitlines()[0]  # a comment: the file still loads as the config
    assert first_line == f"# lr_source: {read_result(out)['lr']['source']}" and "trials" in first_line
    assert OmegaConf.load(out / ".hydra" / "config.yaml").scheduler.max_lr == "auto"  # what was asked
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["run_config"]["scheduler"]["max_lr"] == found
    assert ckpt["callbacks"]["LRSchedule"]["params"]["max_lr"] == found
    assert f"max_lr: {found}" in result.stdout and "max_lr: auto" not in result.stdout


def test_auto_run_prints_its_header_before_the_range_test_and_then_the_lr_found(auto_run):
    out, result, found = auto_run
    lines = (out / "train.log").read_text().splitlines()  # the console's log lines, in order

    def first(words):
        return next(i for i, line in enumerate(lines) if words in line)

    # the header says how max_lr will be found; the range test's own warning (30 steps on 8 batches) comes after it
    header = first("peak LR auto (max_lr found by the LR range test: 30 steps, then max_lr trials at 0.3x")
    assert header < first("the sweep needs 30") < first("lr found    max_lr") < first("completed in")
    assert f"lr found    max_lr = {found:.4g} in " in lines[first("lr found    max_lr")]
    assert lines[first("lr found    max_lr")].endswith(read_result(out)["lr"]["source"])  # the lr_source of result.json
    assert not re.search(r"\d+/\d+ +eta ", result.stdout)  # trainer.enable_progress_bar=false: no range-test progress
    # the closing summary weighs the search against the training it tuned, from what result.json records
    record = read_result(out)
    share = record["lr"]["search_steps"] / record["steps"]
    cost = lines[first("lr search   ")]
    # ... and so does the forecast before the search starts: an upper bound of what it did, for the same training
    plan = re.search(r"LR search: at most \d+ sweep steps .* = (\d+) optimizer steps .*the training's (\d+)",
                     lines[first("LR search: at most")])
    assert header < first("LR search: at most") < first("the sweep needs 30") and plan, lines[header + 1]
    assert int(plan.group(1)) >= record["lr"]["search_steps"] and int(plan.group(2)) == record["steps"]
    assert first("completed in") < first("lr search   ")
    assert f"{record['lr']['search_steps']} optimizer steps: {share:.2g}x the training's {record['steps']}" in cost
    assert ("a sweep of a few fixed max_lr" in cost) == (share > 1), cost


def test_auto_run_equals_a_run_given_the_found_lr(auto_run, tmp_path):
    """The range test phase leaves nothing behind: training at the found LR by hand gives the same weights."""
    out, _, found = auto_run
    from train import run_from_overrides  # in-process: only its weights are compared

    run_from_overrides(smoke_overrides(f"scheduler.max_lr={found}"), tmp_path)
    a = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


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

def test_auto_in_any_case_is_auto_and_other_words_say_what_takes_it(tmp_path):
    """scheduler.max_lr=Auto stopped with "must be a number > 0, got 'Auto'"; optimizer.lr=auto with torch's
    "'<' not supported between instances of 'str' and 'float'". Both now read plainly, before any data is read."""
    from train import auto_keys

    cfg = compose_config(smoke_overrides("scheduler.max_lr=Auto"), output_dir=tmp_path)
    assert auto_keys(cfg) == ["max_lr"] and cfg.scheduler.max_lr == "auto"
    cfg = compose_config(smoke_overrides("scheduler.max_lr=autp"), output_dir=tmp_path)
    with pytest.raises(ValueError, match=r"scheduler.max_lr must be a number or auto \(the LR range test finds it\), "
                                         r"got 'autp'"):
        run(cfg)
    for overrides in (["optimizer.lr=auto", "scheduler=none"], ["optimizer.lr=AUTO"]):
        cfg = compose_config(smoke_overrides(*overrides, "data.num_train=0"), output_dir=tmp_path)
        with pytest.raises(ValueError, match=r"optimizer.lr takes a number; auto goes in scheduler.max_lr .*"
                                             r"task=lr_range_test first"):
            run(cfg)


def test_auto_base_lr_needs_the_accuracy_test(tmp_path):
    cfg = compose_config(smoke_overrides("scheduler=cyclic", "scheduler.base_lr=auto", "scheduler.max_lr=0.4",
                                         "range_test.num_steps=20", "scheduler.step_size_up=1"), output_dir=tmp_path)
    with pytest.raises(ValueError, match="scheduler.base_lr=auto needs range_test=accuracy"):
        run(cfg)


def test_a_schedule_that_cannot_fit_the_run_fails_before_the_sweep(tmp_path, monkeypatch):
    """A warm-up as long as the run, with max_lr=auto: the schedule's own error (on the trials' length, the run's
    compressed) before the range test sweeps; it came after the sweep, at the first trial."""
    from callbacks.range_test.loss import LRRangeTest

    swept = []
    monkeypatch.setattr(LRRangeTest, "_one_sweep", lambda *args: swept.append(1))
    cfg = compose_config(smoke_overrides("scheduler=warmup", "scheduler.max_lr=auto", "scheduler.warmup_length=2",
                                         "range_test.num_steps=20"), output_dir=tmp_path)
    with pytest.raises(ValueError, match=r"scheduler.warmup_length must be shorter than training: got 2 epoch\(s\), "
                                         r"the run is 2 epoch\(s\) \(16 optimizer steps\)"):
        run(cfg)
    assert swept == [] and not (tmp_path / "checkpoints").exists()


def test_a_run_too_short_for_its_own_schedule_fails_before_the_search(tmp_path, monkeypatch):
    """One-cycle on a 2-step run (one batch an epoch, 2 epochs) with max_lr=auto: the schedule's error comes before
    the range test sweeps; it came after the whole search (350 optimizer steps, minutes on a CPU), at fit start."""
    from callbacks.range_test.loss import LRRangeTest

    swept = []
    monkeypatch.setattr(LRRangeTest, "_one_sweep", lambda *args: swept.append(1))
    cfg = compose_config(smoke_overrides("scheduler.max_lr=auto", "trainer.max_epochs=2",
                                         "trainer.limit_train_batches=1"), output_dir=tmp_path)
    with pytest.raises(ValueError, match=r"the run has only 2 optimizer steps: one-cycle with scheduler.pct_start"):
        run(cfg)
    assert swept == [] and not (tmp_path / "checkpoints").exists()


def test_auto_refuses_to_train_where_the_search_found_no_evidence(tmp_path, monkeypatch):
    """A search whose minimum sat at the sweep's last LR with no trial learned (issue 20: a ResNet-9 trained there,
    at chance): a plain error naming what to set, result.json says failed with the search's cost, nothing trains."""
    import train
    from callbacks.range_test.result import RangeTestResult

    searched = RangeTestResult(kind="loss", lrs=[0.01, 0.1, 1.0, 10.0], losses=[1.1] * 4, smoothed=[1.1] * 4,
                               suggestions={"loss_min": 10.0, "trials": 3.0}, rule="trials", lr=3.0,
                               settings={"suggestion": "loss_min"}, search_steps=150, elapsed_s=2.0,
                               trials=[{"lr": 3.0, "score": 1.1, "learned": False, "chance_loss": 1.0986,
                                       "steps": 50, "planned_steps": 50}])
    monkeypatch.setattr(train, "run_range_test", lambda cfg, model, datamodule: searched)
    cfg = compose_config(smoke_overrides("scheduler.max_lr=auto"), output_dir=tmp_path)
    with pytest.raises(ValueError, match=r"no evidence for any max_lr .*Give scheduler.max_lr a number"):
        run(cfg)
    record = read_result(tmp_path)
    assert record["status"] == "failed" and "range_test.num_steps" in record["reason"]
    assert record["lr"]["max_lr"] is None and record["lr"]["search_steps"] == 150
    assert not (tmp_path / "checkpoints").exists()


def test_bad_schedule_shape_fails_before_the_range_test(tmp_path):
    cfg = compose_config(smoke_overrides("scheduler.max_lr=auto", "scheduler.pct_start=0.9"), output_dir=tmp_path)
    with pytest.raises(ValueError, match="scheduler.pct_start"):
        run(cfg)
    assert not (tmp_path / "lr_range_test.json").exists()


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


def test_an_experiment_key_that_does_not_fit_the_chosen_schedule_is_named(tmp_path):
    cfg = compose_config(smoke_overrides("scheduler=piecewise"), output_dir=tmp_path)
    with pytest.raises(ValueError, match=r"scheduler.max_lr does not apply to the piecewise schedule.*takes: knots"):
        run(cfg)


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


def test_offline_download_fails_with_a_short_message_and_no_traceback(tmp_path):
    """No network: the download error says what failed and the two ways out, without a traceback wall."""
    sitecustomize = tmp_path / "offline" / "sitecustomize.py"
    sitecustomize.parent.mkdir()
    sitecustomize.write_text(
        "import socket\n"
        "def _refuse(*a, **k):\n"
        "    raise OSError('network is unreachable (test)')\n"
        "socket.create_connection = _refuse\n"
        "socket.getaddrinfo = _refuse\n")
    # forked (conftest.run_train_forked): the child runs the sitecustomize found on its PYTHONPATH, as start-up would
    result = run_train_forked(["trainer=cpu", f"data.root={tmp_path / 'data'}", "data.download=true",
                               f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path,
                              env_extra={"PYTHONPATH": f"{sitecustomize.parent}:{ROOT}"})
    out = result.stdout + result.stderr
    assert result.returncode == 2, out[-3000:]
    assert "downloading CIFAR-10 from www.cs.toronto.edu failed" in out
    assert "data.root" in out and "data.download=false" in out and "network access" in out
    assert "Traceback" not in out


def test_a_start_up_error_is_one_plain_message(tmp_path):
    # a plain `python train.py` subprocess: the command line's exit path itself, start-up included
    result = run_train(smoke_overrides("data.batch_size=-8", f"hydra.run.dir={tmp_path}"), cwd=tmp_path)
    assert result.returncode == 2
    assert "data.batch_size must be a positive integer, got -8" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) <= 3
    full = run_train_forked(smoke_overrides("data.batch_size=-8", f"hydra.run.dir={tmp_path}"), cwd=tmp_path,
                            env_extra={"HYDRA_FULL_ERROR": "1"})
    assert "Traceback" in full.stderr  # asked for: the whole stack


@pytest.mark.parametrize("overrides, words", [
    (["trainer.max_epochs=0"], ["trainer.max_epochs", "got 0"]),
    (["trainer.max_steps=0"], ["trainer.max_steps", "got 0"]),
    (["trainer.limit_train_batches=0"], ["trainer.limit_train_batches", "got 0"]),
    (["trainer.accumulate_grad_batches=0"], ["trainer.accumulate_grad_batches", "got 0"]),
    (["data=cifar10"], ["data.num_train does not apply to data=", "experiment=smoke"]),
    (["+model.backbone.foo=1"], ["model.backbone.foo does not apply to model="]),  # it named model.foo
    (["ckpt_path=/nonexistent/last.ckpt"], ["ckpt_path: no such file /nonexistent/last.ckpt"]),
    # a typo stopped the run with Lightning's error at the end of the first epoch (after any LR search)
    (["monitor=val/accuracy"], ["monitor=val/accuracy: this model logs no such metric", "val/acc, ", "val/f1_macro",
                                "test/acc"]),
    # airbench pools an 8-pixel image to nothing: torch's traceback at the first step (after any LR search)
    (["model=airbench", "data.image_size=8"], ["data.image_size=8 is too small for model=airbench",
                                               "use data.image_size=9 or more"]),
])
def test_more_bad_inputs_fail_before_training_with_a_named_message(tmp_path, overrides, words):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from conftest import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=smoke_overrides(*overrides), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)  # so messages can name the experiment, as under `python train.py`
        with open_dict(cfg):
            cfg.output_dir = str(tmp_path)
            del cfg["hydra"]
        try:
            with pytest.raises((ValueError, FileNotFoundError)) as err:
                run(cfg)
        finally:
            HydraConfig.instance().cfg = None  # no Hydra job left behind for the tests after it (pytest-xdist order)
    GlobalHydra.instance().clear()
    for word in words:
        assert word in str(err.value), str(err.value)
    assert not (tmp_path / "checkpoints").exists()


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


def test_a_bad_speed_threads_is_a_start_up_error(tmp_path):
    cfg = compose_config(smoke_overrides("speed.threads=0"), output_dir=tmp_path)
    with pytest.raises(ValueError, match=r"speed\.threads .* got 0"):
        run(cfg)
    assert not (tmp_path / "checkpoints").exists()


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

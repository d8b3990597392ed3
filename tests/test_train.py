"""train.py end to end: a smoke run as a user runs it, resume, and bad input caught before training."""
import glob
import os

import pytest
import torch
from hydra.errors import InstantiationException
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from conftest import compose_config, run_train, smoke_overrides
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
    result = run_train(["experiment=smoke", f"hydra.run.dir={out}", "~callbacks.progress_bar",
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
    assert "parameters" in result.stdout and "model" in result.stdout  # parameter count and config tree
    assert (out / ".hydra" / "config.yaml").exists() and (out / "tensorboard" / "schedule.png").exists()


def test_resuming_with_a_longer_run_is_refused_not_stretched(smoke_run, tmp_path):
    out, _ = smoke_run
    last = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 3 * 16
    result = run_train(["experiment=smoke", f"hydra.run.dir={tmp_path}", "~callbacks.progress_bar",
                        "trainer.enable_progress_bar=false", f"ckpt_path={out / 'checkpoints' / 'last.ckpt'}",
                        "trainer.max_epochs=4"], cwd=tmp_path)
    # 4 epochs is 64 steps, the checkpoint's one-cycle planned 48: the schedule says so instead of stretching
    assert result.returncode != 0
    assert "48" in result.stderr and "64" in result.stderr, result.stderr[-2000:]
    assert torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"] == 48


def test_mid_epoch_resume_gives_the_same_weights(tmp_path):
    every = ["+callbacks.steps._target_=pytorch_lightning.callbacks.ModelCheckpoint",
             f"+callbacks.steps.dirpath={tmp_path}/a/steps", "+callbacks.steps.every_n_train_steps=5",
             "+callbacks.steps.save_top_k=-1", "+callbacks.steps.filename='s{step}'",
             "trainer.deterministic=true", "data.cutout=4"]
    full = compose_config(smoke_overrides(*every), output_dir=tmp_path / "a")
    run(full)
    resumed = compose_config(smoke_overrides(*every, f"ckpt_path='{tmp_path}/a/steps/sstep=5.ckpt'"),
                             output_dir=tmp_path / "b")
    resumed.callbacks.steps.dirpath = str(tmp_path / "b" / "steps")
    run(resumed)
    a = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    b = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert a["global_step"] == b["global_step"] == 16
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key


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
    result = run_train(["experiment=smoke", "trainer=tpu9000", f"hydra.run.dir={tmp_path}"], cwd=tmp_path, timeout=120)
    assert result.returncode != 0
    assert "trainer/tpu9000" in result.stderr and "Available options" in result.stderr


def test_range_test_task_writes_its_outputs_and_leaves_no_training(tmp_path):
    cfg = compose_config(smoke_overrides("task=lr_range_test", "range_test.num_steps=30"), output_dir=tmp_path)
    found = run(cfg)
    assert found is not None and 1e-5 < found < 10
    log_dir = tmp_path / "tensorboard"
    for name in ("lr_range_test.png", "lr_range_test.csv", "lr_range_test.json"):
        assert (log_dir / name).exists(), name
    tags = scalars(tmp_path)
    assert "train/loss" not in tags  # the task stops after the test: no training steps


def test_auto_max_lr_sets_the_one_cycle_peak_seen_in_the_logged_lr(tmp_path):
    import json

    cfg = compose_config(smoke_overrides("scheduler.max_lr=auto", "range_test.num_steps=30", "test=false"),
                         output_dir=tmp_path)
    run(cfg)
    found = json.loads((tmp_path / "tensorboard" / "lr_range_test.json").read_text())["chosen_lr"]
    from callbacks.schedules import one_cycle

    logged = sorted(scalars(tmp_path)["train/lr"])
    shape = {k: cfg.scheduler[k] for k in ("div_factor", "final_div_factor", "pct_start", "three_phase",
                                           "anneal_strategy", "base_momentum", "max_momentum")}
    expected = [one_cycle(step, len(logged), max_lr=found, **shape)[0] for step, _ in logged]
    assert [v for _, v in logged] == pytest.approx(expected, rel=1e-5)
    assert max(v for _, v in logged) < 0.1  # far from the smoke config's own peak of 0.2


def test_last_checkpoint_holds_the_final_weights_when_max_steps_ends_mid_epoch(tmp_path):
    cfg = compose_config(smoke_overrides("trainer.max_steps=11", "test=false"), output_dir=tmp_path)
    run(cfg)
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["global_step"] == 11

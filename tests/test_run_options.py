"""Run options around a training run: loggers (none, csv, optional packages), the debug= presets (each one run end
to end), and bad inputs that stop a run with one plain message and exit 2 (seed, another network's checkpoint, an
unusable run dir). The command lines run as train.py's ``__main__`` in forked processes (conftest.run_train_forked):
their exit status and console, without paying train.py's imports each time."""
import csv
import importlib.util
import json
import re
from pathlib import Path

import pytest

from conftest import CONF, compose_config, run_in_process, run_train_forked

ONE_THREAD = {"OMP_NUM_THREADS": "1"}
TINY = ["experiment=smoke", "trainer=cpu", "trainer.enable_progress_bar=false", "data.num_train=128",
        "data.num_val=64", "data.batch_size=32", "trainer.max_epochs=1"]


def options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def tiny(tmp_path, *extra, progress_bar=True):
    return [*TINY, *(["~callbacks.progress_bar"] if progress_bar else []), f"hydra.run.dir={tmp_path}", *extra]


def run_here(run_dir, *extra, progress_bar=True, max_epochs=True):
    """The tiny run in this process (conftest.run_in_process), for the tests that check what a run leaves behind
    and says, not how the process exits: returns what it logged and warned, as one text."""
    args = [*TINY, *(["~callbacks.progress_bar"] if progress_bar else []), *extra]
    return run_in_process(args if max_epochs else without_max_epochs(args), run_dir)[1]


def result_of(run_dir):
    return json.loads((run_dir / "result.json").read_text())


def one_plain_error(result):
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and len(lines) == 1, result.stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize("how", ["~logger", "logger=null"])
def test_a_run_without_a_logger_still_writes_its_result_and_figures(tmp_path, how):
    said = run_here(tmp_path, how)  # run_from_overrides turns logger=null into ~logger as train.py's main does
    assert result_of(tmp_path)["status"] == "completed"
    assert (tmp_path / "schedule.png").exists() and (tmp_path / "confusion_label.png").exists()
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()
    assert "completed in " in said  # the closing line was captured ...
    assert not (tmp_path / "tensorboard").exists() and "TensorBoard" not in said  # ... and no TensorBoard line


def test_a_run_without_callbacks(tmp_path):
    run_here(tmp_path, "~callbacks", progress_bar=False)
    assert result_of(tmp_path)["status"] == "completed"
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()  # train.py's own final save
    assert not list(tmp_path.glob("checkpoints/best-*.ckpt"))  # the checkpoint callbacks went with ~callbacks


def test_csv_logger_writes_metrics_csv(tmp_path):
    said = run_here(tmp_path, "logger=csv")
    assert result_of(tmp_path)["status"] == "completed"
    with open(tmp_path / "csv" / "metrics.csv") as f:
        columns = next(csv.reader(f))
    assert {"train/loss", "val/acc", "train/lr"} <= set(columns), columns
    assert f"metrics     {tmp_path / 'csv' / 'metrics.csv'}" in said
    assert "TensorBoard" not in said and not (tmp_path / "tensorboard").exists()


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed")
def test_wandb_without_the_package_is_one_line_naming_the_pip_command(tmp_path):
    line = one_plain_error(run_train_forked(tiny(tmp_path, "logger=wandb"), cwd=tmp_path, env_extra=ONE_THREAD))
    assert line == "Error: logger=wandb needs the wandb package, which is not installed: pip install wandb"
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is not None, reason="mlflow is installed")
def test_mlflow_without_the_package_is_named(tmp_path):
    from train import run

    with pytest.raises(ValueError, match=r"needs the mlflow package, which is not installed: pip install mlflow"):
        run(compose_config([*TINY, "logger=mlflow"], output_dir=tmp_path))


@pytest.mark.parametrize("name, expected", [
    ("default", {"max_epochs": 1, "detect_anomaly": False}),
    ("fdr", {"fast_dev_run": 5}),
    ("overfit", {"overfit_batches": 3, "max_epochs": 20, "log_every_n_steps": 1}),
    ("limit", {"max_epochs": 2, "limit_train_batches": 5, "limit_val_batches": 2, "limit_test_batches": 2,
               "log_every_n_steps": 1}),
    ("profiler", {"max_epochs": 1}),
])
def test_debug_presets_compose_over_an_experiment(name, expected):
    assert name in options("debug")
    cfg = compose_config(["experiment=smoke", f"debug={name}"])  # smoke sets max_epochs=3: debug= comes after it
    assert {k: cfg.trainer[k] for k in expected} == expected
    assert cfg.data.num_workers == 0


def test_every_debug_preset_is_tested():
    assert options("debug") == ["default", "fdr", "limit", "overfit", "profiler"]
    tested = {name for name in options("debug") if f"def test_debug_{name}_" in Path(__file__).read_text()}
    assert tested == set(options("debug")), "each debug= preset has an end-to-end test_debug_<name>_... here"


def without_max_epochs(args):
    """The tiny run's arguments less its max_epochs, so that the preset's own applies (smoke's is 3)."""
    return [a for a in args if a != "trainer.max_epochs=1"]


def test_debug_default_runs_one_epoch_in_outputs_debug(tmp_path):
    args = without_max_epochs([*TINY, "~callbacks.progress_bar", "debug=default"])  # no hydra.run.dir: the preset's
    result = run_train_forked(args, cwd=tmp_path, env_extra=ONE_THREAD)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dirs = list(tmp_path.glob("outputs/debug/*/*"))
    assert len(run_dirs) == 1 and not list(tmp_path.glob("outputs/20*")), list(tmp_path.rglob("result.json"))
    written = result_of(run_dirs[0])
    assert written["status"] == "completed" and written["epochs"] == 1 and written["steps"] == 4  # 128 / 32


def test_debug_fdr_runs_five_batches_and_keeps_no_checkpoint(tmp_path):
    run_here(tmp_path, "debug=fdr", "data.num_train=256")
    written = result_of(tmp_path)
    assert written["status"] == "completed" and written["steps"] == 5 and written["checkpoint"] is None
    assert not list(tmp_path.glob("checkpoints/*.ckpt"))


@pytest.mark.parametrize("preset", ["fdr", "limit"])
def test_debug_run_with_auto_lr_cuts_the_search_to_a_few_dozen_steps(tmp_path, preset):
    """A recipe with max_lr=auto (image_folder_resnet) under debug=fdr ran its whole search first: 350 optimizer
    steps (26 min on a folder of 480 images) before the 5 steps the preset is for. range_test=quick: every phase of
    the search still runs (sweep, trials, the LR into the config), in 20 + 5 x 4 steps for SGD."""
    said = run_here(tmp_path, f"debug={preset}", "data.num_train=256", "scheduler.max_lr=auto", max_epochs=False)
    written = result_of(tmp_path)
    assert written["status"] == "completed" and written["steps"] == {"fdr": 5, "limit": 10}[preset]
    assert 20 < written["lr"]["search_steps"] <= 20 + 5 * 4, written["lr"]
    assert written["lr"]["source"].startswith("range_test (") and "trials of 4 steps" in written["lr"]["source"]
    assert written["lr"]["max_lr"] > 0 and "at most 20 sweep steps + 5 trials x 4" in said


def test_debug_limit_runs_two_short_epochs(tmp_path):
    # the preset's max_epochs, not the command line's
    said = run_here(tmp_path, "debug=limit", "data.num_train=256", max_epochs=False)
    written = result_of(tmp_path)
    assert written["status"] == "completed" and written["steps"] == 10 and written["epochs"] == 2  # 2 x 5 batches
    assert "completed in " in said and "logging interval" not in said
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()


def test_debug_overfit_trains_twenty_epochs_on_the_same_three_batches(tmp_path):
    said = run_here(tmp_path, "debug=overfit", "~logger", max_epochs=False)  # it failed in Lightning's sampler swap before
    assert "completed in " in said and "logging interval" not in said  # the preset logs every step of its 3 batches
    written = result_of(tmp_path)
    assert written["status"] == "completed" and written["epochs"] == 20 and written["steps"] == 60  # 20 x 3
    assert written["metrics"]["train/acc"] == 1.0 and written["metrics"]["train/loss"] < 0.05, written["metrics"]


def test_overfit_batches_repeat_epoch_zeros_batches(tmp_path):
    """What debug=overfit trains on: the same images with the same augmentation keys in every epoch, from a sampler
    Lightning keeps (it swaps any but a SequentialSampler for one over single images)."""
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import SequentialSampler

    from datamodules.synthetic import SyntheticDataModule

    def first_batches(dm, epoch):
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        return [(images, key) for (images, _, key), _ in zip(loader, range(3))]

    dm = SyntheticDataModule(num_train=128, num_val=64, batch_size=32)
    dm.setup("fit")
    dm.trainer = pl.Trainer(overfit_batches=3, logger=False, default_root_dir=tmp_path)
    assert isinstance(dm.train_dataloader().sampler, SequentialSampler)
    for (a, key_a), (b, key_b) in zip(first_batches(dm, 0), first_batches(dm, 5)):
        assert key_a == key_b and torch.equal(a, b)
    dm.trainer = None  # an ordinary run: another order every epoch
    assert [k for _, k in first_batches(dm, 0)] != [k for _, k in first_batches(dm, 5)]


def test_debug_profiler_writes_its_report_in_the_run_dir(tmp_path):
    """With scheduler.max_lr=auto too: the range test's own Trainer runs without the profiler."""
    run_here(tmp_path, "debug=profiler", "~logger", "scheduler.max_lr=auto", "range_test.num_steps=20",
             "range_test.trial_factors=null")
    assert result_of(tmp_path)["status"] == "completed"
    report = (tmp_path / "fit-profiler.txt").read_text()
    assert report.startswith("FIT Profiler Report") and "run_training_batch" in report, report[:500]
    assert "TEST Profiler Report" in (tmp_path / "test-profiler.txt").read_text()


def test_a_required_key_left_out_is_one_plain_error_naming_it(tmp_path):
    """experiment=attributes without data.csv_path (a ??? in its config): it was a traceback. A START_UP_ERRORS
    error is what train.py's main prints as one line, exit 2 (the forked tests above show that path)."""
    from callbacks.run.config_checks import START_UP_ERRORS, plain_message
    from train import run

    with pytest.raises(START_UP_ERRORS) as caught:
        run(compose_config(["experiment=attributes"], output_dir=tmp_path))
    assert plain_message(caught.value) == ("data.csv_path has no value and this run needs one: add data.csv_path=... "
                                           "to the command line")


@pytest.mark.parametrize("extra, message", [
    (["optimizer.weight_decay=-1"], r"^optimizer \(SGD\): Invalid weight_decay value: -1 \(its keys: .*"
                                    r"optimizer.weight_decay=-1"),  # outside a Hydra job: the class, not the option
    (["optimizer=adamw", "optimizer.betas=[1.5,0.9]"], r"^optimizer \(AdamW\): Invalid beta parameter at index 0: "),
    (["data.image_size=abc"], r"^data.image_size must be an integer >= 1, got 'abc'"),
    # torch said only "'<' not supported between instances of 'str' and 'float'"
    (["optimizer.weight_decay=abc"], r"^optimizer \(SGD\): optimizer.weight_decay takes a number, got 'abc' \(its "),
    # a key the optimizer does not take: it was a traceback (TypeError) and exit 1
    (["+optimizer.betas=[0.9,0.99]"], r"^optimizer \(SGD\): .*unexpected keyword argument 'betas' \(its keys: "),
])
def test_bad_optimizer_and_data_numbers_are_named_before_anything_runs(tmp_path, extra, message):
    """torch's own messages named no key ("Invalid weight_decay value: -1"), and came only when Lightning built the
    optimizer; a word as the synthetic image size failed on a '<' between str and int."""
    from callbacks.run.config_checks import plain_message
    from train import run

    with pytest.raises(Exception) as caught:
        run(compose_config([*TINY, *extra], output_dir=tmp_path))
    assert re.search(message, plain_message(caught.value)), plain_message(caught.value)
    assert not (tmp_path / "result.json").exists()


@pytest.mark.parametrize("seed", ["abc", "1.5", "-1"])
def test_a_bad_seed_is_named(tmp_path, seed):
    if seed == "abc":  # as a user sees it
        line = one_plain_error(run_train_forked(tiny(tmp_path, f"seed={seed}"), cwd=tmp_path, env_extra=ONE_THREAD))
        assert line.startswith("Error: seed must be an integer from 0 to 4294967295") and "got 'abc'" in line
        return
    from train import run

    with pytest.raises(ValueError, match=r"^seed must be an integer from 0 to 4294967295 .* got"):
        run(compose_config([*TINY, f"seed={seed}"], output_dir=tmp_path))


def test_resuming_another_networks_checkpoint_names_both(tmp_path):
    first = tmp_path / "small"
    run_here(first, "~logger")  # the checkpoint to resume from, made in-process
    ckpt = first / "checkpoints" / "last.ckpt"
    line = one_plain_error(run_train_forked(tiny(tmp_path / "big", "model=resnet18", f"ckpt_path={ckpt}"),
                                            cwd=tmp_path, env_extra=ONE_THREAD))
    assert f"ckpt_path: {ckpt} holds a 'small' network, the config builds 'resnet18'" in line, line
    assert "model=small" in line


def test_a_checkpoint_of_another_size_names_the_weight(tmp_path):
    """The same network, another number of classes (no run config needed): the first weight that differs."""
    import torch

    from train import run

    first = tmp_path / "ten"
    run_here(first, "~logger")
    ckpt = torch.load(first / "checkpoints" / "last.ckpt", weights_only=False)
    del ckpt["run_config"]
    torch.save(ckpt, tmp_path / "bare.ckpt")
    cfg = compose_config([*TINY, "data.num_classes=4", f"ckpt_path={tmp_path / 'bare.ckpt'}"],
                         output_dir=tmp_path / "out")
    with pytest.raises(ValueError, match=r"does not fit the configured model: .* has shape \(10,"):
        run(cfg)


@pytest.mark.parametrize("where", ["under_a_file", "read_only"])
def test_an_unusable_run_dir_is_one_line_naming_it(tmp_path, where):
    if where == "under_a_file":
        (tmp_path / "afile").write_text("")
        run_dir = tmp_path / "afile" / "run"
    else:
        import os

        (tmp_path / "ro").mkdir(mode=0o555)
        if os.access(tmp_path / "ro", os.W_OK):
            pytest.skip("running as root: permissions do not stop writes")
        run_dir = tmp_path / "ro" / "run"
    line = one_plain_error(run_train_forked([*TINY, f"hydra.run.dir={run_dir}"], cwd=tmp_path, env_extra=ONE_THREAD))
    assert line.startswith(f"Error: hydra.run.dir={run_dir} cannot be used as the run directory: "), line

"""Bad input to train.py stops it before training, with one message that names the key or file and what is
allowed."""
import os

import pytest
from hydra.errors import InstantiationException

from conftest import ROOT, compose_config, run_train, run_train_forked, smoke_overrides
from train import run


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


@pytest.mark.parametrize("typed, said", [
    ("scheduler=onecycle", "Error: scheduler=onecycle: no such option; scheduler takes: airbench, cyclic, none, "
                           "one_cycle, piecewise, warmup. Did you mean scheduler=one_cycle?"),
    ("scheduler.maxlr=0.1", "Error: scheduler.maxlr: the config has no such key. Did you mean scheduler.max_lr? "
                            "scheduler has: max_lr, div_factor,"),
])
def test_a_command_line_hydra_cannot_compose_ends_with_one_plain_line_and_exit_2(tmp_path, typed, said):
    """Hydra reports these itself (exit 1) before train.py's code runs; its report is followed by one line saying
    what was wrong, what is allowed and the nearest spelling, and the exit status of train.py's start-up errors."""
    result = run_train_forked(["experiment=smoke", typed, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path,
                              timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    assert said in result.stderr and result.stderr.count("Error: ") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("typed, said", [
    ("trainer=tpu9000", "trainer=tpu9000: no such option; trainer takes: auto, cpu, cpu_fast, ddp, default, gpu"),
    ("schedular.max_lr=0.1", "schedular.max_lr: the config has no such key. Did you mean scheduler.max_lr? To add a "
                             "new key, use +schedular.max_lr=0.1"),
    ("scheduler.max_lr=[1", "cannot read the command line: no viable alternative at input '[1'"),
])
def test_what_a_command_line_that_does_not_compose_gets_said(typed, said):
    from callbacks.run.command_line import explain

    assert explain(str(ROOT / "conf"), ["experiment=smoke", typed]).startswith(said)


def test_a_sweeps_mistyped_value_is_said_in_one_line_with_exit_2(capsys):
    """With -m Hydra's report was all (exit 1): a typo in one swept value is found by composing one job per value."""
    from callbacks.run.command_line import main_with_plain_errors, one_job_each

    assert one_job_each(["a=1", "b=x,y", "c=2,3"]) == [["a=1", "b=x", "c=2"], ["a=1", "b=y", "c=2"],
                                                       ["a=1", "b=x", "c=3"]]

    def hydra_failed():
        raise SystemExit(1)

    for flags in (["-m"], ["--multirun"]):
        with pytest.raises(SystemExit) as stop:
            main_with_plain_errors(hydra_failed, str(ROOT / "conf"),
                                   [*flags, "experiment=smoke", "seed=0,1", "scheduler=one_cycle,onecycle"])
        assert stop.value.code == 2
        assert capsys.readouterr().err == ("Error: scheduler=onecycle: no such option; scheduler takes: airbench, "
                                           "cyclic, none, one_cycle, piecewise, warmup. Did you mean "
                                           "scheduler=one_cycle?\n")
    def joblib_stopped():  # Ctrl-C reached a sweep's parent: joblib stopped its workers and raised
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as stop:
        main_with_plain_errors(joblib_stopped, str(ROOT / "conf"), ["-m", "seed=0,1", "hydra.sweep.dir=/nowhere/s"])
    assert stop.value.code == 130
    assert capsys.readouterr().err == ("Interrupted. Resume the sweep: the same command plus hydra.sweep.dir=/nowhere/s "
                                       "+resume=true\n")
    with pytest.raises(SystemExit) as stop:  # another flag (--cfg job): Hydra's report stands
        main_with_plain_errors(hydra_failed, str(ROOT / "conf"), ["--cfg", "job", "scheduler=onecycle"])
    assert stop.value.code == 1 and capsys.readouterr().err == ""


def test_a_command_line_that_composes_is_not_explained():
    from callbacks.run.command_line import explain

    assert explain(str(ROOT / "conf"), ["experiment=smoke", "trainer.max_epochs=2", "hydra.run.dir=/tmp/x"]) is None


def test_an_experiment_key_that_does_not_fit_the_chosen_schedule_is_named(tmp_path):
    cfg = compose_config(smoke_overrides("scheduler=piecewise"), output_dir=tmp_path)
    with pytest.raises(ValueError, match=r"scheduler.max_lr does not apply to the piecewise schedule.*takes: knots"):
        run(cfg)


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


def test_a_bad_speed_threads_is_a_start_up_error(tmp_path):
    cfg = compose_config(smoke_overrides("speed.threads=0"), output_dir=tmp_path)
    with pytest.raises(ValueError, match=r"speed\.threads .* got 0"):
        run(cfg)
    assert not (tmp_path / "checkpoints").exists()


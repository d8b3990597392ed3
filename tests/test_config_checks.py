"""Config checks before anything is built (callbacks/run/config_checks.py), called directly;
tests/test_train_start_up_errors.py checks that run() stops on them before training."""
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from omegaconf import open_dict

from callbacks.run.config_checks import check_run_length, check_schedule, instantiate_group, plain_message
from conftest import CONF, compose_config, smoke_overrides


@pytest.mark.parametrize("override, words", [
    ("trainer.max_epochs=0", "trainer.max_epochs must be an integer >= 1"),
    ("trainer.max_steps=2.5", "trainer.max_steps must be -1 (no cap) or an integer >= 1, got 2.5"),
    ("trainer.max_epochs=-1", "trainer.max_epochs=-1 needs trainer.max_steps >= 1"),
    ("trainer.limit_train_batches=-1", "trainer.limit_train_batches must be null"),
    ("trainer.accumulate_grad_batches=0", "trainer.accumulate_grad_batches must be an integer >= 1, got 0"),
])
def test_a_run_that_would_train_nothing_is_refused(override, words):
    with pytest.raises(ValueError) as err:
        check_run_length(compose_config(smoke_overrides(override)))
    assert words in str(err.value)
    check_run_length(compose_config(smoke_overrides()))  # the smoke run itself passes


def test_the_schedule_is_checked_with_stand_ins_for_what_the_range_test_fills_in():
    cfg = compose_config(smoke_overrides("scheduler.max_lr=auto"))
    check_schedule(cfg, stand_ins={"max_lr": 1.0})
    with pytest.raises(ValueError, match="scheduler.max_lr must be a number > 0, got 'auto'"):
        check_schedule(cfg, stand_ins={})  # no stand-in: the schedule names the key itself
    with pytest.raises(ValueError, match=r"scheduler.max_lr does not apply to the piecewise schedule "
                                         r"\(it comes from an override\); that schedule takes: knots"):
        check_schedule(compose_config(smoke_overrides("scheduler=piecewise")), stand_ins={})


def test_a_key_the_chosen_option_does_not_take_is_named_with_where_it_comes_from():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=smoke_overrides("data=cifar10"), return_hydra_config=True)
        HydraConfig.instance().set_config(cfg)  # as under `python train.py`: the experiment is known
        with open_dict(cfg):
            del cfg["hydra"]
        try:
            with pytest.raises(ValueError, match=r"data.num_train does not apply to data=cifar10 \(it comes from "
                                                 r"experiment=smoke or an override\); remove it"):
                instantiate_group(cfg, "data")
        finally:
            HydraConfig.instance().cfg = None
    GlobalHydra.instance().clear()


def test_the_plain_message_unwraps_hydras_instantiation_error():
    inner = ValueError("data.batch_size must be a positive integer, got -8")
    wrapped = InstantiationException("Error in call to target 'X'")
    wrapped.__cause__ = inner
    assert plain_message(wrapped) == str(inner) and plain_message(inner) == str(inner)


def test_scheduler_none_refuses_a_schedule_key_and_trains_at_the_constant_lr_its_header_names(tmp_path, caplog):
    """experiment=smoke sets scheduler.max_lr=0.2; with scheduler=none it was silently ignored while the header
    said "peak LR 0.2" and the run trained at optimizer.lr (0.4); with max_lr=auto it searched, then crashed."""
    import logging

    from callbacks.run.result_file import read_result
    from train import run

    for extra in ([], ["scheduler.max_lr=auto"]):
        with pytest.raises(ValueError, match=r"scheduler.max_lr does not apply to scheduler=none \(it comes from "
                                             r".*an override\): it trains at the constant "
                                             r"optimizer.lr.*~scheduler.max_lr"):
            check_schedule(compose_config(smoke_overrides("scheduler=none", *extra)), stand_ins={})
    cfg = compose_config(smoke_overrides("scheduler=none", "~scheduler.max_lr", "optimizer.lr=0.05",
                                         "trainer.max_epochs=1", "test=false", "trainer.log_every_n_steps=1"),
                         output_dir=tmp_path)
    with caplog.at_level(logging.INFO, logger="train"):
        run(cfg)
    assert any(r.getMessage().startswith("schedule    none, constant LR 0.05 (config)") for r in caplog.records)
    import torch

    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    lrs = [group["lr"] for state in saved["optimizer_states"] for group in state["param_groups"]]
    assert lrs and all(lr == pytest.approx(0.05) for lr in lrs)  # what the optimizer held at the end
    assert not [k for k in read_result(tmp_path)["metrics"] if k.startswith("lr-")]  # no stale curve point there


def test_a_momentum_schedule_for_an_optimizer_without_momentum_is_refused_before_the_lr_search(tmp_path):
    """Adagrad under the default one-cycle (cycle_momentum): refused only at train start, after the whole LR search
    (350 steps), and result.json stayed "running". Now at start-up, before anything is searched or written."""
    from train import run

    cfg = compose_config(smoke_overrides("optimizer=adagrad", "scheduler.max_lr=auto"), output_dir=tmp_path)
    with pytest.raises(ValueError, match=r"scheduler 'one_cycle' sets momentum .* Adagrad \(param group 0\) has "
                                         r"neither `momentum` nor `betas`.*scheduler.cycle_momentum=false"):
        run(cfg)
    assert not list(tmp_path.iterdir())  # no range test ran, no result.json


def test_a_run_refused_inside_the_fit_is_recorded_as_failed_not_running(tmp_path):
    """A warm-up longer than the run is refused when the run's length is known (train start): result.json says
    failed, with the reason, not "running"."""
    from callbacks.run.result_file import read_result
    from train import run

    cfg = compose_config(smoke_overrides("scheduler=warmup", "scheduler.max_lr=0.1", "scheduler.warmup_length=5",
                                         "trainer.max_epochs=1"), output_dir=tmp_path)
    with pytest.raises(ValueError, match="warmup_length must be shorter than training"):
        run(cfg)
    record = read_result(tmp_path)
    assert record["status"] == "failed" and "warmup_length must be shorter than training" in record["reason"]


def test_a_schedule_the_run_cannot_finish_is_warned_of_once_at_its_start_not_for_each_max_lr_trial(tmp_path):
    """A cyclic half cycle of 4 epochs on a shorter run with max_lr=auto: the trials say nothing; the run says once that its LR never reaches the max_lr it found."""
    from conftest import run_in_process

    _, said = run_in_process(smoke_overrides("scheduler=cyclic", "scheduler.max_lr=auto", "scheduler.base_lr=0.001", "trainer.max_epochs=2",
                                             "test=false"), tmp_path)
    import re

    assert len(re.findall(r"step_size_up is \d+ optimizer steps, longer than the run \((\d+)\): the LR climbs "
                          r"from base_lr 0.001", said)) >= 1  # the run's (the closing summary repeats it)
    assert "longer than the run (6)" not in said  # the 6-step trials (conftest's short ones) say nothing

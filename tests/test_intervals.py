"""Lightning's logging interval against a run of short epochs (callbacks/run/intervals.py): counted here by hand,
and end to end, the training curve a run of 2-batch epochs leaves in TensorBoard."""
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

from callbacks.run.intervals import log_interval
from conftest import run_in_process, smoke_overrides
from run_records import scalars


def data(batches):
    return SimpleNamespace(steps_per_epoch=lambda: batches)


@pytest.mark.parametrize("trainer, batches, expected", [
    ({"log_every_n_steps": 10}, 2, 2),                                   # an epoch of 2 steps: log every 2
    ({"log_every_n_steps": 10}, 40, 10),                                 # long epochs: as configured
    ({"log_every_n_steps": 10, "accumulate_grad_batches": 4}, 18, 5),    # 18 batches, 5 optimizer steps (ceil)
    ({"log_every_n_steps": 10, "limit_train_batches": 3}, 40, 3),        # 3 batches an epoch
    ({"log_every_n_steps": 10, "limit_train_batches": 0.1}, 40, 4),      # 10% of 40
    ({"log_every_n_steps": 0}, 2, 0),                                    # 0: Lightning logs nothing; kept
    ({"log_every_n_steps": 10, "devices": 2}, 14, 7),                    # DDP: 7 batches a process
    ({"log_every_n_steps": 10, "devices": [0, 1, 2], "num_nodes": 2}, 36, 6),  # 6 processes
    ({"log_every_n_steps": 10, "devices": 2, "limit_train_batches": 3}, 40, 3),  # the limit is per process
    ({"log_every_n_steps": 10, "devices": "auto"}, 14, 10),              # a count only the machine knows: one
    ({"log_every_n_steps": 10, "devices": "2"}, 14, 7),                  # as Lightning reads a string: a count
    ({"log_every_n_steps": 10, "devices": "0,1"}, 14, 7),                # or device ids
])
def test_the_interval_is_at_most_an_epoch_of_optimizer_steps(trainer, batches, expected):
    assert log_interval(OmegaConf.create(trainer), data(batches)) == expected


def test_a_datamodule_without_steps_per_epoch_keeps_the_configured_interval():
    assert log_interval(OmegaConf.create({"log_every_n_steps": 10}), SimpleNamespace()) == 10


def test_a_run_of_two_batch_epochs_draws_its_training_curve(tmp_path):
    """64 images at batch 32 for 2 epochs with experiment=smoke's log_every_n_steps=4: Lightning logged train/loss
    once (step 4); now every 2 steps, and config.yaml says so."""
    run_in_process(smoke_overrides("data.num_train=64", "scheduler.max_lr=0.1", "test=false"), tmp_path)
    assert sorted(step for step, _ in scalars(tmp_path).get("train/loss", [])) == [1, 3]  # Lightning's step of the 2nd and 4th optimizer steps
    assert OmegaConf.load(tmp_path / "config.yaml").trainer.log_every_n_steps == 2

"""callbacks.range_test.interface: a module or data lacking what the range test needs is refused up front, with an
error naming the method and what it must do; a minimal user module implementing only the protocol works."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from callbacks.range_test.accuracy import AccuracyRangeTest
from callbacks.range_test.finder import find_lr
from callbacks.range_test.interface import (
    AccuracyModule,
    LossModule,
    RangeTestDataModule,
    RangeTestInterfaceError,
    RangeTestModule,
    provides,
)
from callbacks.range_test.loss import LRRangeTest
from range_fixtures import TinyDM, TinyNet, dataset, trainer

torch.set_num_threads(1)
pytestmark = [pytest.mark.filterwarnings("ignore:.*does not have many workers.*")]
SHORT = dict(num_steps=12, min_lr=1e-4, max_lr=1.0)


class Minimal(pl.LightningModule):
    """Only the protocol's required methods: nothing the project's Classifier adds."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 3)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self.lin(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class NoOptimizer(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8, 3)

    def training_step(self, batch, batch_idx):
        return F.cross_entropy(self.lin(batch[0]), batch[1])


class Manual(Minimal):
    def __init__(self):
        super().__init__()
        self.automatic_optimization = False


def loader(n=64, seed=0):
    return DataLoader(dataset(n, seed), batch_size=8, shuffle=True)


def test_minimal_module_implementing_only_the_protocol_works_with_find_lr(tmp_path):
    pl.seed_everything(0, verbose=False)
    model = Minimal()
    assert isinstance(model, RangeTestModule)
    assert not provides(model, "compute_loss") and not provides(model, "accuracy_counts")
    init = {k: v.clone() for k, v in model.state_dict().items()}
    result = find_lr(model, range_test=LRRangeTest(**SHORT), train_dataloaders=loader(), accelerator="cpu",
                     default_root_dir=str(tmp_path))
    assert len(result.losses) >= 4 and result.lr > 0
    assert all(torch.equal(v, init[k]) for k, v in model.state_dict().items())
    # the accuracy test too, on a datamodule's val_dataloader: argmax(module(x)) == y stands in for
    # accuracy_counts, and no validation_step is needed
    model.forward = lambda x: model.lin(x)
    dm = pl.LightningDataModule.from_datasets(train_dataset=dataset(64, 0), val_dataset=dataset(32, 1), batch_size=8)
    result = find_lr(model, dm, AccuracyRangeTest(max_lr=2.0, num_steps=12, eval_every=4, eval_batches=1),
                     accelerator="cpu", default_root_dir=str(tmp_path))
    assert result.kind == "accuracy" and len(result.evals) == 4


def test_module_without_configure_optimizers_is_refused_naming_it(tmp_path):
    with pytest.raises(RangeTestInterfaceError, match=r"NoOptimizer has no configure_optimizers\(\); the range test "
                                                      r"needs it to return the optimizer\(s\) the sweep drives"):
        find_lr(NoOptimizer(), train_dataloaders=loader(), accelerator="cpu", default_root_dir=str(tmp_path))


@pytest.mark.parametrize("how", ["find_lr", "callback"])
def test_manual_optimization_without_compute_loss_is_refused_naming_it(tmp_path, how):
    expected = (r"Manual has no compute_loss\(\) and uses manual optimization .*cannot stand in; the range test "
                r"needs it to return the mean loss of a prepared batch as a scalar tensor")
    with pytest.raises(RangeTestInterfaceError, match=expected):
        if how == "find_lr":
            find_lr(Manual(), train_dataloaders=loader(), accelerator="cpu", default_root_dir=str(tmp_path))
        else:  # the callback in a user's own fit: refused before it sweeps
            trainer(tmp_path, [LRRangeTest(**SHORT)]).fit(Manual(), loader())

    class ManualWithLoss(Manual):
        def compute_loss(self, batch):
            return self.training_step(batch, 0)

    assert isinstance(ManualWithLoss(), LossModule)
    result = find_lr(ManualWithLoss(), range_test=LRRangeTest(**SHORT), train_dataloaders=loader(),
                     accelerator="cpu", default_root_dir=str(tmp_path))
    assert len(result.losses) >= 4


def test_missing_training_or_validation_data_is_refused_naming_the_method(tmp_path):
    with pytest.raises(RangeTestInterfaceError, match=r"Minimal has no train_dataloader\(\) and no "
                                                      r"train_dataloaders were passed"):
        find_lr(Minimal(), accelerator="cpu", default_root_dir=str(tmp_path))
    at = AccuracyRangeTest(num_steps=12)

    class NoVal(TinyDM):
        val_dataloader = pl.LightningDataModule.val_dataloader

    with pytest.raises(RangeTestInterfaceError, match=r"NoVal has no val_dataloader\(\) and no val_dataloaders .*"
                                                      r"needs it to return the validation loader"):
        find_lr(TinyNet(), NoVal(), at, accelerator="cpu", default_root_dir=str(tmp_path))
    with pytest.raises(RangeTestInterfaceError, match=r"Minimal has no validation_step\(\) but its validation "
                                                      r"batches come from val_dataloaders"):
        find_lr(Minimal(), range_test=at, train_dataloaders=loader(), val_dataloaders=loader(32, 1),
                accelerator="cpu", default_root_dir=str(tmp_path))


def test_datamodule_from_datasets_and_protocol_checks(tmp_path):
    dm = pl.LightningDataModule.from_datasets(train_dataset=dataset(64, 0), val_dataset=dataset(32, 1), batch_size=8)
    assert isinstance(dm, RangeTestDataModule)
    assert provides(dm, "train_dataloader", pl.LightningDataModule)  # a function set on the instance counts
    assert not provides(pl.LightningDataModule(), "train_dataloader", pl.LightningDataModule)
    assert isinstance(TinyNet(), AccuracyModule) and not isinstance(Minimal(), AccuracyModule)
    pl.seed_everything(0, verbose=False)
    result = find_lr(TinyNet(), dm, LRRangeTest(**SHORT), accelerator="cpu", default_root_dir=str(tmp_path))
    assert len(result.losses) >= 4

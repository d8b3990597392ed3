"""lightning_modules.classifier_metrics (the Classifier's metrics): metric names and values from real tiny CPU fits,
one head and several, the training loss logged as train/loss, and TTA in the test step (test/acc beside
test_no_tta/acc) and, when asked, in validation."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from datamodules.synthetic import SyntheticDataModule
from lightning_modules.classifier import Classifier
from lightning_modules.networks import SmallNet
from classifier_fixtures import (QUIET, MultiHeadSet, RecordingLogger, expected_tta_logits, make_trainer,
                                 multihead_data, sgd, smoothed_ce)

torch.set_num_threads(1)
pytestmark = QUIET


def _val_images(dm):
    dm.setup("fit")
    return dm.normalize(dm.val_set.images), dm.val_set.labels


def test_fit_single_head_metric_names_and_values(tmp_path):
    torch.manual_seed(9)
    dm = SyntheticDataModule(num_train=64, num_val=40, batch_size=16, image_size=16, num_classes=4)
    model = Classifier(SmallNet(width=4), dm.heads, optimizer=sgd())
    logger = RecordingLogger()
    trainer = make_trainer(tmp_path, logger=logger, max_epochs=2, log_every_n_steps=1)
    trainer.fit(model, datamodule=dm)
    fit_metrics = dict(trainer.callback_metrics)
    for name in ("train/loss", "train/acc", "val/loss", "val/acc"):
        assert name in fit_metrics, name
    assert {"train/loss", "train/acc", "val/loss", "val/acc"} <= logger.names
    # the bar reads its values after every batch: train/loss is on it, train/acc (logged every step) is not
    assert "train/loss" in trainer.progress_bar_metrics and "train/acc" not in trainer.progress_bar_metrics
    for name in fit_metrics:
        assert name.split("/")[0] in ("train", "val"), f"unscoped metric {name}"
    # the last validation ran on the final weights: compare with an independent evaluation
    x, y = _val_images(dm)
    model.eval()
    with torch.no_grad():
        logits = model.logits(x)["label"]
    assert float(fit_metrics["val/acc"]) == pytest.approx(float((logits.argmax(1) == y).float().mean()), abs=1e-6)
    assert float(fit_metrics["val/loss"]) == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
    assert "val/acc_mean" not in logger.names  # one head: val/acc is its accuracy, not repeated as a mean
    assert set(model.metric_names("train") + model.metric_names("val")) == {
        n for n in logger.names if not n.startswith(("lr-", "epoch"))}  # what monitor may name: what is logged
    test = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert "test/acc" in trainer.callback_metrics and "test/loss" in test
    x_test, y_test = dm.normalize(dm.test_set.images), dm.test_set.labels  # a split apart from validation
    with torch.no_grad():
        test_logits = model.logits(x_test)["label"]
    assert test["test/acc"] == pytest.approx(float((test_logits.argmax(1) == y_test).float().mean()), abs=1e-6)


class MultiHeadDataModule(pl.LightningDataModule):
    def __init__(self):
        super().__init__()
        self.train = MultiHeadSet(*multihead_data(48, seed=10))
        self.val = MultiHeadSet(*multihead_data(30, seed=11))

    def train_dataloader(self):
        return DataLoader(self.train, batch_size=12, shuffle=False)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=8, shuffle=False)

    def test_dataloader(self):
        return self.val_dataloader()


def test_fit_multi_head_metrics(tmp_path):
    torch.manual_seed(12)
    dm = MultiHeadDataModule()
    model = Classifier(SmallNet(width=4), {"a": 3, "b": 2}, optimizer=sgd())
    logger = RecordingLogger()
    trainer = make_trainer(tmp_path, logger=logger, max_epochs=2, log_every_n_steps=1)
    trainer.fit(model, datamodule=dm)  # runs sanity validation first: its batches must not leak into val/acc
    m = {k: float(v) for k, v in trainer.callback_metrics.items()}
    for name in ("train/loss", "train/a/acc", "train/b/acc", "val/loss", "val/a/acc", "val/b/acc", "val/acc",
                 "val/acc_mean", "val/a/f1_macro", "val/b/f1_macro"):
        assert name in m, name
    assert {"train/a/acc", "val/a/acc", "val/b/acc", "val/acc", "val/acc_mean"} <= logger.names
    assert set(model.metric_names("train") + model.metric_names("val")) == {
        n for n in logger.names if not n.startswith(("lr-", "epoch"))}
    # independent evaluation of the final weights on the whole validation set
    x, ya, yb = dm.val.x, dm.val.ya, dm.val.yb
    model.eval()
    with torch.no_grad():
        logits = model.logits(x)
    acc_a = float((logits["a"].argmax(1) == ya).float().mean())
    acc_b = float((logits["b"].argmax(1) == yb).float().mean())
    assert m["val/a/acc"] == pytest.approx(acc_a, abs=1e-6)
    assert m["val/b/acc"] == pytest.approx(acc_b, abs=1e-6)
    assert m["val/acc_mean"] == pytest.approx((acc_a + acc_b) / 2, abs=1e-6)
    assert m["val/acc"] == pytest.approx((acc_a + acc_b) / 2, abs=1e-6)
    loss = F.cross_entropy(logits["a"], ya) + F.cross_entropy(logits["b"], yb)
    assert m["val/loss"] == pytest.approx(float(loss), rel=1e-5)
    # the mean accuracy is logged at every validation epoch, with the per-head values of that epoch
    val_records = [r for _, r in logger.records if "val/acc" in r]
    assert len(val_records) == 2
    for r in val_records:
        assert float(r["val/acc"]) == pytest.approx((float(r["val/a/acc"]) + float(r["val/b/acc"])) / 2, abs=1e-6)
    test = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert test["test/acc"] == pytest.approx((acc_a + acc_b) / 2, abs=1e-6)
    assert test["test/a/acc"] == pytest.approx(acc_a, abs=1e-6)


def test_training_step_loss_is_logged_train_loss(tmp_path):
    """train/loss of the first step equals compute_loss on the first (unaugmented) batch before training."""
    torch.manual_seed(13)
    dm = MultiHeadDataModule()
    model = Classifier(SmallNet(width=4), {"a": 3, "b": 2}, optimizer=sgd(), label_smoothing=0.2)
    x, ya, yb = dm.train.x[:12], dm.train.ya[:12], dm.train.yb[:12]
    ref = Classifier(SmallNet(width=4), {"a": 3, "b": 2}, label_smoothing=0.2)
    ref.load_state_dict(model.state_dict())
    ref.train()
    with torch.no_grad():
        logits = ref.logits(x)
    expected = smoothed_ce(logits["a"], ya, 0.2) + smoothed_ce(logits["b"], yb, 0.2)
    logger = RecordingLogger()
    trainer = make_trainer(tmp_path, logger=logger, max_steps=1, log_every_n_steps=1, limit_val_batches=0)
    trainer.fit(model, datamodule=dm)
    first = [r for _, r in logger.records if "train/loss" in r][0]
    assert float(first["train/loss"]) == pytest.approx(float(expected), rel=1e-5)


# -- airbench data init through fit ---------------------------------------------------------------------------------


def _labelled(n=20, size=8, classes=4, seed=6):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=g), torch.randint(classes, (n,), generator=g)


@pytest.mark.parametrize("level", [0, 2])
def test_test_step_uses_tta(tmp_path, level):
    torch.manual_seed(7)
    x, y = _labelled()
    model = Classifier(SmallNet(width=4), {"label": 4}, tta_level=level, label_smoothing=0.1)
    trainer = make_trainer(tmp_path)
    out = trainer.test(model, dataloaders=DataLoader(TensorDataset(x, y), batch_size=8), verbose=False)[0]
    model.eval()
    with torch.no_grad():
        logits = model.logits(x)["label"] if level == 0 else expected_tta_logits(model, x, level)["label"]
    assert out["test/loss"] == pytest.approx(float(smoothed_ce(logits, y, 0.1)), rel=1e-5)
    assert out["test/acc"] == pytest.approx(float((logits.argmax(1) == y).float().mean()), abs=1e-6)
    if level:  # the plain accuracy is reported beside the TTA one
        with torch.no_grad():
            plain = model.logits(x)["label"]
        assert out["test_no_tta/acc"] == pytest.approx(float((plain.argmax(1) == y).float().mean()), abs=1e-6)
    else:
        assert "test_no_tta/acc" not in out
    assert set(out) == set(model.metric_names("test") + model.metric_names("test_no_tta"))  # what monitor may name


@pytest.mark.parametrize("tta_on_val", [False, True])
def test_validation_uses_tta_only_when_asked(tmp_path, tta_on_val):
    torch.manual_seed(8)
    x, y = _labelled()
    model = Classifier(SmallNet(width=4), {"label": 4}, tta_level=1, tta_on_val=tta_on_val)
    trainer = make_trainer(tmp_path)
    out = trainer.validate(model, dataloaders=DataLoader(TensorDataset(x, y), batch_size=8), verbose=False)[0]
    model.eval()
    with torch.no_grad():
        plain = model.logits(x)["label"]
        tta = expected_tta_logits(model, x, 1)["label"]
    expected = tta if tta_on_val else plain
    other = plain if tta_on_val else tta
    assert out["val/loss"] == pytest.approx(float(F.cross_entropy(expected, y)), rel=1e-5)
    assert out["val/loss"] != pytest.approx(float(F.cross_entropy(other, y)), rel=1e-5)


def test_every_epoch_level_tensor_is_logged_with_sync_dist(tmp_path):
    """Under DDP Lightning warns ("It is recommended to use self.log('val/acc_mean', ..., sync_dist=True)") for each
    epoch-level value logged as a plain tensor without sync_dist; it did for val/test acc_mean and acc with several
    heads (values every rank already shares: the per-head metrics sync in compute()). Lightning checks only with
    more than one process, so the test reads the calls: every plain tensor logged per epoch asks for the sync."""
    from torchmetrics import Metric

    torch.manual_seed(12)
    model = Classifier(SmallNet(width=4), {"a": 3, "b": 2}, optimizer=sgd())
    calls, log = [], model.log

    def recording_log(name, value, *args, **kwargs):
        calls.append((name, isinstance(value, Metric), kwargs.get("on_step"), kwargs.get("on_epoch"),
                      kwargs.get("sync_dist", False)))
        return log(name, value, *args, **kwargs)

    model.log = recording_log
    trainer = make_trainer(tmp_path, max_epochs=1)
    trainer.fit(model, datamodule=MultiHeadDataModule())
    trainer.test(model, datamodule=MultiHeadDataModule(), verbose=False)
    # Lightning's default outside training steps is per epoch (on_step False, on_epoch True)
    epoch_tensors = {(name, sync) for name, metric, on_step, on_epoch, sync in calls
                     if not metric and not on_step and on_epoch is not False}
    assert {"val/acc_mean", "test/acc_mean", "val/acc", "val/loss"} <= {name for name, _ in epoch_tensors}
    assert all(sync for _, sync in epoch_tensors), sorted(epoch_tensors)

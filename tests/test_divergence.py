"""DivergenceStop on a tiny model: a non-finite loss or (when asked) an exploding loss ends fit with Diverged."""
import math

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from callbacks.divergence import Diverged, DivergenceStop


class Scripted(pl.LightningModule):
    """The loss of step i is losses[i] (times a trainable scale of 1), so the test decides when it diverges."""

    def __init__(self, losses):
        super().__init__()
        self.losses, self.w = losses, nn.Parameter(torch.ones(()))

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.zeros(len(self.losses), 1), batch_size=1)

    def training_step(self, batch, batch_idx):
        return self.w * 0 + torch.tensor(self.losses[batch_idx]) + F.relu(self.w - 10)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def fit(losses, **kw):
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[DivergenceStop(**kw)])
    trainer.fit(Scripted(losses))
    return trainer


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_loss_stops_at_that_step(bad):
    with pytest.raises(Diverged) as err:
        fit([2.0, 1.9, bad, 1.0])
    assert err.value.step == 3 and err.value.lr == pytest.approx(0.1) and "non-finite" in str(err.value)


def test_exploding_loss_counts_only_when_asked():
    losses = [2.0, 2.0, 2.0, 7.0, 1.0]
    assert fit(losses).global_step == 5  # off by default: a rising loss is not divergence
    with pytest.raises(Diverged, match=r"above 3 x its early mean \(6\)"):
        fit(losses, explode_factor=3.0, early_steps=3)
    assert fit(losses, explode_factor=4.0, early_steps=3).global_step == 5


@pytest.mark.parametrize("kw,key", [({"explode_factor": 1.0}, "explode_factor"), ({"early_steps": 0}, "early_steps")])
def test_bad_settings_name_the_key(kw, key):
    with pytest.raises(ValueError, match=f"callbacks.divergence.{key}"):
        DivergenceStop(**kw)


def test_losses_are_read_every_log_every_n_steps_not_every_step(monkeypatch):
    reads = []
    check = DivergenceStop.check

    def counting(self):
        if self._unread:
            reads.append(len(self._unread))
        check(self)

    monkeypatch.setattr(DivergenceStop, "check", counting)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, log_every_n_steps=3, callbacks=[DivergenceStop()])
    trainer.fit(Scripted([1.0] * 8))
    assert reads == [3, 3, 2]  # two full windows, the rest at the end of the epoch


def test_the_first_bad_step_is_reported_though_read_later():
    with pytest.raises(Diverged) as err:
        trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, log_every_n_steps=4, callbacks=[DivergenceStop()])
        trainer.fit(Scripted([2.0, math.nan, math.inf, math.nan, 1.0, 1.0]))
    assert err.value.step == 2 and math.isnan(err.value.loss)


def test_no_checkpoint_is_written_after_the_loss_diverged(tmp_path):
    from pytorch_lightning.callbacks import ModelCheckpoint

    saver = ModelCheckpoint(dirpath=tmp_path, filename="{step}", every_n_train_steps=1, save_top_k=-1)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         log_every_n_steps=50, callbacks=[DivergenceStop(), saver], default_root_dir=tmp_path)
    with pytest.raises(Diverged) as err:
        trainer.fit(Scripted([1.0, 1.0, 1.0, 1.0, math.nan, 1.0, 1.0]))
    assert err.value.step == 5
    assert sorted(p.name for p in tmp_path.glob("*.ckpt")) == [f"step={s}.ckpt" for s in range(1, 5)]


def test_first_divergence_is_pure():
    from callbacks.divergence import first_divergence

    assert first_divergence([1.0, 2.0], [], None, 3) == (None, "", [])
    assert first_divergence([1.0, math.inf], [], None, 3)[:2] == (1, "non-finite training loss (inf)")
    index, why, early = first_divergence([2.0, 5.0], [2.0, 2.0], 3.0, 3)  # 5 <= 3 x 2
    assert index is None and early == [2.0, 2.0, 2.0]
    assert first_divergence([7.0], early, 3.0, 3)[0] == 0

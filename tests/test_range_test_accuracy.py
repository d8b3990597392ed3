"""AccuracyRangeTest: measurement schedule, eval-mode un-augmented measurements against an oracle, images per
point, bounds, bitwise restore, bad arguments."""
from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from callbacks.range_test.accuracy import AccuracyRangeTest
from callbacks.range_test.suggestions import accuracy_test_bounds
from range_fixtures import Snap, TinyDM, assert_same_state, dataset, fit

torch.set_num_threads(1)


class InitAcc(pl.Callback):
    """Oracle for the first measurement: eval mode, no augmentation, the first 2 validation batches."""

    def on_train_start(self, trainer, pl_module):
        pl_module.eval()
        with torch.no_grad():
            batches = list(DataLoader(dataset(32, 1), batch_size=8))[:2]
            self.acc = sum(int(pl_module.accuracy_counts(b)[0]) for b in batches) / 16
        pl_module.train()


def test_accuracy_range_test(tmp_path):
    before, after, init, dm = Snap(), Snap(), InitAcc(), TinyDM()
    at = AccuracyRangeTest(min_lr=0.0, max_lr=2.0, num_steps=30, eval_every=5, eval_batches=2)
    tr, model = fit(tmp_path, callbacks=[init, before, at, after], dm=dm, max_epochs=1, limit_train_batches=2)
    res = at.result
    assert dm.plain_batches == 7 * 2  # every measurement: 2 validation batches, none augmented
    assert [e["step"] for e in res.evals] == [-1, 4, 9, 14, 19, 24, 29]
    assert all(e["images"] == 16 for e in res.evals) and res.eval_images == 16
    for e in res.evals:
        assert e["stderr"] == pytest.approx(math.sqrt(e["acc"] * (1 - e["acc"]) / 16))
    np.testing.assert_allclose(res.lrs, np.linspace(0.0, 2.0, 30), rtol=1e-12)
    assert res.evals[0]["acc"] == pytest.approx(init.acc)
    # the result is the rule applied to the measured points
    expected = accuracy_test_bounds([e["lr"] for e in res.evals], [e["acc"] for e in res.evals], bandwidth=0.0,
                                    num_images=16)
    assert (res.base_lr, res.lr, res.suggestions["peak_lr"]) == (expected["base_lr"], expected["max_lr"],
                                                                 expected["peak_lr"])
    assert 0.0 <= res.base_lr <= res.lr <= 2.0 and res.peak_acc > res.start_acc
    assert res.kind == "accuracy" and res.rule == "accuracy_test" and "of 16 images each" in res.status
    assert res.search_steps == len(res.losses) == 30  # its cost, as the loss test counts its own (it said 0)
    assert_same_state(before.state, after.state)
    assert tr.global_step == 0 and model.first_batch is None  # the phase stopped the fit


def test_accuracy_test_length_from_num_epochs(tmp_path):
    import warnings

    at = AccuracyRangeTest(min_lr=0.0, max_lr=1.0, num_epochs=2, eval_batches=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(tmp_path, callbacks=[at], dm=TinyDM(n_train=96, batch_size=8), max_epochs=1, accumulate_grad_batches=2)
    assert len(at.result.lrs) == 2 * (12 // 2)  # two epochs of 6 optimizer steps
    assert not [w for w in caught if "cycling it" in str(w.message)]  # a ramp over epochs repeats them by design
    longer = AccuracyRangeTest(min_lr=0.0, max_lr=1.0, num_steps=20, eval_batches=1)  # more steps than batches
    with pytest.warns(UserWarning, match="the train dataloader has 12 batches but the sweep needs 20; cycling it"):
        fit(tmp_path, callbacks=[longer], dm=TinyDM(n_train=96, batch_size=8), max_epochs=1)
    at2 = AccuracyRangeTest(min_lr=0.0, max_lr=1.0, num_epochs=0.5)
    with pytest.raises(ValueError, match="only 6 steps .* raise range_test.num_epochs"):
        fit(tmp_path, callbacks=[at2], dm=TinyDM(n_train=96, batch_size=8), max_epochs=1)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_epochs": 0}, "range_test.num_epochs must be > 0"),
        ({"eval_every": 0}, "range_test.eval_every must be an integer >= 1"),
        ({"eval_batches": 0}, "range_test.eval_batches must be an integer >= 1"),
        ({"bandwidth": -1.0}, "range_test.bandwidth must be >= 0"),
        ({"min_lr": -0.1}, "range_test.min_lr must be >= 0"),
        ({"num_steps": 5}, "range_test.num_steps must be an integer >= 10, got 5"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AccuracyRangeTest(**kwargs)


def test_a_test_that_finds_no_bounds_says_what_it_saw_and_how_fine_its_ramp_was():
    """The default ramp (0 to 1 in 52 steps) on 540 drawn images: the accuracy stayed at chance, and the error said
    only to widen the range. It now lists the points and each step's LR increment; a ramp to 0.1 in 200 steps then
    found base_lr 0.0045 and max_lr 0.012 (94% validation accuracy on the same set)."""
    lrs = [i / 51 for i in range(52)]
    evals = [{"lr": lr, "acc": 1 / 3, "images": 54} for lr in lrs]
    raw = {"evals": evals, "lrs": lrs, "losses": [1.1] * 52, "stop_index": None, "num_steps": 52, "eval_every": 1}
    with pytest.raises(ValueError) as err:
        AccuracyRangeTest()._analyse(raw, elapsed_s=1.0)
    message = str(err.value)
    assert message.startswith("validation accuracy never rose above its starting value")
    shown = [float(p.split(":")[0]) for p in message.split("images): ")[1].split(". Each")[0].split(", ")]
    assert len(shown) == 11 and shown[0] == 0 and shown == sorted(shown)  # every fifth of 52 points, in LR order
    assert "Each step of the ramp adds 0.0196 to the LR" in message and "a lower range_test.max_lr" in message


def test_a_module_with_dict_batches_and_no_accuracy_counts_is_told_what_to_add():
    """A dict batch crashed with KeyError: 0 inside the accuracy measurement."""
    from callbacks.range_test.engine import correct_counts
    from callbacks.range_test.interface import RangeTestInterfaceError

    class Net(torch.nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(RangeTestInterfaceError, match=r"Net: measuring accuracy .* needs accuracy_counts\(batch\) .* "
                                                      r"got a dict batch"):
        correct_counts(Net(), {"feats": torch.zeros(2, 3), "target": torch.zeros(2)})
    x, y = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]), torch.tensor([1, 1, 1])
    correct, seen = correct_counts(Net(), (x, y))  # an (x, y) pair: argmax against the labels
    assert (int(correct), seen) == (2, 3)

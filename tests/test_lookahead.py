"""Lookahead callback against an independent re-implementation of airbench94's LookaheadState training loop,
run on the same tiny model (with BatchNorm, so buffers are averaged too) and the same fixed data order."""
from __future__ import annotations

import copy

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from callbacks.lookahead import Lookahead, lookahead_decay, lookahead_pull

torch.set_num_threads(1)
pytestmark = [
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*does not have many workers.*"),
    pytest.mark.filterwarnings("ignore:.*number of training batches.*"),
]

N, BATCH = 40, 4  # 10 batches per epoch


class Tiny(pl.LightningModule):
    def __init__(self, lr=0.2, momentum=0.9):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
        self.lr, self.momentum = lr, momentum

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=self.momentum)


def data(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, 4, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    return x, y


def loader(seed=0):
    return DataLoader(TensorDataset(*data(seed)), batch_size=BATCH, shuffle=False)


def fresh_model(seed=0):
    torch.manual_seed(seed)
    return Tiny()


# -- the oracle: airbench94's loop, written out ----------------------------------------------------------------------
class LookaheadState:
    def __init__(self, net):
        self.net_ema = {k: v.clone() for k, v in net.state_dict().items()}

    def update(self, net, decay):
        for ema_param, net_param in zip(self.net_ema.values(), net.state_dict().values()):
            if net_param.dtype in (torch.half, torch.float):
                ema_param.lerp_(net_param, 1 - decay)
                net_param.copy_(ema_param)


def oracle(model: Tiny, epochs: int, every: int = 5, decay: float = 0.95 ** 5, accumulate: int = 1,
           lookahead: bool = True) -> Tiny:
    model = copy.deepcopy(model)
    opt = model.configure_optimizers()
    batches = list(loader())
    total = epochs * (len(batches) // accumulate)
    state = LookaheadState(model) if lookahead else None
    step = 0
    model.train()
    done = False
    for _ in range(epochs):
        for i, (x, y) in enumerate(batches):
            loss = F.cross_entropy(model(x), y) / accumulate
            loss.backward()
            if (i + 1) % accumulate:
                continue
            opt.step()
            opt.zero_grad()
            step += 1
            with torch.no_grad():
                if state is not None and step % every == 0:
                    state.update(model, decay=decay * (step / total) ** 3)
                if step >= total:
                    if state is not None:
                        state.update(model, decay=1.0)
                    done = True
                    break
        if done:
            break
    return model


def trainer(tmp_path, callbacks, epochs, **kw):
    args = dict(accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
                enable_progress_bar=False, enable_model_summary=False, default_root_dir=str(tmp_path),
                num_sanity_val_steps=0, callbacks=callbacks)
    args.update(kw)
    return pl.Trainer(**args)


def assert_states_close(a: nn.Module, b: nn.Module, atol=1e-5):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-5, atol=atol, msg=lambda m: f"{k}: {m}")


def max_diff(a: nn.Module, b: nn.Module) -> float:
    return max((x.float() - y.float()).abs().max().item() for x, y in zip(a.state_dict().values(),
                                                                          b.state_dict().values()))


# -- pure schedule ---------------------------------------------------------------------------------------------------
def test_lookahead_decay_formula():
    d = 0.95 ** 5
    alpha = d * (torch.arange(21, dtype=torch.float64) / 20) ** 3  # airbench's alpha_schedule
    for step in range(21):
        assert lookahead_decay(step, 20, d) == pytest.approx(float(alpha[step]), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("decay", [0.0, 0.3, 0.95 ** 5, 1.0])
def test_lookahead_pull_is_the_two_ops_over_lists(decay):
    g = torch.Generator().manual_seed(0)
    average = [torch.randn(3, 2, generator=g), torch.randn(5, generator=g, dtype=torch.float64)]
    live = [torch.randn(3, 2, generator=g), torch.randn(5, generator=g, dtype=torch.float64)]
    expected_avg = [a.clone().lerp_(w, 1 - decay) for a, w in zip(average, live)]
    lookahead_pull(average, live, decay)
    for a, w, e in zip(average, live, expected_avg):
        assert torch.equal(a, e) and torch.equal(w, e)


def test_defaults_are_airbench():
    cb = Lookahead()
    assert cb.every == 5 and cb.decay == pytest.approx(0.95 ** 5)


@pytest.mark.parametrize("kwargs,key", [
    (dict(every=0), "callbacks.lookahead.every"),
    (dict(every=-3), "callbacks.lookahead.every"),
    (dict(decay=1.0), "callbacks.lookahead.decay"),
    (dict(decay=-0.1), "callbacks.lookahead.decay"),
])
def test_bad_inputs(kwargs, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        Lookahead(**kwargs)


# -- against the oracle ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("epochs,every", [(2, 5), (3, 7)])  # 20 steps (final pull on a multiple), 30 (not)
def test_matches_airbench_loop(tmp_path, epochs, every):
    model = fresh_model()
    expected = oracle(model, epochs, every=every)
    plain = oracle(model, epochs, lookahead=False)
    t = trainer(tmp_path, [Lookahead(every=every)], epochs)
    t.fit(model, train_dataloaders=loader())
    assert t.global_step == epochs * 10
    assert_states_close(model, expected)
    # BatchNorm statistics are averaged too (and the check is not vacuous: lookahead changes the result)
    assert max_diff(expected, plain) > 1e-2
    bn, bn_plain = expected.net[1], plain.net[1]
    assert not torch.allclose(bn.running_mean, bn_plain.running_mean, atol=1e-4)
    torch.testing.assert_close(model.net[1].running_var, bn.running_var, rtol=1e-5, atol=1e-6)
    assert int(model.net[1].num_batches_tracked) == epochs * 10  # integer buffer untouched


def test_gradient_accumulation_averages_once_per_optimizer_step(tmp_path):
    model = fresh_model(1)
    expected = oracle(model, 2, every=2, accumulate=2)
    wrong = oracle(model, 2, every=4, accumulate=2)  # what pulling once per *batch* count would look like
    t = trainer(tmp_path, [Lookahead(every=2)], 2, accumulate_grad_batches=2)
    t.fit(model, train_dataloaders=loader())
    assert t.global_step == 10
    assert_states_close(model, expected)
    assert max_diff(expected, wrong) > 1e-3


def test_max_steps_bounds_total(tmp_path):
    """Total steps come from the trainer (max_steps here), and training ends on the average."""
    model = fresh_model(2)
    t = trainer(tmp_path, [Lookahead(every=5)], epochs=5, max_steps=15)
    t.fit(model, train_dataloaders=loader())
    assert t.global_step == 15
    # oracle: a 15-step run is the first 15 steps of epochs with total=15
    ref = copy.deepcopy(fresh_model(2))
    opt = ref.configure_optimizers()
    state = LookaheadState(ref)
    step = 0
    for x, y in list(loader()) * 2:
        F.cross_entropy(ref(x), y).backward()
        opt.step()
        opt.zero_grad()
        step += 1
        with torch.no_grad():
            if step % 5 == 0:
                state.update(ref, 0.95 ** 5 * (step / 15) ** 3)
            if step >= 15:
                state.update(ref, 1.0)
                break
    assert_states_close(model, ref)


def test_weights_equal_average_at_end(tmp_path):
    model = fresh_model(3)
    cb = Lookahead(every=3)
    trainer(tmp_path, [cb], 1).fit(model, train_dataloaders=loader())
    live = {k: v for k, v in model.state_dict().items() if v.is_floating_point()}
    assert live.keys() == cb.average.keys()
    for k, v in live.items():
        assert torch.equal(v, cb.average[k])
    assert "net.1.num_batches_tracked" not in cb.average


# -- state -------------------------------------------------------------------------------------------------------------
def test_state_dict_round_trip():
    cb = Lookahead(every=4, decay=0.5)
    cb.average = {"w": torch.randn(3, 2), "b": torch.randn(2)}
    other = Lookahead()
    other.load_state_dict(copy.deepcopy(cb.state_dict()))
    assert other.every == 4 and other.decay == 0.5
    assert other.average.keys() == cb.average.keys()
    for k in cb.average:
        assert torch.equal(other.average[k], cb.average[k])


def test_resume_from_checkpoint_matches_uninterrupted(tmp_path):
    """Checkpoint mid-run (epoch 1 of 3), resume with a fresh callback: same final weights as one straight run."""
    model = fresh_model(4)
    expected = oracle(model, 3, every=3)
    first = copy.deepcopy(model)
    ckpt = tmp_path / "mid.ckpt"
    # a 3-epoch trainer stopped after the first epoch, so the schedule's total is the full run's
    t1 = trainer(tmp_path, [Lookahead(every=3), _StopAfter(1)], 3)
    t1.fit(first, train_dataloaders=loader())
    assert t1.global_step == 10
    t1.save_checkpoint(ckpt)
    assert "average" in next(v for k, v in torch.load(ckpt, weights_only=False)["callbacks"].items()
                             if "Lookahead" in k)

    resumed = fresh_model(99)  # different init: everything must come from the checkpoint
    cb = Lookahead()  # defaults: every/decay must come back from the checkpoint too
    t2 = trainer(tmp_path, [cb], 3)
    t2.fit(resumed, train_dataloaders=loader(), ckpt_path=str(ckpt))
    assert cb.every == 3
    assert t2.global_step == 30
    assert_states_close(resumed, expected)


class _StopAfter(pl.Callback):
    def __init__(self, epochs):
        self.epochs = epochs

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


def test_an_unbounded_run_is_refused_at_start(tmp_path):
    t = pl.Trainer(default_root_dir=tmp_path, max_epochs=-1, max_steps=-1, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, callbacks=[Lookahead()])
    model = fresh_model()
    with pytest.raises(ValueError, match="trainer.max_epochs or trainer.max_steps"):
        t.fit(model, loader())

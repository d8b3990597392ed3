"""lightning_modules.classifier (Classifier) against independent oracles: hand-written label-smoothed
cross-entropy, airbench's TTA formula (with a linear backbone the averaged logits are the logits of the averaged
image), manual accuracy counts, parameter-group bookkeeping, data-dependent init, channels_last, torch.compile.
What it logs (TTA in the test and validation steps included): test_classifier_metrics.py."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from datamodules.synthetic import SyntheticDataModule
from lightning_modules.classifier import Classifier
from lightning_modules.tta import tta_views
from lightning_modules.networks import AirbenchNet, Backbone, SmallNet
from classifier_fixtures import QUIET, expected_tta_logits, make_trainer, multihead_data, sgd, shift, smoothed_ce
# RecordingLogger, make_trainer and sgd are imported from here by test_multihead, test_predict and test_data_sources
from classifier_fixtures import RecordingLogger  # noqa: F401

torch.set_num_threads(1)
pytestmark = QUIET


# -- helpers --------------------------------------------------------------------------------------------------------
class LinearBackbone(Backbone):
    """features = W vec(x) + b: a linear map, so averaging logits over views = logits of the averaged view."""

    def __init__(self, c=3, size=6, dim=5):
        super().__init__(nn.Sequential(nn.Flatten(), nn.Linear(c * size * size, dim)), dim, head_bias=True)


@pytest.mark.parametrize("kwargs,key", [
    (dict(label_smoothing=1.0), "model.label_smoothing"),
    (dict(label_smoothing=-0.1), "model.label_smoothing"),
    (dict(tta_level=3), "model.tta_level"),
    (dict(tta_level=-1), "model.tta_level"),
    (dict(heads={}), "model.heads"),
    (dict(heads={"label": 1}), "model.heads.label"),
    (dict(norm_lr_scale=0.0), "model.norm_lr_scale"),
    (dict(norm_lr_scale=-2.0), "model.norm_lr_scale"),
])
def test_bad_config_raises(kwargs, key):
    args = dict(backbone=SmallNet(width=4), heads={"label": 10})
    args.update(kwargs)
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        Classifier(**args)


def test_configure_optimizers_without_optimizer_raises():
    model = Classifier(SmallNet(width=4), {"label": 3})
    with pytest.raises(ValueError, match=r"model\.optimizer"):
        model.configure_optimizers()


def test_tensor_labels_with_several_heads_raise():
    model = Classifier(SmallNet(width=4), {"a": 3, "b": 2})
    with pytest.raises(ValueError, match="heads"):
        model.compute_loss((torch.randn(2, 3, 8, 8), torch.tensor([0, 1])))


# -- loss and accuracy ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_compute_loss_single_head_matches_smoothed_ce(eps):
    torch.manual_seed(0)
    model = Classifier(SmallNet(width=4), {"label": 5}, label_smoothing=eps).eval()
    x, y = torch.randn(6, 3, 8, 8), torch.tensor([0, 1, 2, 3, 4, 0])
    logits = model.logits(x)["label"]
    loss = model.compute_loss((x, y))
    torch.testing.assert_close(loss.double(), smoothed_ce(logits, y, eps), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss, F.cross_entropy(logits, y, label_smoothing=eps))


def test_compute_loss_multi_head_is_sum_over_heads():
    torch.manual_seed(1)
    model = Classifier(SmallNet(width=4), {"a": 3, "b": 2}, label_smoothing=0.1).eval()
    x, ya, yb = multihead_data(7, seed=3)
    logits = model.logits(x)
    assert set(logits) == {"a", "b"} and logits["a"].shape == (7, 3) and logits["b"].shape == (7, 2)
    expected = smoothed_ce(logits["a"], ya, 0.1) + smoothed_ce(logits["b"], yb, 0.1)
    loss = model.compute_loss((x, {"a": ya, "b": yb}))
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-6)
    # label dict order does not matter
    loss2 = model.compute_loss((x, {"b": yb, "a": ya}))
    torch.testing.assert_close(loss2, loss)


def test_accuracy_counts_match_manual():
    torch.manual_seed(2)
    model = Classifier(SmallNet(width=4), {"a": 3, "b": 2}).eval()
    x, ya, yb = multihead_data(11, seed=4)
    logits = model.logits(x)
    correct, total = model.accuracy_counts((x, {"a": ya, "b": yb}))
    manual = int((logits["a"].argmax(1) == ya).sum()) + int((logits["b"].argmax(1) == yb).sum())
    # averaged over the two heads: the accuracy over both heads' predictions, counted in images (11), not in
    # predictions (22), which the accuracy test took for its binomial standard error
    assert float(correct) == manual / 2 and total == 11 and float(correct) / total == manual / 22
    single = Classifier(SmallNet(width=4), {"label": 3}).eval()
    c1, t1 = single.accuracy_counts((x, ya))
    assert int(c1) == int((single.logits(x)["label"].argmax(1) == ya).sum()) and t1 == 11


def test_resnet9_style_head_scales_logits():
    from lightning_modules.networks import ResNet9
    model = Classifier(ResNet9(width=4), {"label": 10}).eval()
    x = torch.randn(2, 3, 8, 8)
    feats = model.backbone(x)
    linear = model.heads["label"][0]
    torch.testing.assert_close(model.logits(x)["label"], F.linear(feats, linear.weight) * 0.125)


# -- TTA ------------------------------------------------------------------------------------------------------------
def test_tta_views_level_1_is_image_and_mirror():
    x = torch.randn(2, 3, 5, 5)
    views = tta_views(x, 1)
    assert [w for w, _ in views] == [0.5, 0.5]
    assert torch.equal(views[0][1], x)
    assert torch.equal(views[1][1], x[:, :, :, torch.arange(4, -1, -1)])


def test_tta_views_level_2_weights_and_shifts():
    x = torch.randn(2, 3, 6, 6)
    views = tta_views(x, 2)
    assert sum(w for w, _ in views) == pytest.approx(1.0)
    expected = [(0.25, x), (0.25, x.flip(3)),
                (0.125, shift(x, -1, -1)), (0.125, shift(x, -1, -1).flip(3)),
                (0.125, shift(x, 1, 1)), (0.125, shift(x, 1, 1).flip(3))]
    # order-independent comparison of (weight, view) pairs
    remaining = list(views)
    for w, v in expected:
        match = [i for i, (w2, v2) in enumerate(remaining) if w2 == w and torch.equal(v2, v)]
        assert match, f"missing view with weight {w}"
        remaining.pop(match[0])
    assert not remaining


@pytest.mark.parametrize("level", [1, 2])
def test_tta_logits_match_airbench_formula(level):
    torch.manual_seed(3)
    model = Classifier(SmallNet(width=4), {"label": 4}, tta_level=level).eval()
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        got = model._tta_logits(x, level)["label"]
        want = expected_tta_logits(model, x, level)["label"]
        plain = model.logits(x)["label"]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, plain, atol=1e-4)  # TTA really changes the logits here


@pytest.mark.parametrize("level", [1, 2])
def test_tta_with_linear_backbone_is_logits_of_averaged_image(level):
    torch.manual_seed(4)
    model = Classifier(LinearBackbone(size=6), {"label": 3}).eval()
    x = torch.randn(4, 3, 6, 6)
    if level == 1:
        avg = 0.5 * x + 0.5 * x.flip(3)
    else:
        ul, dr = shift(x, -1, -1), shift(x, 1, 1)
        avg = 0.25 * (x + x.flip(3)) + 0.125 * (ul + ul.flip(3) + dr + dr.flip(3))
    with torch.no_grad():
        torch.testing.assert_close(model._tta_logits(x, level)["label"], model.logits(avg)["label"],
                                   rtol=1e-5, atol=1e-5)


def test_flip_tta_of_mirror_symmetric_input_is_plain_logits():
    torch.manual_seed(5)
    model = Classifier(LinearBackbone(size=6), {"label": 3}).eval()
    x = torch.randn(2, 3, 6, 6)
    x = x + x.flip(3)
    with torch.no_grad():
        torch.testing.assert_close(model._tta_logits(x, 1)["label"], model.logits(x)["label"])


# -- parameter groups -----------------------------------------------------------------------------------------------
def _groups_by_name(groups):
    return {g["name"]: g for g in groups}


def _check_partition(model, groups):
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)), "a parameter is in two groups"
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert set(ids) == trainable


def _bn_params(model):
    return {id(p) for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters(recurse=False)}


def test_parameter_groups_default_single_weight_decay():
    model = Classifier(SmallNet(width=4), {"label": 3})
    groups = model.parameter_groups(weight_decay=5e-4, base_lr=0.1)
    _check_partition(model, groups)
    for g in groups:
        assert "weight_decay" not in g or g["weight_decay"] == 5e-4
        assert g.get("lr_scale", 1.0) == 1.0


def test_parameter_groups_exclude_norm_and_bias():
    model = Classifier(SmallNet(width=4), {"a": 3, "b": 2}, exclude_norm_and_bias_from_wd=True)
    groups = model.parameter_groups(weight_decay=5e-4, base_lr=0.1)
    _check_partition(model, groups)
    bn = _bn_params(model)
    biases = {id(p) for n, p in model.named_parameters() if n.endswith("bias")}
    no_decay = bn | biases
    assert len(biases - bn) == 2  # the two head biases
    for g in groups:
        for p in g["params"]:
            if id(p) in no_decay:
                assert g["weight_decay"] == 0.0
            else:
                assert g.get("weight_decay", 5e-4) == 5e-4 and p.dim() > 1
    # through configure_optimizers the decayed group gets the optimizer default
    opt = Classifier(SmallNet(width=4), {"label": 3}, exclude_norm_and_bias_from_wd=True,
                     optimizer=sgd(weight_decay=5e-4)).configure_optimizers()
    for g in opt.param_groups:
        expected = 5e-4 if all(p.dim() > 1 for p in g["params"]) else 0.0
        assert g["weight_decay"] == expected


def test_parameter_groups_norm_lr_scale():
    model = Classifier(SmallNet(width=4), {"label": 3}, norm_lr_scale=64.0, optimizer=sgd(lr=0.1, weight_decay=5e-4))
    groups = model.parameter_groups(weight_decay=5e-4, base_lr=0.1)
    _check_partition(model, groups)
    bn = _bn_params(model)
    for g in groups:
        is_bn = {id(p) in bn for p in g["params"]}
        assert len(is_bn) == 1, "a group mixes BN and non-BN parameters"
        if is_bn.pop():
            assert g["lr_scale"] == 64.0
            assert g["weight_decay"] == pytest.approx(5e-4 / 64)
            assert g["lr"] == pytest.approx(0.1 * 64)
        else:
            assert g.get("lr_scale", 1.0) == 1.0
            assert g.get("weight_decay", 5e-4) == 5e-4
            assert g.get("lr", 0.1) == 0.1
    opt = model.configure_optimizers()
    lrs = sorted(g["lr"] for g in opt.param_groups)
    assert lrs[0] == pytest.approx(0.1) and lrs[-1] == pytest.approx(6.4)
    assert sum(len(g["params"]) for g in opt.param_groups) == sum(1 for _ in model.parameters())


def test_parameter_groups_norm_lr_scale_with_exclusion_and_no_base_lr():
    model = Classifier(SmallNet(width=4), {"label": 3}, norm_lr_scale=8.0, exclude_norm_and_bias_from_wd=True)
    groups = _groups_by_name(model.parameter_groups(weight_decay=5e-4, base_lr=None))
    assert groups["norm"]["lr_scale"] == 8.0 and groups["norm"]["weight_decay"] == 0.0
    assert "lr" not in groups["norm"]
    assert groups["bias"]["weight_decay"] == 0.0 and groups["bias"].get("lr_scale", 1.0) == 1.0


def test_parameter_groups_skip_frozen_parameters():
    backbone = AirbenchNet(widths=(4, 8, 8))
    model = Classifier(backbone, {"label": 3}, norm_lr_scale=64.0, exclude_norm_and_bias_from_wd=True)
    groups = model.parameter_groups(weight_decay=5e-4, base_lr=0.1)
    _check_partition(model, groups)
    in_groups = {id(p) for g in groups for p in g["params"]}
    frozen = [backbone.whiten.weight] + [m.weight for m in backbone.modules() if isinstance(m, nn.BatchNorm2d)]
    assert all(id(p) not in in_groups for p in frozen)
    # BN biases (trainable) are in the scaled norm group; the whitening bias is a plain bias
    norm = _groups_by_name(groups)["norm"]
    assert {id(p) for p in norm["params"]} == {id(m.bias) for m in backbone.modules()
                                                if isinstance(m, nn.BatchNorm2d)}
    assert id(backbone.whiten.bias) in {id(p) for p in _groups_by_name(groups)["bias"]["params"]}
    backbone.set_epoch(10)
    after = model.parameter_groups(weight_decay=5e-4, base_lr=0.1)
    _check_partition(model, after)
    assert id(backbone.whiten.bias) not in {id(p) for g in after for p in g["params"]}


# -- real fits ------------------------------------------------------------------------------------------------------


class _Spy:
    def __init__(self, fn):
        self.fn, self.calls = fn, []

    def __call__(self, images, *args, **kwargs):
        self.calls.append(images.detach().clone())
        return self.fn(images, *args, **kwargs)


class _EpochEndBias(pl.Callback):
    def __init__(self):
        self.biases = []

    def on_train_epoch_end(self, trainer, pl_module):
        self.biases.append(pl_module.backbone.whiten.bias.detach().clone())


def _airbench_model():
    return Classifier(AirbenchNet(widths=(8, 16, 16), whiten_bias_epochs=1), {"label": 4}, optimizer=sgd(lr=0.1))


def _airbench_dm():
    return SyntheticDataModule(num_train=64, num_val=16, batch_size=32, image_size=32, num_classes=4)


def test_airbench_fit_runs_data_init_and_freezes_whitening_bias(tmp_path):
    torch.manual_seed(14)
    dm = _airbench_dm()
    model = _airbench_model()
    initial_bias = model.backbone.whiten.bias.detach().clone()
    spy = _Spy(model.backbone.data_init)
    model.backbone.data_init = spy
    biases = _EpochEndBias()
    trainer = make_trainer(tmp_path, max_epochs=2, callbacks=[biases], limit_val_batches=0)
    trainer.fit(model, datamodule=dm)
    assert len(spy.calls) == 1
    torch.testing.assert_close(spy.calls[0], dm.init_images())
    # the (frozen) whitening weights are exactly data_init's result on the init images
    ref = AirbenchNet(widths=(8, 16, 16))
    ref.data_init(dm.init_images())
    torch.testing.assert_close(model.backbone.whiten.weight, ref.whiten.weight, rtol=0, atol=0)
    # whiten_bias_epochs=1: the bias trains in epoch 0 only
    assert not torch.equal(biases.biases[0], initial_bias)
    assert torch.equal(biases.biases[1], biases.biases[0])
    assert not model.backbone.whiten.bias.requires_grad


def test_airbench_resume_does_not_rerun_data_init(tmp_path):
    torch.manual_seed(15)
    dm = _airbench_dm()
    model = _airbench_model()
    trainer = make_trainer(tmp_path, max_epochs=1, limit_val_batches=0)
    trainer.fit(model, datamodule=dm)
    ckpt = tmp_path / "one.ckpt"
    trainer.save_checkpoint(ckpt)
    # mark the checkpoint's whitening filters so that a re-initialisation would be visible
    state = torch.load(ckpt, weights_only=False)
    key = "backbone.features.0.weight"
    marked = torch.randn_like(state["state_dict"][key])
    state["state_dict"][key] = marked
    torch.save(state, ckpt)

    resumed = _airbench_model()
    spy = _Spy(resumed.backbone.data_init)
    resumed.backbone.data_init = spy
    trainer2 = make_trainer(tmp_path, max_epochs=2, limit_val_batches=0)
    trainer2.fit(resumed, datamodule=_airbench_dm(), ckpt_path=str(ckpt))
    assert spy.calls == []
    assert trainer2.global_step == 4
    torch.testing.assert_close(resumed.backbone.whiten.weight, marked, rtol=0, atol=0)


def test_channels_last_gives_same_logits():
    torch.manual_seed(16)
    plain = Classifier(SmallNet(width=4), {"label": 3}).eval()
    nhwc = Classifier(SmallNet(width=4), {"label": 3}, channels_last=True).eval()
    nhwc.load_state_dict(plain.state_dict())
    nhwc.setup("fit")
    conv = next(m for m in nhwc.modules() if isinstance(m, nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(nhwc.logits(x)["label"], plain.logits(x)["label"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("network", ["airbench", "small"])
def test_compile_fits_with_real_torch_compile_and_saves_plain_keys(tmp_path, monkeypatch, network):
    """speed.compile=true through a real torch.compile (eager backend: no minutes of inductor codegen on CI): the
    compiled module is the one called, its logits equal the plain backbone's, and checkpoints keep the plain keys.
    (Regression: the airbench net, a Sequential-like backbone, failed with 'does not support len()'.)"""
    real_compile, compiled = torch.compile, []

    def eager_compile(module, **kwargs):
        compiled.append(real_compile(module, backend="eager", **kwargs))
        return compiled[-1]

    monkeypatch.setattr(torch, "compile", eager_compile)
    torch.manual_seed(17)
    backbone = AirbenchNet(widths=(8, 16, 16), whiten_bias_epochs=1) if network == "airbench" else SmallNet(width=4)
    model = Classifier(backbone, {"label": 4}, optimizer=sgd(lr=0.1), compile=True)
    trainer = make_trainer(tmp_path, max_epochs=1, limit_val_batches=0)
    trainer.fit(model, datamodule=_airbench_dm())
    assert len(compiled) == 1 and model._compiled_backbone is compiled[0]
    model.eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.logits(x)["label"], model.heads["label"](model.backbone(x)))
    ckpt = tmp_path / "c.ckpt"
    trainer.save_checkpoint(ckpt)
    keys = torch.load(ckpt, weights_only=False)["state_dict"]
    assert keys and not any("_orig_mod" in k or "_compiled" in k for k in keys)


def test_chance_loss_is_ln_c_for_balanced_heads_and_the_label_entropy_for_imbalanced_ones():
    """Oracles: a constant prediction on balanced labels costs ln C per head (whatever the smoothing); on labels of
    frequencies p, without smoothing or weights, it costs the entropy of p; heads add with their loss weights."""
    import math
    from types import SimpleNamespace

    model = Classifier(SmallNet(width=4), {"a": 3, "b": 5}, loss_weights={"a": 1.0, "b": 0.5}, label_smoothing=0.1)
    assert model.chance_loss() == pytest.approx(math.log(3) + 0.5 * math.log(5), rel=1e-6)  # no data: uniform
    imbalanced = Classifier(SmallNet(width=4), {"label": 3})
    imbalanced.attached_datamodule = lambda: SimpleNamespace(class_counts={"label": [60, 30, 10]})
    p = [0.6, 0.3, 0.1]
    assert imbalanced.chance_loss() == pytest.approx(-sum(q * math.log(q) for q in p), rel=1e-6)
    large = Classifier(SmallNet(width=4), {"label": 3})  # a million labels: scored on 10,000 with the same shares
    large.attached_datamodule = lambda: SimpleNamespace(class_counts={"label": [600_000, 300_000, 100_000]})
    assert large.chance_loss() == pytest.approx(-sum(q * math.log(q) for q in p), rel=1e-6)
    # with class weights the constant prediction is what the weighted loss rewards: no constant beats it
    weighted = Classifier(SmallNet(width=4), {"label": 3}, class_weights={"label": [1.0, 2.0, 4.0]})
    weighted.class_weights = {"label": torch.tensor([1.0, 2.0, 4.0])}
    weighted.attached_datamodule = imbalanced.attached_datamodule
    y = torch.repeat_interleave(torch.arange(3), torch.tensor([60, 30, 10]))
    best = min(float(F.cross_entropy(torch.tensor([a, b, 0.0]).expand(100, 3), y, weight=torch.tensor([1.0, 2.0, 4.0])))
               for a in torch.linspace(-2, 2, 41) for b in torch.linspace(-2, 2, 41))
    assert weighted.chance_loss() == pytest.approx(best, abs=2e-3)

"""Backbones against independent oracles: parameter-count formulas from the papers' specs, manual heads,
eigen-decompositions of patch covariances, and layer-by-layer shapes."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lightning_modules import networks
from lightning_modules.networks import (NETWORKS, AirbenchConv, AirbenchNet, ResNet9, ResNet18, build_network,
                                        count_parameters)

torch.set_num_threads(1)


def _conv_bn(c_in: int, c_out: int, k: int = 3) -> int:
    """Parameters of a bias-free k x k conv followed by a BatchNorm (weight + bias)."""
    return k * k * c_in * c_out + 2 * c_out


def resnet9_formula(w: int = 64, classes: int = 10, c_in: int = 3) -> int:
    """Page's ResNet-9 counted from the spec (convs without bias, linear without bias)."""
    prep = _conv_bn(c_in, w)
    layer1 = _conv_bn(w, 2 * w) + 2 * _conv_bn(2 * w, 2 * w)
    layer2 = _conv_bn(2 * w, 4 * w)
    layer3 = _conv_bn(4 * w, 8 * w) + 2 * _conv_bn(8 * w, 8 * w)
    head = 8 * w * classes
    return prep + layer1 + layer2 + layer3 + head


def resnet18_formula(w: int = 64, classes: int = 10, c_in: int = 3) -> int:
    """CIFAR ResNet-18: 3x3 stem, 4 stages of 2 basic blocks, 1x1 conv + BN shortcuts on downsampling."""
    total = _conv_bn(c_in, w)
    c = w
    for i, c_out in enumerate((w, 2 * w, 4 * w, 8 * w)):
        for j in range(2):
            c_from = c if j == 0 else c_out
            total += _conv_bn(c_from, c_out) + _conv_bn(c_out, c_out)
            if j == 0 and (i > 0 or c_from != c_out):
                total += _conv_bn(c_from, c_out, k=1)
        c = c_out
    return total + c * classes + classes


def airbench_formula(widths=(64, 256, 256), classes: int = 10, c_in: int = 3) -> int:
    whiten_width = 2 * c_in * 4
    total = whiten_width * c_in * 4 + whiten_width  # 2x2 whitening conv with bias
    c = whiten_width
    for w in widths:
        total += _conv_bn(c, w) + _conv_bn(w, w)  # BN weight frozen but still a parameter
        c = w
    return total + c * classes  # linear without bias


# -- parameter counts ---------------------------------------------------------------------------------------------
def test_resnet9_parameter_count_matches_spec_formula():
    net = ResNet9()
    model = nn.ModuleDict({"backbone": net, "head": net.make_head(10)})
    n = count_parameters(model)
    assert n == resnet9_formula() == 6_573_120
    assert 6.56e6 < n < 6.58e6  # "about 6.57 M"


@pytest.mark.parametrize("width,classes", [(8, 10), (16, 7)])
def test_resnet9_count_scales_with_width_and_classes(width, classes):
    net = ResNet9(width=width)
    assert count_parameters(net) + count_parameters(net.make_head(classes)) == resnet9_formula(width, classes)


def test_resnet18_parameter_count():
    net = ResNet18()
    n = count_parameters(net) + count_parameters(net.make_head(10))
    assert n == resnet18_formula()
    assert n == 11_173_962  # the well-known CIFAR ResNet-18 count (kuangliu/pytorch-cifar)


def test_airbench_parameter_count():
    net = AirbenchNet()
    n = count_parameters(net) + count_parameters(net.make_head(10))
    assert n == airbench_formula()
    assert 1.9e6 < n < 2.0e6  # the config's "1.97 M"
    small = AirbenchNet(widths=(8, 16, 16))
    assert count_parameters(small) + count_parameters(small.make_head(5)) == airbench_formula((8, 16, 16), 5)


# -- ResNet-9 architecture ------------------------------------------------------------------------------------------
def test_resnet9_convs_have_no_bias_and_are_3x3():
    convs = [m for m in ResNet9(width=8).modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 8  # prep, layer1, 2 residual, layer2, layer3, 2 residual
    for conv in convs:
        assert conv.bias is None
        assert conv.kernel_size == (3, 3) and conv.padding == (1, 1) and conv.stride == (1, 1)


def test_resnet18_convs_have_no_bias():
    convs = [m for m in ResNet18(width=4).modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 8 * 2 + 3  # stem, 8 blocks x 2 convs, 3 downsampling shortcuts
    assert all(conv.bias is None for conv in convs)


def test_resnet9_stage_shapes():
    """Feed 32x32 images and record each top-level stage's output shape."""
    net = ResNet9().eval()
    shapes = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: shapes.append(tuple(out.shape[1:])))
             for m in net.features]
    with torch.no_grad():
        net(torch.randn(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    assert shapes == [
        (64, 32, 32),            # prep
        (128, 16, 16),           # layer1 conv + pool
        (128, 16, 16),           # layer1 residual
        (256, 8, 8),             # layer2 conv + pool
        (512, 4, 4),             # layer3 conv + pool
        (512, 4, 4),             # layer3 residual
        (512, 1, 1),             # global max-pool
        (512,),                  # flatten
    ]


def test_resnet9_block_order_and_global_max_pool():
    net = ResNet9(width=8)
    layer1 = net.features[1]
    assert [type(m) for m in layer1] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.MaxPool2d]
    assert isinstance(net.features[6], nn.AdaptiveMaxPool2d)
    # global *max* pool: the features are the per-channel maxima of the last residual stage's output
    x = torch.randn(2, 3, 16, 16)
    net.eval()
    with torch.no_grad():
        before_pool = net.features[:6](x)
        assert torch.equal(net(x), before_pool.amax(dim=(2, 3)))


def test_residual_adds_identity():
    net = ResNet9(width=8).eval()
    res = net.features[2]
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(res(x), x + res.body(x), rtol=0, atol=0)
        for m in res.body.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.zero_()
        # zero conv -> BN(eval, zero running mean, beta 0) -> ReLU gives 0: the block is the identity
        torch.testing.assert_close(res(x), x, rtol=0, atol=0)


def test_resnet9_head_has_no_bias_and_scales_logits_by_one_eighth():
    net = ResNet9(width=8)
    head = net.make_head(10)
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 1
    linear = linears[0]
    assert linear.bias is None and linear.in_features == 64 and linear.out_features == 10
    assert net.logit_scale == 0.125
    f = torch.randn(5, 64, dtype=torch.float64)
    head = head.double()
    manual = (f @ linear.weight.T) * 0.125
    torch.testing.assert_close(head(f), manual, rtol=1e-12, atol=1e-12)
    # and not e.g. the unscaled linear
    assert not torch.allclose(head(f), f @ linear.weight.T)


# -- all networks ---------------------------------------------------------------------------------------------------
EXPECTED_FEATURES = {"resnet9": 512, "resnet18": 512, "small": 64, "airbench": 256}


def test_networks_registry_is_complete():
    assert set(NETWORKS) == set(EXPECTED_FEATURES) | {"custom"}  # your own module: tests/test_networks_own.py


@pytest.mark.parametrize("name", sorted(EXPECTED_FEATURES))
def test_output_shapes(name):
    net = build_network(name).eval()
    head = net.make_head(7)
    with torch.no_grad():
        feats = net(torch.randn(2, 3, 32, 32))
        logits = head(feats)
    assert net.feature_dim == EXPECTED_FEATURES[name]
    assert feats.shape == (2, EXPECTED_FEATURES[name])
    assert logits.shape == (2, 7)


@pytest.mark.parametrize("name,bias", [("resnet9", False), ("resnet18", True), ("small", True), ("airbench", False)])
def test_head_bias_per_network(name, bias):
    head = build_network(name).make_head(3)
    linear = [m for m in head.modules() if isinstance(m, nn.Linear)][0]
    assert (linear.bias is not None) == bias


def test_build_network_passes_kwargs():
    net = build_network("small", width=4)
    assert net.feature_dim == 16


def test_unknown_network_name_raises():
    with pytest.raises(ValueError, match="model.backbone.name") as info:
        build_network("resnet50")
    msg = str(info.value)
    assert "resnet50" in msg
    for name in NETWORKS:
        assert name in msg


# -- airbench -------------------------------------------------------------------------------------------------------
def _correlated_images(n=48, c=3, size=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(n, c, size, size, generator=g)
    mix = torch.tensor([[1.0, 0.0, 0.0], [0.8, 0.6, 0.0], [0.5, 0.3, 0.2]])
    x = torch.einsum("dc,nchw->ndhw", mix, base)
    # spatial correlation between neighbouring pixels, plus a nonzero mean
    x = x + 0.7 * torch.roll(x, 1, dims=3) + 0.3
    return x


def _patch_second_moment(images: torch.Tensor, k: int = 2) -> torch.Tensor:
    """Non-centred 2x2 patch covariance, patch vectors flattened in (channel, row, col) order like conv weights."""
    cols = F.unfold(images.double(), kernel_size=k)  # (N, C*k*k, L)
    flat = cols.transpose(1, 2).reshape(-1, cols.shape[1])
    return flat.T @ flat / len(flat)


@pytest.mark.parametrize("eps", [5e-4, 0.3])
def test_airbench_data_init_whitens_patches(eps):
    images = _correlated_images()
    net = AirbenchNet(widths=(8, 16, 16))
    net.data_init(images, eps=eps)
    w = net.whiten.weight.detach().double()
    half = w.shape[0] // 2
    assert half == 12
    # second half is the negated first half
    torch.testing.assert_close(w[half:], -w[:half], rtol=0, atol=0)

    cov = _patch_second_moment(images)
    lam = torch.linalg.eigvalsh(cov).flip(0)  # descending, like the filters
    assert lam.min() > 1e-3  # full-rank patch covariance: the check below is meaningful
    # whitened outputs (no bias) over all patches of the init images
    out = F.conv2d(images.double(), w[:half])
    flat = out.permute(0, 2, 3, 1).reshape(-1, half)
    out_cov = flat.T @ flat / len(flat)
    expected = torch.diag(lam / (lam + eps))
    torch.testing.assert_close(out_cov, expected, rtol=0, atol=2e-5)
    # each filter is an eigenvector scaled by 1/sqrt(lambda + eps), in descending eigenvalue order
    flat_w = w[:half].reshape(half, -1)
    norms = flat_w.norm(dim=1)
    torch.testing.assert_close(norms, 1 / torch.sqrt(lam + eps), rtol=1e-5, atol=0)
    v = flat_w / norms[:, None]
    torch.testing.assert_close(v @ cov, lam[:, None] * v, rtol=0, atol=1e-5)


def test_airbench_on_grayscale_images_copies_informative_filters_into_empty_directions_and_trains_in_bf16():
    """Grayscale images as RGB (R = G = B) leave 8 of the 12 patch directions without variance. Their whitening
    channels sat at a constant, which BatchNorm (eps 1e-12) turned into a first gradient of ~4e5 in fp32 and inf
    in bf16: the run diverged at its second step. Now they copy informative directions, strongest first."""
    gray = _correlated_images(seed=2)[:, :1].expand(-1, 3, -1, -1).contiguous()
    net = AirbenchNet(widths=(8, 16, 16))
    net.data_init(gray)
    w = net.whiten.weight.detach().double()
    lam = torch.linalg.eigvalsh(_patch_second_moment(gray)).flip(0)
    assert int((lam > 1e-6).sum()) == 4  # the setting tests what it means to: 4 informative directions of 12
    out = F.conv2d(gray.double(), w[:12]).permute(0, 2, 3, 1).reshape(-1, 12)
    variance = (out**2).mean(0)
    assert variance.min() > 0.1  # every channel carries data (it was ~1e-13 on 8 of them)
    for i in range(4, 12):  # each empty direction's filter is the informative one it copies, in turn
        torch.testing.assert_close(w[i], w[(i - 4) % 4], rtol=0, atol=0)
    torch.testing.assert_close(w[12:], -w[:12], rtol=0, atol=0)
    colour = AirbenchNet(widths=(8, 16, 16))
    assert torch.equal(colour._informative(torch.linalg.eigvalsh(_patch_second_moment(_correlated_images())).flip(0),
                                           5e-4), torch.arange(12))  # full-rank data: every filter its own
    head, y = torch.nn.Linear(net.feature_dim, 3, bias=False), torch.arange(len(gray)) % 3
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.cross_entropy(head(net((gray - 0.3) / 1.5)), y)
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in [*net.parameters(), *head.parameters()] if p.grad is not None])
    assert torch.isfinite(grads).all() and float(grads.norm()) < 1e3


def test_airbench_data_init_small_eps_is_identity_covariance():
    images = _correlated_images(seed=1)
    net = AirbenchNet(widths=(8, 16, 16))
    net.data_init(images, eps=1e-9)
    w = net.whiten.weight.detach().double()[:12]
    out = F.conv2d(images.double(), w)
    flat = out.permute(0, 2, 3, 1).reshape(-1, 12)
    torch.testing.assert_close(flat.T @ flat / len(flat), torch.eye(12, dtype=torch.float64), rtol=0, atol=1e-4)


def test_airbench_whitening_conv_layout_and_frozen_weight():
    net = AirbenchNet()
    whiten = net.whiten
    assert whiten is net.features[0]
    assert whiten.weight.shape == (24, 3, 2, 2)
    assert whiten.bias is not None and whiten.padding == (0, 0)
    assert not whiten.weight.requires_grad
    assert net.logit_scale == pytest.approx(1 / 9)


def test_airbench_set_epoch_freezes_whitening_bias():
    net = AirbenchNet(widths=(8, 16, 16), whiten_bias_epochs=2)
    assert net.whiten.bias.requires_grad
    for epoch, trainable in [(0, True), (1, True), (2, False), (5, False)]:
        net.set_epoch(epoch)
        assert net.whiten.bias.requires_grad is trainable, epoch
        assert not net.whiten.weight.requires_grad


def test_airbench_batchnorm_weights_frozen_biases_trainable():
    net = AirbenchNet(widths=(8, 16, 16), bn_momentum=0.6)
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(norms) == 6
    for bn in norms:
        assert not bn.weight.requires_grad
        assert torch.equal(bn.weight, torch.ones_like(bn.weight))
        assert bn.bias.requires_grad
        assert bn.momentum == pytest.approx(0.4)  # airbench's momentum 0.6 in torch's convention
        assert bn.eps == 1e-12


def test_airbench_conv_dirac_init():
    torch.manual_seed(0)
    conv = AirbenchConv(4, 10)
    assert conv.bias is None and conv.kernel_size == (3, 3)
    x = torch.randn(2, 4, 7, 7)
    with torch.no_grad():
        y = conv(x)
    assert y.shape == (2, 10, 7, 7)  # 'same' padding
    torch.testing.assert_close(y[:, :4], x, rtol=0, atol=0)  # the first in_channels filters are identities
    expected = torch.zeros(4, 4, 3, 3)
    expected[range(4), range(4), 1, 1] = 1
    assert torch.equal(conv.weight[:4], expected)
    assert conv.weight[4:].abs().sum() > 0  # the rest keep the default random init
    assert not torch.allclose(y[:, 4:8], x)


def test_airbench_group_structure():
    net = AirbenchNet(widths=(8, 16, 16))
    groups = [m for m in net.features if isinstance(m, networks.AirbenchGroup)]
    assert [(g.conv1.in_channels, g.conv1.out_channels, g.conv2.out_channels) for g in groups] == [
        (24, 8, 8), (8, 16, 16), (16, 16, 16)]
    # global max-pool: airbench's MaxPool2d(3) on its 3x3 map at 32x32 inputs, and any other input size works
    assert isinstance(net.features[-2], nn.AdaptiveMaxPool2d) and net.features[-2].output_size == 1

"""Backbones trained from scratch: Page's ResNet-9, a CIFAR ResNet-18, a small fast net, airbench's net, and your
own network (``model=custom``: any torch module, given by its config).

Each backbone maps images (N, C, H, W) to features (N, feature_dim); :meth:`Backbone.make_head` builds a
classification head in the network's own style (ResNet-9: linear without bias, logits x 0.125), so the
classifier can attach one head per attribute.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn
import torch.nn.functional as F


def conv_bn(c_in: int, c_out: int, pool: bool = False, bn_momentum: float = 0.1) -> nn.Sequential:
    """3x3 conv (no bias) -> BatchNorm -> ReLU, optionally followed by 2x2 max-pool."""
    layers = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out, momentum=bn_momentum),
              nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Residual(nn.Module):
    def __init__(self, *blocks: nn.Module):
        super().__init__()
        self.body = nn.Sequential(*blocks)

    def forward(self, x):
        return x + self.body(x)


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


class Backbone(nn.Module):
    """Feature extractor ``features`` (images -> (N, feature_dim)) and the recipe for its heads."""

    def __init__(self, features: nn.Module, feature_dim: int, head_bias: bool, logit_scale: float = 1.0):
        super().__init__()
        self.features = features
        self.feature_dim = feature_dim
        self.head_bias = head_bias
        self.logit_scale = logit_scale

    def forward(self, x):
        return self.features(x)

    def make_head(self, num_classes: int) -> nn.Module:
        head = nn.Linear(self.feature_dim, num_classes, bias=self.head_bias)
        return head if self.logit_scale == 1.0 else nn.Sequential(head, Scale(self.logit_scale))


class ResNet9(Backbone):
    """Page's DAWNBench ResNet-9 (myrtle.ai, 'How to train your ResNet', 2018).

    prep conv 64; layer1 conv 128 + pool + residual(2 x conv 128); layer2 conv 256 + pool;
    layer3 conv 512 + pool + residual(2 x conv 512); global max-pool; linear 512 -> classes without bias;
    logits scaled by 0.125. About 6.57 M parameters with a 10-class head.
    """

    def __init__(self, in_channels: int = 3, width: int = 64,
                 logit_scale: float = 0.125):
        w = width
        features = nn.Sequential(
            conv_bn(in_channels, w),
            conv_bn(w, 2 * w, pool=True), Residual(conv_bn(2 * w, 2 * w), conv_bn(2 * w, 2 * w)),
            conv_bn(2 * w, 4 * w, pool=True),
            conv_bn(4 * w, 8 * w, pool=True), Residual(conv_bn(8 * w, 8 * w), conv_bn(8 * w, 8 * w)),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        )
        super().__init__(features, 8 * w, head_bias=False, logit_scale=logit_scale)


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(Backbone):
    """CIFAR ResNet-18 (He et al. 2016 with a 3x3 stem and no stem pooling, as usual for 32x32 inputs)."""

    def __init__(self, in_channels: int = 3, width: int = 64):
        w = width
        layers: list[nn.Module] = [nn.Conv2d(in_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
        c = w
        for i, c_out in enumerate((w, 2 * w, 4 * w, 8 * w)):
            stride = 1 if i == 0 else 2
            layers += [BasicBlock(c, c_out, stride), BasicBlock(c_out, c_out, 1)]
            c = c_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        super().__init__(nn.Sequential(*layers), c, head_bias=True)


class SmallNet(Backbone):
    """A small, fast net for smoke tests and short CPU runs: three conv-BN-ReLU-pool stages."""

    def __init__(self, in_channels: int = 3, width: int = 16):
        w = width
        features = nn.Sequential(
            conv_bn(in_channels, w, pool=True), conv_bn(w, 2 * w, pool=True), conv_bn(2 * w, 4 * w, pool=True),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        )
        super().__init__(features, 4 * w, head_bias=True)


class GhostFreeBatchNorm(nn.BatchNorm2d):
    """BatchNorm with a frozen unit scale and a learnable shift (airbench)."""

    def __init__(self, num_features: int, momentum: float = 0.6, eps: float = 1e-12):
        super().__init__(num_features, eps=eps, momentum=1 - momentum)
        self.weight.requires_grad_(False)


class AirbenchConv(nn.Conv2d):
    """3x3 'same' conv without bias whose first in_channels filters start as identity (dirac) maps."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__(c_in, c_out, 3, padding="same", bias=False)

    def reset_parameters(self):
        super().reset_parameters()
        w = self.weight.data
        torch.nn.init.dirac_(w[: w.size(1)])


class AirbenchGroup(nn.Module):
    def __init__(self, c_in: int, c_out: int, bn_momentum: float):
        super().__init__()
        self.conv1, self.pool = AirbenchConv(c_in, c_out), nn.MaxPool2d(2)
        self.norm1, self.conv2 = GhostFreeBatchNorm(c_out, bn_momentum), AirbenchConv(c_out, c_out)
        self.norm2, self.activ = GhostFreeBatchNorm(c_out, bn_momentum), nn.GELU()

    def forward(self, x):
        x = self.activ(self.norm1(self.pool(self.conv1(x))))
        return self.activ(self.norm2(self.conv2(x)))


#: a whitening direction whose data variance, once whitened, is under this share of a unit carries only rounding
MIN_WHITENED_VARIANCE = 1e-3


class AirbenchNet(Backbone):
    """Keller Jordan's airbench94 network (Jordan 2024, '94% on CIFAR-10 in 3.29 seconds on a single GPU').

    A frozen 2x2 patch-whitening conv (initialised from the training data with :meth:`data_init`), then three
    conv groups (64, 256, 256), global max-pool (airbench's max-pool 3 at 32x32), linear without bias, logits
    scaled by 1/9.
    The whitening conv's bias trains only for the first ``whiten_bias_epochs`` epochs (see :meth:`set_epoch`).
    """

    def __init__(self, in_channels: int = 3, widths=(64, 256, 256),
                 bn_momentum: float = 0.6, logit_scale: float = 1 / 9, whiten_bias_epochs: int = 3):
        k = 2
        whiten_width = 2 * in_channels * k * k
        self.whiten_bias_epochs = whiten_bias_epochs
        w1, w2, w3 = widths
        whiten = nn.Conv2d(in_channels, whiten_width, k, padding=0, bias=True)
        whiten.weight.requires_grad_(False)
        features = nn.Sequential(
            whiten, nn.GELU(),
            AirbenchGroup(whiten_width, w1, bn_momentum), AirbenchGroup(w1, w2, bn_momentum),
            AirbenchGroup(w2, w3, bn_momentum), nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        )
        super().__init__(features, w3, head_bias=False, logit_scale=logit_scale)

    @property
    def whiten(self) -> nn.Conv2d:
        return self.features[0]

    @torch.no_grad()
    def data_init(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the whitening filters to the scaled eigenvectors of the 2x2 patch covariance of ``images``."""
        w = self.whiten.weight
        c, (h, k) = images.shape[1], w.shape[2:]
        patches = images.float().unfold(2, h, 1).unfold(3, k, 1).transpose(1, 3).reshape(-1, c, h, k)
        flat = patches.reshape(len(patches), -1).double()
        cov = flat.T @ flat / len(flat)
        eigenvalues, eigenvectors = torch.linalg.eigh(cov, UPLO="U")
        eigenvalues, eigenvectors = eigenvalues.flip(0), eigenvectors.T.reshape(c * h * k, c, h, k).flip(0)
        scaled = eigenvectors / torch.sqrt(eigenvalues.view(-1, 1, 1, 1) + eps)
        scaled = scaled[self._informative(eigenvalues, eps)]
        w.copy_(torch.cat((scaled, -scaled)).to(w.dtype))

    @staticmethod
    def _informative(eigenvalues: torch.Tensor, eps: float) -> torch.Tensor:
        """Which filter each whitening channel takes: its own, or, where its direction carries nothing but rounding
        (whitened variance ``eigenvalue / (eigenvalue + eps)`` under :data:`MIN_WHITENED_VARIANCE`), a copy of an
        informative one, strongest first. Grayscale images (R = G = B) leave 8 of 12 directions empty: their
        channels then sat at a constant, which the following BatchNorm (eps 1e-12) turned into a first gradient of
        about 4e5 in fp32 and inf in bf16 (the run diverged at its second step). On the CIFAR-10 copy the least
        whitened variance is 0.2: nothing is copied there."""
        informative = eigenvalues / (eigenvalues + eps) >= MIN_WHITENED_VARIANCE
        kept, empty = informative.nonzero().flatten(), (~informative).nonzero().flatten()
        index = torch.arange(len(eigenvalues))
        if len(kept) and len(empty):
            index[empty] = kept[torch.arange(len(empty)) % len(kept)]
        return index

    def set_epoch(self, epoch: int) -> None:
        self.whiten.bias.requires_grad_(epoch < self.whiten_bias_epochs)


class OwnNetwork(Backbone):
    """Your own network (``model=custom``): ``module``, any torch module that maps images (N, 3, H, W) to features,
    (N, D) or (N, D, ...) (flattened), given by its config (``{_target_: torchvision.models.resnet18, num_classes:
    512}``), which a checkpoint keeps so that predict and eval rebuild it. D is read off one forward pass of two
    blank ``probe_size`` images, in eval mode and without gradients (no weight or statistic changes); one linear head
    with a bias per attribute goes on top."""

    def __init__(self, module: Mapping[str, Any], probe_size: int = 32):
        from hydra.utils import instantiate  # only here: the built-in networks need no Hydra

        if "_target_" not in module:
            raise ValueError("model.backbone.module: give the module's class or function as _target_ (e.g. "
                             "model.backbone.module._target_=torchvision.models.resnet18)")
        try:
            built = instantiate(module, _convert_="all")
        except Exception as e:  # Hydra's error (a misspelt target, a bad argument) does not name the key
            why = _build_error(e, module["_target_"])
            raise ValueError(f"model.backbone.module: cannot build {module['_target_']}: {why}") from None
        if not isinstance(built, nn.Module):
            raise ValueError(f"model.backbone.module: {module['_target_']} returned a {type(built).__name__}, "
                             "not a torch module")
        features = nn.Sequential(built, nn.Flatten())
        super().__init__(features, _feature_dim(features, module["_target_"], int(probe_size)), head_bias=True)


def _build_error(error: BaseException, target: str) -> str:
    """Why Hydra could not build ``target``, said plainly: the innermost cause (Hydra's own words hide the import
    error of the user's module behind "Error locating target"), with where Python looks for a module it cannot find."""
    root = error
    while root.__cause__ is not None:
        root = root.__cause__
    if isinstance(root, ModuleNotFoundError) and root.name == target:  # torchvision.models.resnet1000
        return f"there is no {target} (no such module, nor such a name in {target.rpartition('.')[0] or 'Python'})"
    if isinstance(root, ImportError):
        top = target.split(".")[0]
        where = (f"; is the folder holding {top} on PYTHONPATH (e.g. PYTHONPATH=/path/to/it python train.py ...)?"
                 if isinstance(root, ModuleNotFoundError) and root.name == top else "")
        return f"importing it failed: {type(root).__name__}: {root}{where}"
    return str(root if root is not error else error).splitlines()[0]


def resnet18_features() -> nn.Module:
    """torchvision's ResNet-18 (ImageNet-shaped) without its classifier: 512 features an image. ``model=custom``'s
    default module: a function without arguments, so a module of one's own given by ``_target_`` inherits none."""
    from torchvision.models import resnet18

    net = resnet18()
    net.fc = nn.Identity()
    return net


def blank_forward(module: nn.Module, side: int, channels: int = 3):
    """``module`` on two blank images, in eval mode and without gradients (no weight, statistic or RNG changes; its
    mode is put back): how a network's output size, or whether it takes an image size at all, is read."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            return module(torch.zeros(2, channels, side, side))
    finally:
        module.train(was_training)


def _feature_dim(features: nn.Module, target: str, size: int) -> int:
    try:
        out = blank_forward(features, size)
    except Exception as e:  # whatever the module raises: the user's code
        raise ValueError(f"model.backbone.module: {target} fails on two blank 3x{size}x{size} images ({e}); it "
                         "must map images (N, 3, H, W) to features") from None
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2:
        raise ValueError(f"model.backbone.module: {target} returned {type(out).__name__} "
                         f"{tuple(getattr(out, 'shape', ()))} for two images; it must return a tensor, one row of "
                         "features per image")
    return int(out.shape[1])


NETWORKS = {"resnet9": ResNet9, "resnet18": ResNet18, "small": SmallNet, "airbench": AirbenchNet,
            "custom": OwnNetwork}


def network_name(backbone: Mapping[str, Any]) -> str:
    """How a header or an hparams table names the configured network: ``custom (mypackage.MyNet)`` for your own."""
    module = backbone.get("module") if backbone.get("name") == "custom" else None
    return f"custom ({module.get('_target_')})" if module else str(backbone.get("name"))


def build_network(name: str, **kwargs) -> Backbone:
    """Build a backbone by name; an unknown name gets an error listing the known ones. The backbone remembers
    its arguments in ``build_args`` (plain types), so a checkpoint can rebuild it without the config."""
    if name not in NETWORKS:
        raise ValueError(f"model.backbone.name: unknown network {name!r}; choose one of {sorted(NETWORKS)}")
    net = NETWORKS[name](**kwargs)
    net.build_args = {"name": name, **{k: _plain(v) for k, v in kwargs.items()}}
    return net


def _plain(value):
    """Config containers (Hydra's DictConfig/ListConfig) -> dict/list, so checkpoints load with weights_only."""
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListConfig":
        return [_plain(v) for v in value]
    return value


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())

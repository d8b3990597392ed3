"""Learnable synthetic images for smoke runs and tests: no files needed.

Each class has a fixed random low-frequency colour pattern; an image is its class pattern plus Gaussian pixel
noise. A small net learns it well above chance in a few epochs, and a range
test on it shows a real loss curve (falling, then exploding).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from datamodules.tensor_images import TrainTestDataModule


def make_images(n: int, num_classes: int, image_size: int, noise: float, generator: torch.Generator,
                patterns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.randint(num_classes, (n,), generator=generator)
    base = patterns[labels]  # (n, 3, S, S) in [0, 1]
    images = base + noise * torch.randn(base.shape, generator=generator)
    return (images.clamp(0, 1) * 255).round().to(torch.uint8), labels


class SyntheticDataModule(TrainTestDataModule):
    """Class-dependent patterns plus noise.

    Args:
        num_train / num_val: training images / images in each of the validation and test splits (drawn apart).
        num_classes: number of classes (one head ``label``).
        image_size: side of the square RGB images.
        noise: std of the pixel noise on a [0, 1] scale (larger: harder).
        seed: seed of patterns and images.
    """

    def __init__(self, num_train: int = 2048, num_val: int = 512, num_classes: int = 10, image_size: int = 32,
                 noise: float = 0.6, seed: int = 0, **kwargs):
        super().__init__(seed=seed, **kwargs)
        for key, value in (("num_train", num_train), ("num_val", num_val), ("num_classes", num_classes),
                           ("image_size", image_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"data.{key} must be an integer >= 1, got {value!r}")
        self.num_train, self.num_val, self.num_classes = num_train, num_val, num_classes
        self.size, self.noise = image_size, noise

    @property
    def heads(self) -> dict[str, int]:
        return {"label": self.num_classes}

    def _patterns(self, g: torch.Generator) -> torch.Tensor:
        coarse = torch.rand(self.num_classes, 3, 4, 4, generator=g)
        return F.interpolate(coarse, size=(self.size, self.size), mode="bilinear", align_corners=False)

    def load(self):
        g = torch.Generator().manual_seed(self.seed)
        patterns = self._patterns(g)
        train_x, train_y = make_images(self.num_train, self.num_classes, self.size, self.noise, g, patterns)
        test_x, test_y = make_images(self.num_val, self.num_classes, self.size, self.noise, g, patterns)
        return train_x, train_y, test_x, test_y, [f"class_{i}" for i in range(self.num_classes)]

    def load_validation(self):
        """``num_val`` more images of the same classes, drawn apart from the test images."""
        patterns = self._patterns(torch.Generator().manual_seed(self.seed))
        g = torch.Generator().manual_seed(self.seed + 7919)
        return make_images(self.num_val, self.num_classes, self.size, self.noise, g, patterns)

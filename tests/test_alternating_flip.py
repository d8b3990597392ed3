"""data.flip=alternating mirrors exactly the images it should, epoch by epoch, for every data source.

Each training image that leaves the train loader (and the batch augmentation, with crop and cutout off) is
compared with its input image, decoded independently of the data module (from the image files, or the CIFAR
pickles), and with that image's mirror: the images mirrored in epoch 0 must be the complement of those mirrored in
epoch 1, the same again in epoch 2, and what :func:`datamodules.augment.alternating_flip` says.
"""
import numpy as np
import pytest
import torch

from datamodules.augment import alternating_flip
from datamodules.cifar10 import CIFAR10DataModule
from datamodules.csv_images import CSVImageDataModule
from datamodules.image_cache import decode_image
from datamodules.image_folder import ImageFolderDataModule
from image_files import write_csv_dataset, write_folder_dataset, write_image
from test_datamodules import write_fake_cifar

FLAT = np.full((16, 20, 3), (90, 140, 200), np.uint8)  # a symmetric image: mirrored or not, the same pixels
NO_CROP = dict(flip="alternating", crop_padding=0, cutout=0, batch_size=4, drop_last=False, decode_workers=0)


def folder_source(tmp_path, **kwargs):
    root = write_folder_dataset(tmp_path / "folder", per_class=6)
    write_image(root / "train" / "red" / "flat.png", FLAT)
    return ImageFolderDataModule(root=str(root), image_size=16, val_fraction=0.25, **NO_CROP, **kwargs)


def csv_source(tmp_path, **kwargs):
    write_image(tmp_path / "csv" / "images" / "flat.png", FLAT)
    path = write_csv_dataset(tmp_path / "csv", n=24,
                             rows_extra=[{"file": "images/flat.png", "colour": "red", "size_class": "1"}])
    return CSVImageDataModule(csv_path=str(path), image_size=12, val_fraction=0.25, stratify_on="size_class",
                              **NO_CROP, **kwargs)


def file_inputs(dm) -> torch.Tensor:
    """The training images decoded from their files, in the data module's training order."""
    return torch.stack([torch.from_numpy(decode_image(p, dm.image_size, dm.resize_mode))
                        for p in dm.split_paths["train"]])


def mirrored_by_epoch(dm, inputs: torch.Tensor, epochs=(0, 1, 2)) -> dict[int, list]:
    """{epoch: per input image True (mirrored), False (as it is) or None (symmetric: cannot tell)}, read off
    what the train loader and ``on_after_batch_transfer`` make of every image, each image seen exactly once."""
    plain, mirror = dm.normalize(inputs), dm.normalize(inputs.flip(-1))
    loader, out = dm.train_dataloader(), {}
    for epoch in epochs:
        loader.sampler.set_epoch(epoch)
        seen = [[] for _ in inputs]
        for images, labels, key in loader:
            x, _ = dm.on_after_batch_transfer((images, labels, key), 0)
            for image in x:
                as_is = (plain - image).abs().amax(dim=(1, 2, 3)) < 1e-5
                mirrored = (mirror - image).abs().amax(dim=(1, 2, 3)) < 1e-5
                (i,) = torch.nonzero(as_is | mirrored).flatten().tolist()  # exactly one input image
                seen[i].append(None if as_is[i] and mirrored[i] else bool(mirrored[i]))
        assert all(len(s) == 1 for s in seen), f"epoch {epoch}: not every image exactly once"
        out[epoch] = [s[0] for s in seen]
    return out


def check_alternates(dm, inputs: torch.Tensor) -> None:
    assert torch.equal(dm.train_set.images, inputs)  # the data module trains on these, in this order
    symmetric = [torch.equal(x, x.flip(-1)) for x in inputs]
    mirrored = mirrored_by_epoch(dm, inputs)
    assert all((flag is None) == sym for flags in mirrored.values() for flag, sym in zip(flags, symmetric))
    asymmetric = [i for i in range(len(inputs)) if not symmetric[i]]
    first = {i for i in asymmetric if mirrored[0][i]}
    assert 0 < len(first) < len(asymmetric)  # a part is mirrored, not none and not all
    assert {i for i in asymmetric if mirrored[1][i]} == set(asymmetric) - first  # the complement in epoch 1
    assert {i for i in asymmetric if mirrored[2][i]} == first  # and back in epoch 2
    for epoch, flags in mirrored.items():  # the very images alternating_flip mirrors with the data module's bits
        expected = alternating_flip(inputs, dm.train_set.flipped_first, epoch)
        assert [flags[i] for i in asymmetric] == [not torch.equal(expected[i], inputs[i]) for i in asymmetric]


@pytest.mark.parametrize("augment", ["batch", "albumentations"])
@pytest.mark.parametrize("source", [folder_source, csv_source], ids=["image_folder", "csv"])
def test_own_images_mirror_a_fixed_part_then_the_rest(tmp_path, source, augment):
    if augment == "albumentations":
        pytest.importorskip("albumentations")
    dm = source(tmp_path, augment=augment, cache="mmap" if augment == "batch" else "memory")
    dm.setup("fit")
    inputs = file_inputs(dm)
    assert sum(torch.equal(x, x.flip(-1)) for x in inputs) == 1  # the flat image is among the training images
    check_alternates(dm, inputs)


def test_cifar_batches_mirror_a_fixed_half_then_the_other_half(tmp_path):
    expected = write_fake_cifar(tmp_path, n_train=50)
    dm = CIFAR10DataModule(root=str(tmp_path), **{k: v for k, v in NO_CROP.items() if k != "decode_workers"})
    dm.setup("fit")
    pixels = np.concatenate([expected[f"data_batch_{i}"][0] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    check_alternates(dm, torch.from_numpy(pixels))


def test_only_alternating_flip_has_flip_bits_and_they_follow_the_seed(tmp_path):
    dms = [folder_source(tmp_path, seed=s) for s in (0, 0, 1)]
    for dm in dms:
        dm.setup("fit")
    assert torch.equal(dms[0].train_set.flipped_first, dms[1].train_set.flipped_first)
    assert not torch.equal(dms[0].train_set.flipped_first, dms[2].train_set.flipped_first)
    for flip in (True, False):
        dm = ImageFolderDataModule(root=str(tmp_path / "folder"), image_size=16, val_fraction=0.25,
                                   **{**NO_CROP, "flip": flip})
        dm.setup("fit")
        assert dm.train_set.flipped_first is None

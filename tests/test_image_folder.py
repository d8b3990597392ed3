"""The image-folder DataModule: layouts, seeded stratified splits, bad input, and the batched augmentations."""
import os
import subprocess
import sys
import warnings
from collections import Counter

import numpy as np

import pytest
import torch

from conftest import CIFAR_TOOL, SHARED_DATA
from datamodules.augment import batch_augment, color_jitter, random_resized_crop
from datamodules.image_folder import ImageFolderDataModule
from image_files import COLORS, class_image, write_folder_dataset, write_image


def folder_dm(root, **kwargs):
    kwargs = {"batch_size": 4, "decode_workers": 0, "val_fraction": 0.25, **kwargs}
    return ImageFolderDataModule(root=str(root), **kwargs)


def labels_of(dataset):
    return dataset.labels.tolist()


def test_reads_classes_and_decodes_every_mode_to_rgb(tmp_path):
    write_folder_dataset(tmp_path, per_class=8)
    dm = folder_dm(tmp_path, image_size=16)
    dm.setup("fit")
    assert dm.heads == {"label": 3} and dm.vocabularies == {"label": sorted(COLORS)} and dm.classes == sorted(COLORS)
    assert dm.train_set.images.shape[1:] == (3, 16, 16) and dm.train_set.images.dtype == torch.uint8
    # every class is recognisable by its colour, whatever the file's format and mode (grey images are grey)
    for images, labels in ((dm.train_set.images, dm.train_set.labels), (dm.val_set.images, dm.val_set.labels)):
        for x, y in zip(images, labels):
            name = dm.classes[int(y)]
            mean = x.float().mean(dim=(1, 2))
            if float(mean.max() - mean.min()) > 20:  # coloured (not a grayscale file)
                assert int(mean.argmax()) == int(np.argmax(COLORS[name]))
    # normalisation statistics are the training split's
    assert torch.allclose(dm.mean, dm.train_set.images.double().div(255).mean(dim=(0, 2, 3)).float(), atol=1e-5)


def test_class_folders_named_by_integers_are_numbered_in_numeric_order_as_a_csvs_labels(tmp_path):
    """Folders 0, 1, 2, 10 were classes ['0', '1', '10', '2'] (text order; a CSV's integer labels sort as numbers):
    the confusion matrices and predictions' class indices read out of order. The images keep their folder's class."""
    names = ["0", "1", "2", "10"]
    for k, name in enumerate(names):
        for i in range(4):
            write_image(tmp_path / "train" / name / f"{i}.png", class_image(COLORS[sorted(COLORS)[k % 3]], seed=i))
    dm = folder_dm(tmp_path, image_size=8)  # a quarter of each class held out
    dm.setup("fit")
    assert dm.vocabularies == {"label": names}
    assert Counter(labels_of(dm.train_set)) == {0: 3, 1: 3, 2: 3, 3: 3}
    # folder '10' (index 3) holds the first colour again: its images are labelled 3, not 2
    first = dm.train_set.images[[i for i, y in enumerate(labels_of(dm.train_set)) if y == 3]].float().mean((0, 2, 3))
    assert int(first.argmax()) == int(np.argmax(COLORS[sorted(COLORS)[0]]))


def test_split_is_stratified_and_deterministic_for_a_seed(tmp_path):
    write_folder_dataset(tmp_path, per_class=8)
    a, b, c = folder_dm(tmp_path, seed=1), folder_dm(tmp_path, seed=1), folder_dm(tmp_path, seed=2)
    for dm in (a, b, c):
        dm.setup("fit")
    assert Counter(labels_of(a.val_set)) == {0: 2, 1: 2, 2: 2}  # 25% of every class of 8
    assert Counter(labels_of(a.train_set)) == {0: 6, 1: 6, 2: 6}
    assert a.split_paths == b.split_paths and a.split_paths["val"] != c.split_paths["val"]
    assert not set(a.split_paths["val"]) & set(a.split_paths["train"])
    assert torch.equal(a.val_set.images, b.val_set.images)
    assert a.split_paths["test"] == [] and torch.equal(a.test_set.images, a.val_set.images)  # no test: = val


def test_test_fraction_and_explicit_val_and_test_folders(tmp_path):
    write_folder_dataset(tmp_path / "split", per_class=10)
    dm = folder_dm(tmp_path / "split", val_fraction=0.2, test_fraction=0.3)
    dm.setup("fit")
    assert Counter(labels_of(dm.test_set)) == {0: 3, 1: 3, 2: 3} and len(dm.val_set) == 6 and len(dm.train_set) == 15
    write_folder_dataset(tmp_path / "given", per_class=4, splits=("train", "val", "test"))
    dm = folder_dm(tmp_path / "given")
    dm.setup("fit")
    assert len(dm.train_set) == len(dm.val_set) == len(dm.test_set) == 12  # the folders, no fraction taken
    assert all("/val/" in p for p in dm.split_paths["val"]) and all("/test/" in p for p in dm.split_paths["test"])


def test_a_val_or_test_folder_without_some_class_is_named_in_a_warning(tmp_path):
    write_folder_dataset(tmp_path, per_class=4, splits=("train", "val", "test"))
    names = sorted(COLORS)
    for image in (tmp_path / "val" / names[1]).iterdir():
        image.unlink()
    (tmp_path / "val" / names[1]).rmdir()
    with pytest.warns(UserWarning, match=rf"the val split has no images of class\(es\) \['{names[1]}'\] of "
                                         rf"attribute 'label'; its accuracy covers the other 2 of 3 classes \(its macro F1 counts an "
                                         rf"absent class only where the model predicts it") as caught:
        folder_dm(tmp_path).setup("fit")
    assert not [w for w in caught if "test split" in str(w.message)]  # the test folder holds every class
    full = write_folder_dataset(tmp_path / "full", per_class=4, splits=("train", "val", "test"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder_dm(full).setup("fit")
    assert not [w for w in caught if "has no images of" in str(w.message)]


def test_batched_ops_compose_in_batch_augment(tmp_path):
    dm = folder_dm(tmp_path, crop_padding=0, flip=False, resized_crop_scale=[0.3, 0.6], color_jitter=0.3)
    assert dm.batched_ops == {"resized_crop_scale": [0.3, 0.6], "resized_crop_ratio": (3 / 4, 4 / 3), "jitter": 0.3}
    x = torch.randn(8, 3, 16, 16)
    mean, std = torch.full((3,), 0.5), torch.full((3,), 0.25)
    out = batch_augment(x, 0, False, 0, torch.Generator().manual_seed(3), mean=mean, std=std, **dm.batched_ops)
    gen = torch.Generator().manual_seed(3)
    expected = color_jitter(random_resized_crop(x, (0.3, 0.6), (3 / 4, 4 / 3), gen), 0.3, mean, std, gen)
    assert torch.allclose(out, expected) and not torch.allclose(out, x)


def test_random_resized_crop_and_colour_jitter():
    x = torch.rand(6, 3, 16, 16)
    same = random_resized_crop(x, (1.0, 1.0), (1.0, 1.0), torch.Generator().manual_seed(0))
    assert torch.allclose(same, x, atol=1e-5)  # the whole image: identity
    zoom = random_resized_crop(x, (0.25, 0.25), (1.0, 1.0), torch.Generator().manual_seed(0))
    assert zoom.std() < x.std()  # a quarter of the area upsampled x2: smoother
    mean, std = torch.tensor([0.5, 0.4, 0.3]), torch.tensor([0.2, 0.25, 0.3])
    normed = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    assert torch.equal(color_jitter(normed, 0.0, mean, std), normed)
    jittered = color_jitter(normed, 0.4, mean, std, torch.Generator().manual_seed(1))
    back = jittered * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1)
    assert back.min() >= -1e-6 and back.max() <= 1 + 1e-6 and not torch.allclose(jittered, normed)
    with pytest.raises(ValueError, match="data.resized_crop_scale"):
        ImageFolderDataModule(root="x", resized_crop_scale=[0.5, 2.0])


def test_bad_files_fail_with_names_or_are_skipped_with_a_count(tmp_path):
    write_folder_dataset(tmp_path, per_class=6)
    (tmp_path / "train" / "red" / "broken.jpg").write_bytes(b"garbage")
    dm = folder_dm(tmp_path)
    with pytest.raises(ValueError) as e:
        dm.setup("fit")
    assert "1 file(s)" in str(e.value) and "broken.jpg" in str(e.value) and "data.skip_bad_images=true" in str(e.value)
    (tmp_path / "train" / "red" / "notes.txt").write_text("not an image")
    dm = folder_dm(tmp_path, skip_bad_images=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm.prepare_data()  # as train.py calls it: the files are read twice, each warning is given once
        dm.setup("fit")
    messages = [str(w.message) for w in caught]
    assert sum("skipping 1 file" in m for m in messages) == 1, messages
    assert sum("ignoring 1 file(s) that are not images" in m for m in messages) == 1, messages
    assert len(dm.train_set) + len(dm.val_set) == 18 and any(p.endswith("broken.jpg") for p in dm.bad_files)


@pytest.mark.parametrize("case,message", [
    ("no_root", "data does not exist"),
    ("a_file", "data is a file, not a folder"),
    ("no_train", "train does not exist"),
    ("no_classes", "has no class folders"),
    ("one_class", "has one class folder \\(red\\); a classifier needs at least 2"),
    ("empty_class", "has no images"),
    ("val_only_class", "no counterpart in"),
])
def test_bad_layouts_are_refused_naming_the_folder(tmp_path, case, message):
    root = tmp_path / "data"
    if case == "no_train":  # val/ without train/: not the flat layout, a missing train/
        write_folder_dataset(root, per_class=3, splits=("val",))
    elif case == "a_file":  # data.root given a file (an image, a CSV), not a folder
        root.parent.mkdir(parents=True, exist_ok=True)
        root.write_bytes(b"not a folder")
    elif case != "no_root":
        (root / "train").mkdir(parents=True)
    if case in ("empty_class", "val_only_class"):
        write_folder_dataset(root, per_class=3)
    if case == "one_class":
        write_image(root / "train" / "red" / "0.png", class_image((255, 0, 0)))
    if case == "empty_class":
        (root / "train" / "yellow").mkdir()
        (root / "train" / "yellow" / "notes.txt").write_text("no images here")
    if case == "val_only_class":
        write_image(root / "val" / "purple" / "0.png", class_image((128, 0, 128)))
    with pytest.raises((ValueError, FileNotFoundError), match=message) as e:
        folder_dm(root).prepare_data()
    assert "data.root" in str(e.value)


def test_class_folders_right_under_the_root_are_the_training_images(tmp_path):
    """torchvision's ImageFolder layout, ROOT/<class>/*, reads as ROOT/train/<class>/* does: same classes, images,
    labels and seeded splits (it stopped with "ROOT/train does not exist")."""
    write_folder_dataset(tmp_path / "std", per_class=8)
    (tmp_path / "std" / "train").rename(tmp_path / "flat")
    write_folder_dataset(tmp_path / "std", per_class=8)
    flat, std = folder_dm(tmp_path / "flat", test_fraction=0.25), folder_dm(tmp_path / "std", test_fraction=0.25)
    for dm in (flat, std):
        dm.setup("fit")
    assert flat.classes == std.classes == sorted(COLORS)
    for split in ("train", "val", "test"):
        names = [[p.split(os.sep)[-2:] for p in dm.split_paths[split]] for dm in (flat, std)]
        assert names[0] == names[1] and names[0]
        assert torch.equal(getattr(flat, f"{split}_set").images, getattr(std, f"{split}_set").images)
        assert labels_of(getattr(flat, f"{split}_set")) == labels_of(getattr(std, f"{split}_set"))


def test_no_validation_and_no_test_images_is_refused(tmp_path):
    write_folder_dataset(tmp_path, per_class=4)
    with pytest.raises(ValueError, match="data.val_fraction > 0"):
        folder_dm(tmp_path, val_fraction=0.0, test_fraction=0.0).setup("fit")


@pytest.mark.skipif(not (CIFAR_TOOL.exists() and (SHARED_DATA / "cifar10-jpeg.npz").exists()),
                    reason="the offline CIFAR-10 copy (../shared/data) is absent")
def test_reads_the_cifar10_jpeg_folder_layout(tmp_path):
    subprocess.run([sys.executable, str(CIFAR_TOOL), "folder", str(tmp_path), "--per-class", "4"], check=True,
                   capture_output=True)
    dm = folder_dm(tmp_path, val_fraction=0.25)
    dm.setup("fit")
    assert len(dm.classes) == 10 and "airplane" in dm.classes
    assert len(dm.train_set) == 30 and len(dm.val_set) == 10 and len(dm.test_set) == 40  # test/ folder
    assert dm.train_set.images.shape[1:] == (3, 32, 32)
    assert np.isclose(float(dm.train_set.images.float().mean()), 255 * float(dm.mean.mean()), rtol=1e-3)


def test_memory_cache_is_shared_across_seeds_and_mmap_gives_the_same_images(tmp_path):
    write_folder_dataset(tmp_path, per_class=8)
    cache = tmp_path / ".image_cache"
    dms = [folder_dm(tmp_path, seed=s) for s in (1, 2)]
    for dm in dms:
        dm.setup("fit")
    assert len(list(cache.glob("*.npy"))) == 1  # one decode for both seeds
    mm = folder_dm(tmp_path, seed=1, cache="mmap")
    mm.setup("fit")
    assert len(list(cache.glob("*.npy"))) == 2  # split order: its own file
    assert mm.split_paths == dms[0].split_paths
    for name in ("train_set", "val_set"):
        assert torch.equal(getattr(mm, name).images, getattr(dms[0], name).images)
        assert torch.equal(getattr(mm, name).labels, getattr(dms[0], name).labels)


def test_normalisation_statistics_are_cached(tmp_path):
    write_folder_dataset(tmp_path, per_class=4)
    folder_dm(tmp_path).setup("fit")
    (stats,) = (tmp_path / ".image_cache").glob("*.stats.json")
    stats.write_text('{"mean": [0.1, 0.2, 0.3], "std": [1.0, 2.0, 3.0]}')  # a cache hit must read these
    dm = folder_dm(tmp_path)
    dm.setup("fit")
    assert dm.mean.tolist() == pytest.approx([0.1, 0.2, 0.3]) and dm.std.tolist() == pytest.approx([1.0, 2.0, 3.0])
    other = folder_dm(tmp_path, seed=7)  # another training split: its own statistics
    other.setup("fit")
    assert other.mean.tolist() != pytest.approx([0.1, 0.2, 0.3])


def test_albumentations_pipeline_from_config(tmp_path):
    write_folder_dataset(tmp_path, per_class=4)
    flip = [{"_target_": "albumentations.HorizontalFlip", "p": 1.0}]
    dm = folder_dm(tmp_path, augment="albumentations", albumentations=flip)
    dm.setup("fit")
    images, _ = dm.train_set.__getitems__([0, 1])
    assert torch.equal(images, dm.train_set.images[:2].flip(3))  # every sample mirrored
    with pytest.raises(ValueError, match="data.augment=albumentations"):
        folder_dm(tmp_path, albumentations=flip)


def test_albumentations_given_on_the_command_line_build_through_hydra(tmp_path):
    """data.albumentations=[{_target_: ...}] as a user types it: Hydra's recursive instantiate builds the transforms
    before the datamodule sees them (it then failed: 'Cannot instantiate config of type HorizontalFlip')."""
    from callbacks.run.config_checks import instantiate_group
    from conftest import compose_config

    write_folder_dataset(tmp_path / "data", per_class=4)
    cfg = compose_config(["data=image_folder", f"data.root={tmp_path / 'data'}", "data.augment=albumentations",
                          "data.albumentations=[{_target_:albumentations.HorizontalFlip,p:1.0}]",
                          "data.decode_workers=0", "data.batch_size=4", "data.image_size=12", "data.val_fraction=0.25"],
                         output_dir=tmp_path)
    dm = instantiate_group(cfg, "data")
    dm.setup("fit")
    images, _ = dm.train_set.__getitems__([0, 1])
    assert torch.equal(images, dm.train_set.images[:2].flip(3))


def test_a_validation_fraction_too_small_to_hold_out_an_image_is_refused(tmp_path):
    write_folder_dataset(tmp_path, per_class=4)  # 4 x 0.1 rounds to 0 in every class
    with pytest.raises(ValueError, match="data.val_fraction=0.1 holds out no image"):
        folder_dm(tmp_path, val_fraction=0.1).setup("fit")


def test_a_folder_without_a_test_split_says_its_test_metrics_are_the_validation_splits(tmp_path):
    """Only train/ and test_fraction=0 (the default): the test split is the validation split. The header said
    "N train / M val / M test images" and test/acc equalled val/acc without a word; now a warning and the header say
    so, and the two metrics are indeed the same split's."""
    from conftest import CPU_OVERRIDES, run_in_process
    from image_files import write_folder_dataset
    from callbacks.run.result_file import read_result

    root = write_folder_dataset(tmp_path / "data", per_class=10)
    args = ["model=small", "data=image_folder", f"data.root={root}", "data.image_size=12", "data.batch_size=4",
            "data.val_fraction=0.2", "data.decode_workers=0", "scheduler.max_lr=0.05", "trainer.max_epochs=1",
            *CPU_OVERRIDES]
    _, said = run_in_process(args, tmp_path / "run")
    assert "no test split (data.test_fraction=0 and none in the data): the test/ metrics are the validation" in said
    assert ": 24 train / 6 val (= test) images, batch 4" in said
    metrics = read_result(tmp_path / "run")["metrics"]
    assert metrics["test/acc"] == metrics["val/acc"]
    _, said = run_in_process([*args, "data.test_fraction=0.2"], tmp_path / "run2")  # a split of its own: no warning
    assert "no test split" not in said and ": 18 train / 6 val / 6 test images" in said

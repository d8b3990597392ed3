import pickle

import numpy as np
import pytest
import torch

from datamodules.cifar10 import CIFAR10DataModule, read_batch_file
from datamodules.synthetic import SyntheticDataModule
from datamodules.tensor_images import EpochShuffleSampler


def write_fake_cifar(root, n_train=50, n_test=20, seed=0):
    """A generated cifar-10-batches-py folder with known pixel values and labels."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    expected = {}
    for name, n in [(f"data_batch_{i}", n_train // 5) for i in range(1, 6)] + [("test_batch", n_test)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels, "batch_label": name}, f)
        expected[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f)
    return expected


def test_reads_generated_batch_files_exactly(tmp_path):
    expected = write_fake_cifar(tmp_path)
    dm = CIFAR10DataModule(root=str(tmp_path), batch_size=8)
    dm.setup("fit")
    train = np.concatenate([expected[f"data_batch_{i}"][0] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    assert torch.equal(dm.train_set.images, torch.from_numpy(train))
    assert dm.train_set.labels.tolist() == sum((expected[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert torch.equal(dm.test_set.images, torch.from_numpy(expected["test_batch"][0].reshape(-1, 3, 32, 32)))
    assert dm.val_set is dm.val_set and torch.equal(dm.val_set.images, dm.test_set.images)  # val = test split
    assert dm.classes == [f"c{i}" for i in range(10)]
    # normalisation statistics are the training set's, per channel
    assert torch.allclose(dm.mean, torch.from_numpy(train).float().div(255).mean(dim=(0, 2, 3)))
    x = dm.normalize(dm.train_set.images)
    assert torch.allclose(x.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(x.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-3)


def test_val_fraction_holds_out_part_of_the_training_split(tmp_path):
    write_fake_cifar(tmp_path)
    dm = CIFAR10DataModule(root=str(tmp_path), batch_size=8, val_fraction=0.2)
    dm.setup("fit")
    assert len(dm.val_set) == 10 and len(dm.train_set) == 40 and len(dm.test_set) == 20
    train_rows = {bytes(r.numpy()) for r in dm.train_set.images.reshape(40, -1)}
    assert not any(bytes(r.numpy()) in train_rows for r in dm.val_set.images.reshape(10, -1))


def test_missing_data_names_the_path_and_the_key(tmp_path):
    dm = CIFAR10DataModule(root=str(tmp_path / "nowhere"), download=False)
    with pytest.raises(FileNotFoundError) as e:
        dm.prepare_data()
    msg = str(e.value)
    assert "data.root" in msg and str(tmp_path / "nowhere") in msg and "data.download=true" in msg


@pytest.mark.parametrize("content", [b"not a pickle", pickle.dumps({"data": np.zeros((3, 10), np.uint8), "labels": [0, 1, 2]})])
def test_corrupt_batch_file_is_named(tmp_path, content):
    write_fake_cifar(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(content)
    with pytest.raises(ValueError, match="data_batch_3"):
        read_batch_file(str(bad))
    dm = CIFAR10DataModule(root=str(tmp_path))
    with pytest.raises(ValueError, match="corrupt"):
        dm.setup("fit")


@pytest.mark.parametrize("kwargs, key", [({"batch_size": 0}, "data.batch_size"), ({"batch_size": -4}, "data.batch_size"),
                                         ({"augment": "fancy"}, "data.augment"), ({"val_fraction": 1.0}, "data.val_fraction"),
                                         ({"num_workers": -1}, "data.num_workers")])
def test_bad_arguments_name_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        CIFAR10DataModule(**kwargs)


def test_real_copy_small(cifar_copy):
    dm = CIFAR10DataModule(root=str(cifar_copy), batch_size=50)
    dm.setup("fit")
    assert dm.train_set.images.shape == (200, 3, 32, 32) and dm.train_set.images.dtype == torch.uint8
    assert torch.bincount(dm.train_set.labels).tolist() == [20] * 10
    assert len(dm.test_set) == 200
    assert dm.classes[0] == "airplane"
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (50, 3, 32, 32) and x.dtype == torch.uint8 and y.shape == (50,)
    # real photos: channel means in a plausible range, unlike noise
    assert 0.3 < float(dm.mean.mean()) < 0.6


def test_epoch_sampler_is_a_pure_function_of_seed_and_epoch_and_skips_once():
    a, b = EpochShuffleSampler(100, seed=3), EpochShuffleSampler(100, seed=3)
    first = list(a)
    assert sorted(first) == list(range(100)) and first == list(b)
    a.set_epoch(1)
    assert list(a) != first and sorted(a) == list(range(100))
    b.set_epoch(1)
    b.skip = 30
    assert list(b) == list(a)[30:]
    assert list(b) == list(a)  # the skip applies once


def test_batch_augmentation_runs_only_in_training_and_is_keyed_by_batch_position():
    dm = SyntheticDataModule(num_train=64, num_val=32, batch_size=16, cutout=8, crop_padding=4)
    dm.setup("fit")

    class FakeProgress:
        ready = 0

    class FakeTrainer:
        training, current_epoch = True, 0
        fit_loop = type("L", (), {"epoch_loop": type("E", (), {"batch_progress": type("B", (), {"current": FakeProgress})})})

    batch = next(iter(dm.val_dataloader()))
    plain = dm.on_after_batch_transfer(batch, 0)[0]
    assert torch.allclose(plain, dm.normalize(batch[0]))
    dm.trainer = FakeTrainer()
    aug1 = dm.on_after_batch_transfer(batch, 0)[0]
    aug2 = dm.on_after_batch_transfer(batch, 0)[0]
    assert torch.equal(aug1, aug2) and not torch.equal(aug1, plain)
    FakeProgress.ready = 1
    assert not torch.equal(dm.on_after_batch_transfer(batch, 0)[0], aug1)
    FakeTrainer.training = False
    assert torch.equal(dm.on_after_batch_transfer(batch, 0)[0], plain)


def test_albumentations_pipeline_matches_the_batch_semantics():
    pytest.importorskip("albumentations")
    dm = SyntheticDataModule(num_train=64, num_val=16, batch_size=16, augment="albumentations", cutout=8,
                             crop_padding=4)
    dm.setup("fit")
    images, _ = dm.train_set.__getitems__(list(range(16)))
    raw = dm.train_set.images[:16]
    assert images.shape == raw.shape and images.dtype == torch.uint8
    fill = torch.tensor([round(255 * m) for m in dm.mean.tolist()], dtype=torch.uint8).view(3, 1, 1)
    for out in images:
        filled = (out == fill).all(0)
        assert filled.sum() >= 64  # the 8x8 cut-out square in the mean colour
    assert not torch.equal(images, raw)


def test_synthetic_data_is_deterministic_and_class_dependent():
    a, b = (SyntheticDataModule(num_train=500, num_val=100, seed=1, batch_size=50) for _ in range(2))
    a.setup(), b.setup()
    assert torch.equal(a.train_set.images, b.train_set.images)
    x, y = a.train_set.images.float(), a.train_set.labels
    means = torch.stack([x[y == c].mean(0) for c in range(10)])
    spread_between = means.std(0).mean()
    spread_within = torch.stack([x[y == c].std(0).mean() for c in range(10)]).mean()
    assert spread_between > 0.2 * spread_within  # class signal is there, and so is noise
    assert spread_within > 20

import pickle
import warnings
from functools import partial

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from datamodules.cifar10 import CIFAR10DataModule, read_batch_file
from datamodules.synthetic import SyntheticDataModule
from datamodules.tensor_images import BatchRequest, EpochBatchSampler, batch_key


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
    assert dm.validates_on_test  # so the max_lr trials choose nothing on it
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
    assert dm.validates_on_test is False
    own = SyntheticDataModule(num_train=16, num_val=8, batch_size=8)  # a validation split of its own, drawn apart
    own.setup("fit")
    assert own.validates_on_test is False and not torch.equal(own.val_set.images, own.test_set.images)
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
                                         ({"num_workers": -1}, "data.num_workers"),
                                         ({"flip": "sometimes"}, "data.flip")])
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
    x, y, key = next(iter(dm.train_dataloader()))
    assert x.shape == (50, 3, 32, 32) and x.dtype == torch.uint8 and y.shape == (50,) and isinstance(key, int)
    # real photos: channel means in a plausible range, unlike noise
    assert 0.3 < float(dm.mean.mean()) < 0.6



def _dm(**kwargs):
    dm = SyntheticDataModule(**{"num_train": 96, "num_val": 32, "batch_size": 16, "image_size": 16, **kwargs})
    dm.setup("fit")
    return dm


def test_train_batches_carry_their_key_and_val_batches_do_not():
    dm = _dm()
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(batches) == len(loader) == 6
    order = loader.sampler.rank_indices(0)
    for i, (images, labels, key) in enumerate(batches):
        assert key == batch_key(dm.seed, 0, i)
        assert torch.equal(images, dm.train_set.images[order[16 * i:16 * (i + 1)]])
        assert torch.equal(labels, dm.train_set.labels[order[16 * i:16 * (i + 1)]])
    assert all(len(b) == 2 for b in dm.val_dataloader()) and all(len(b) == 2 for b in dm.test_dataloader())


@pytest.mark.parametrize("num_workers", [0, 1])
def test_a_second_iterator_does_not_move_a_resumed_iterator(num_workers):
    dm = _dm(num_workers=num_workers)
    reference = dm.train_dataloader()
    reference.sampler.set_epoch(1)
    epoch1 = [b[2] for b in reference]

    loader = dm.train_dataloader()
    training = iter(loader)  # Lightning creates its iterator before it loads the state and sets the epoch
    loader.load_state_dict({"epoch": 1, "batches": 2, "num_replicas": 1})
    loader.sampler.set_epoch(1)
    assert [b[2] for b in loader] == epoch1[2:]  # another iterator (a range test's) runs first, to the end
    assert [b[2] for b in training] == epoch1[2:]
    assert [b[2] for b in loader] == epoch1[2:]


def test_state_saved_at_the_end_of_an_epoch_resumes_at_the_next_one():
    dm = _dm()
    loader = dm.train_dataloader()
    loader.load_state_dict({"epoch": 3, "batches": len(loader), "num_replicas": 1})
    assert loader.sampler.epoch == 4 and loader.sampler.start == 0
    keys = [b[2] for b in loader]
    assert keys == [batch_key(dm.seed, 4, i) for i in range(len(loader))]
    assert loader.state_dict() == {"epoch": 4, "batches": 0, "num_replicas": 1}  # no trainer: nothing trained


def test_batch_size_larger_than_a_rank_share_names_the_key():
    dm = _dm(num_train=40, batch_size=32)

    class TwoRanks:
        distributed_sampler_kwargs = {"num_replicas": 2, "rank": 1}

    dm.trainer = TwoRanks()
    with pytest.raises(ValueError, match=r"data\.batch_size"):
        dm.train_dataloader()



def test_a_batch_that_leaves_much_of_each_epoch_out_is_warned_of_naming_the_keys():
    """A recipe's batch of 256 on 480 of one's own images trained on 256 of them an epoch (drop_last), silently."""
    from datamodules.batches import make_train_loader

    def warned(n, batch_size, drop_last=True, world=None):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            loader = make_train_loader(list(range(n)), batch_size, 0, drop_last, world or {}, lambda: 0)
        said = [str(w.message) for w in caught if "out of every epoch" in str(w.message)]
        return loader, said

    loader, said = warned(480, 256)
    assert len(loader) == 1 and len(said) == 1
    assert "data.batch_size=256 leaves 224 of the 480 training images (47%)" in said[0]
    assert "data.drop_last=false" in said[0]
    assert warned(480, 256, drop_last=False)[1] == []  # every image, in a short last batch
    assert warned(480, 32)[1] == [] and warned(500, 32)[1] == []  # none left out; 20 of 500 (4%)
    assert len(warned(1000, 96, world={"num_replicas": 4, "rank": 0})[1]) == 1  # 250 a rank: 58 (23%) each

def test_batch_augmentation_is_keyed_by_the_batch_and_only_for_training_batches():
    dm = _dm(cutout=8, crop_padding=4)
    images, labels = dm.train_set.__getitems__(list(range(16)))
    plain = dm.normalize(images)
    x, y = dm.on_after_batch_transfer((images, labels), 0)
    assert torch.equal(x, plain) and y is labels  # validation/test batches: normalised only
    key = batch_key(0, 0, 0)
    out = dm.on_after_batch_transfer((images, labels, key), 0)
    assert len(out) == 2 and out[1] is labels  # the key is stripped
    assert torch.equal(out[0], dm.on_after_batch_transfer((images, labels, key), 0)[0])
    assert not torch.equal(out[0], plain)
    assert not torch.equal(out[0], dm.on_after_batch_transfer((images, labels, batch_key(0, 0, 1)), 0)[0])
    rank1 = dm.on_after_batch_transfer((images, labels, batch_key(0, 0, 0, rank=1)), 0)[0]
    assert not torch.equal(out[0], rank1)
    # a second datamodule with the same seed augments the same batch identically
    assert torch.equal(_dm(cutout=8, crop_padding=4).on_after_batch_transfer((images, labels, key), 0)[0], out[0])
    dm.augment = "none"
    assert torch.equal(dm.on_after_batch_transfer((images, labels, key), 0)[0], plain)


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


def test_albumentations_batches_are_a_function_of_their_key():
    pytest.importorskip("albumentations")
    dm = _dm(augment="albumentations", cutout=4, crop_padding=2)
    request = BatchRequest(list(range(16)), batch_key(0, 0, 0))
    images, labels, key = dm.train_set[request]
    assert key == request.key and torch.equal(labels, dm.train_set.labels[:16])
    dm.train_set[BatchRequest(list(range(16, 32)), batch_key(0, 0, 1))]  # whatever the pipeline did before ...
    again = dm.train_set[request][0]
    assert torch.equal(again, images)  # ... the same key gives the same batch
    assert not torch.equal(dm.train_set[request._replace(key=batch_key(0, 0, 0, rank=1))][0], images)
    assert not torch.equal(images, dm.train_set.images[:16])


@pytest.mark.parametrize("augment", ["batch", "albumentations"])
def test_alternating_flip_mirrors_a_fixed_half_then_the_other_half(augment):
    if augment == "albumentations":
        pytest.importorskip("albumentations")
    dm = _dm(flip="alternating", crop_padding=0, augment=augment)
    raw = dm.train_set.images
    sampler = EpochBatchSampler(dm.train_set, 16, seed=0)
    flipped = {}
    for epoch in range(3):
        sampler.set_epoch(epoch)
        for request in sampler:
            images, labels, key = dm.train_set[request]
            x, _ = dm.on_after_batch_transfer((images, labels, key), 0)  # no random flip on top
            for i, image, normalised in zip(request.indices, images, x):
                is_flipped = torch.equal(image, raw[i].flip(2))
                assert is_flipped or torch.equal(image, raw[i])
                if augment == "batch":
                    assert torch.allclose(normalised, dm.normalize(image[None])[0])
                flipped[epoch, i] = is_flipped
    n = len(raw)
    first = [flipped[0, i] for i in range(n)]
    assert 0.3 * n < sum(first) < 0.7 * n  # a random half ...
    assert all(flipped[1, i] != first[i] for i in range(n))  # ... the other half in the next epoch ...
    assert all(flipped[2, i] == first[i] for i in range(n))  # ... and back
    # the half is a function of data.seed alone, and not the first epoch's order
    assert torch.equal(_dm(flip="alternating").train_set.flipped_first, dm.train_set.flipped_first)
    assert not torch.equal(_dm(flip="alternating", seed=1).train_set.flipped_first, dm.train_set.flipped_first)
    assert _dm(flip=True).train_set.flipped_first is None and _dm(flip="none").flip == "none"


class _Record(pl.Callback):
    """Labels and (augmented) images of every training batch, as the training step sees them."""

    def __init__(self):
        self.labels, self.images = [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.labels.append(batch[1].tolist())
        self.images.append(batch[0].clone())


class _SecondIterator(pl.Callback):
    """Draws the whole train loader through its own iterator at train start, as an LR range test would."""

    def on_train_start(self, trainer, pl_module):
        self.drawn = sum(1 for _ in trainer.train_dataloader)


def _fit(root, ckpt_path=None, extra=(), flip="random"):
    from lightning_modules.classifier import Classifier
    from lightning_modules.networks import SmallNet

    pl.seed_everything(0, verbose=False)
    dm = _dm(num_train=64, cutout=4, crop_padding=2, flip=flip)
    model = Classifier(SmallNet(width=4), dm.heads, optimizer=partial(torch.optim.SGD, lr=0.05, momentum=0.9))
    record = _Record()
    steps = ModelCheckpoint(dirpath=root, every_n_train_steps=3, save_top_k=-1, filename="{step}")
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=2, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0,
                         deterministic=True, default_root_dir=root, callbacks=[steps, record, *extra])
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    return model, record


@pytest.mark.parametrize("step, flip", [(3, "random"), (6, "random"), (6, "alternating")])
def test_mid_epoch_resume_with_a_second_iterator_gives_the_same_weights(tmp_path, step, flip):
    full, seen = _fit(tmp_path / "a", flip=flip)
    assert len(seen.labels) == 8  # 2 epochs of 4 batches
    second = _SecondIterator()
    resumed, seen_resumed = _fit(tmp_path / "b", ckpt_path=str(tmp_path / "a" / f"step={step}.ckpt"),
                                 extra=[second], flip=flip)
    assert second.drawn == 4 - step % 4  # the range-test-like iterator drew the rest of the resumed epoch ...
    assert seen_resumed.labels == seen.labels[step:]  # ... and training still got exactly the next batches
    for a, b in zip(seen.images[step:], seen_resumed.images):
        assert torch.equal(a, b)  # augmented alike
    for key, value in full.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[key]), key


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


def _rows(images):
    return {bytes(x.numpy().tobytes()) for x in images}


@pytest.mark.parametrize("overrides", [["data=cifar10"], ["experiment=smoke"]])
def test_default_and_smoke_validation_is_disjoint_from_the_test_split(tmp_path, overrides):
    """Tuning runs (the defaults, smoke) never select checkpoints or report to sweepers on the test split."""
    from hydra.utils import instantiate

    from conftest import compose_config

    write_fake_cifar(tmp_path, n_train=100, n_test=40)
    cfg = compose_config([*overrides, f"data.root={tmp_path}", "data.batch_size=8"] if overrides == ["data=cifar10"]
                         else overrides)
    dm = instantiate(cfg.data)
    dm.setup("fit")
    val, test, train = _rows(dm.val_set.images), _rows(dm.test_set.images), _rows(dm.train_set.images)
    assert len(val) > 0 and not val & test and not val & train


def test_paper_recipes_say_they_report_final_test_accuracy_and_select_nothing_by_it():
    from conftest import compose_config

    for name in ("cifar10_resnet9", "cifar10_fast"):
        cfg = compose_config([f"experiment={name}"])
        assert cfg.data.val_fraction == 0.0 and cfg.monitor == "test/acc"
        assert cfg.callbacks.get("model_checkpoint") is None  # no checkpoint chosen by test accuracy

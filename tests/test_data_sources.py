"""Every data option works for every data source: CIFAR-10, synthetic images, an image folder, a CSV.

All four go through the one :meth:`TensorImageDataModule.setup`; these tests run each option through setup, a
training batch (with its augmentation) and a validation batch, and check what the model and prediction read
(class counts, checkpoint metadata).
"""
import pytest
import torch

from datamodules.cifar10 import CIFAR10DataModule
from datamodules.csv_images import CSVImageDataModule
from datamodules.image_folder import ImageFolderDataModule
from datamodules.synthetic import SyntheticDataModule
from image_files import COLORS, class_image, write_csv_dataset, write_folder_dataset, write_image
from test_datamodules import write_fake_cifar

FILES = dict(decode_workers=0, image_size=16)  # and val_fraction=0.2 unless given: a file source needs some split


def cifar(tmp_path, **kwargs):
    write_fake_cifar(tmp_path, n_train=60, n_test=20)
    return CIFAR10DataModule(root=str(tmp_path), **kwargs)


def synthetic(tmp_path, **kwargs):
    return SyntheticDataModule(num_train=60, num_val=20, num_classes=3, image_size=16, **kwargs)


def image_folder(tmp_path, **kwargs):
    return ImageFolderDataModule(root=str(write_folder_dataset(tmp_path, per_class=10)),
                                 **{**FILES, "val_fraction": 0.2, **kwargs})


def csv(tmp_path, **kwargs):
    return CSVImageDataModule(csv_path=str(write_csv_dataset(tmp_path, n=30)),
                              **{**FILES, "val_fraction": 0.2, **kwargs})


SOURCES = [cifar, synthetic, image_folder, csv]
OPTIONS = {
    "alternating_flip": dict(flip="alternating"),
    "no_flip": dict(flip=False),
    "albumentations": dict(augment="albumentations", flip="alternating", cutout=4),
    "no_augment": dict(augment="none"),
    "cutout_resized_crop_jitter": dict(cutout=4, resized_crop_scale=[0.35, 1.0], color_jitter=0.2),
    "val_fraction": dict(val_fraction=0.2),
}


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.__name__)
def test_option_trains_and_validates(tmp_path, source, option):
    if OPTIONS[option].get("augment") == "albumentations":
        pytest.importorskip("albumentations")
    dm = source(tmp_path, batch_size=8, **OPTIONS[option])
    dm.prepare_data()
    dm.setup("fit")
    images, labels, key = next(iter(dm.train_dataloader()))
    x, y = dm.on_after_batch_transfer((images, labels, key), 0)
    assert x.shape == images.shape and x.dtype == torch.float32 and bool(torch.isfinite(x).all())
    assert (dm.train_set.flipped_first is not None) == (dm.flip == "alternating" and dm.augment != "none")
    vx, _ = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert vx.shape[1:] == x.shape[1:] and len(dm.test_set) > 0
    if option == "val_fraction":  # held out of the training images, whatever the source
        assert not {bytes(v.numpy()) for v in dm.val_set.images} & {bytes(t.numpy()) for t in dm.train_set.images}
    counts = dm.class_counts  # model.class_weights=balanced reads these
    assert set(counts) == set(dm.heads) and all(len(c) == dm.heads[h] for h, c in counts.items())
    assert all(sum(c) == len(dm.train_set) for c in counts.values())
    meta = dm.checkpoint_metadata()  # prediction reads these
    assert {h: len(v) for h, v in meta["vocabularies"].items()} == dm.heads
    assert meta["image_size"] == images.shape[-1] and meta["mean"] == pytest.approx(dm.mean.tolist())


@pytest.mark.parametrize("cache", ["memory", "mmap", "off"])
@pytest.mark.parametrize("source", [image_folder, csv], ids=lambda s: s.__name__)
def test_file_options_cache_test_fraction_and_stratify(tmp_path, source, cache):
    extra = dict(stratify_on="size_class") if source is csv else {}
    dm = source(tmp_path, batch_size=4, flip="alternating", cache=cache, test_fraction=0.2, **extra)
    dm.setup("fit")
    assert len(dm.train_set) + len(dm.val_set) + len(dm.test_set) == 30
    assert len(dm.split_paths["test"]) == len(dm.test_set) > 0 and dm.train_set.flipped_first is not None
    assert len(list((tmp_path / ".image_cache").glob("*.stats.json"))) == (cache != "off")


def test_a_synthetic_checkpoint_predicts_named_classes(tmp_path):
    """Prediction needs only the checkpoint, whatever the data source trained it."""
    from lightning_modules.classifier import Classifier
    from lightning_modules.networks import build_network
    from lightning_modules.predict import predict_to_csv
    from test_classifier import make_trainer, sgd
    from test_predict import read_rows

    dm = synthetic(tmp_path, batch_size=20)
    model = Classifier(build_network("small", width=4), dm.heads, optimizer=sgd())
    trainer = make_trainer(tmp_path, max_steps=2, limit_val_batches=0)
    trainer.fit(model, datamodule=dm)
    trainer.save_checkpoint(str(tmp_path / "model.ckpt"))
    for name, color in COLORS.items():
        write_image(tmp_path / "new" / f"{name}.png", class_image(color, size=(40, 30)))
    rows = read_rows(predict_to_csv(str(tmp_path / "model.ckpt"), str(tmp_path / "new"), str(tmp_path / "p.csv"),
                                    decode_workers=0))
    assert len(rows) == 3 and {r["label"] for r in rows} <= {"class_0", "class_1", "class_2"}

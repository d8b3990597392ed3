"""A CSV with empty label cells and data.missing_labels=ignore: the image counts for nothing in that attribute's loss,
metrics and class counts, and still trains the others. Checked against cross-entropy and accuracy on the known
labels computed here, and end to end through train.py."""
import csv

import pytest
import torch
import torch.nn.functional as F

from conftest import CPU_OVERRIDES
from datamodules.csv_images import CSVImageDataModule
from datamodules.tensor_images import UNKNOWN_LABEL, class_counts
from image_files import write_csv_dataset
from lightning_modules.classifier_metrics import IGNORE_INDEX


def with_empty_cells(tmp_path, every=4):
    """labels.csv of image_files.write_csv_dataset with the size_class cell of every ``every``-th row left empty."""
    path = write_csv_dataset(tmp_path, n=48)
    rows = list(csv.DictReader(open(path, newline="")))
    for i, row in enumerate(rows):
        if i % every == 0:
            row["size_class"] = ""
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path, rows


def test_the_data_and_the_model_agree_on_the_unknown_label():
    assert UNKNOWN_LABEL == IGNORE_INDEX == -100  # cross_entropy's default ignore_index


def test_empty_cells_are_unknown_labels_that_count_for_no_class(tmp_path):
    path, rows = with_empty_cells(tmp_path)
    with pytest.raises(ValueError, match=r"label column 'size_class' is empty on 12 line\(s\).*data.missing_labels=ignore"):
        CSVImageDataModule(csv_path=str(path), decode_workers=0, batch_size=4).setup("fit")
    with pytest.raises(ValueError, match=r"data.missing_labels must be one of \['error', 'ignore'\], got 'skip'"):
        CSVImageDataModule(csv_path=str(path), missing_labels="skip")
    dm = CSVImageDataModule(csv_path=str(path), decode_workers=0, batch_size=4, val_fraction=0.25, image_size=12,
                            missing_labels="ignore")
    dm.setup("fit")
    assert dm.heads == {"colour": 3, "size_class": 2} and dm.vocabularies["size_class"] == ["1", "2"]
    labels = dm.train_set.labels["size_class"]
    paths = dm.split_paths["train"]
    by_file = {row["file"].split("/")[-1]: row["size_class"] for row in rows}
    expected = [UNKNOWN_LABEL if not by_file[p.split("/")[-1]] else int(by_file[p.split("/")[-1]]) - 1 for p in paths]
    assert labels.tolist() == expected and UNKNOWN_LABEL in expected
    known = [v for v in expected if v != UNKNOWN_LABEL]
    assert class_counts(dm.train_set.labels, dm.vocabularies)["size_class"] == [known.count(0), known.count(1)]
    assert (dm.train_set.labels["colour"] >= 0).all()  # the other attribute keeps every image


def test_the_loss_is_the_mean_cross_entropy_of_the_known_labels_and_a_head_without_any_adds_nothing():
    from lightning_modules.classifier import Classifier
    from lightning_modules.networks import SmallNet

    model = Classifier(backbone=SmallNet(width=4), heads={"a": 3, "b": 2}, label_smoothing=0.1,
                       class_weights={"a": [1.0, 2.0, 0.5]})
    model.class_weights = {"a": torch.tensor([1.0, 2.0, 0.5])}  # what setup resolves from the list
    torch.manual_seed(0)
    logits = {"a": torch.randn(8, 3, requires_grad=True), "b": torch.randn(8, 2, requires_grad=True)}
    targets = {"a": torch.tensor([0, 1, -100, 2, 1, -100, 0, 2]), "b": torch.full((8,), -100)}
    loss = model.loss_from_logits(logits, targets)
    known = targets["a"] != -100
    by_hand = F.cross_entropy(logits["a"][known], targets["a"][known], weight=torch.tensor([1.0, 2.0, 0.5]),
                              label_smoothing=0.1)
    assert float(loss) == pytest.approx(float(by_hand), rel=1e-6)
    loss.backward()
    assert torch.isfinite(logits["a"].grad).all() and (logits["b"].grad == 0).all()
    assert (logits["a"].grad[~known] == 0).all()


def test_a_run_with_missing_labels_trains_and_scores_each_attribute_on_its_known_labels(tmp_path):
    from conftest import run_in_process
    from callbacks.run.result_file import read_result
    from lightning_modules.predict import load_predictor

    path, rows = with_empty_cells(tmp_path / "data", every=3)
    run_in_process(["model=small", "data=csv", f"data.csv_path={path}", "data.image_size=12", "data.batch_size=8",
                    "data.decode_workers=0", "data.val_fraction=0.25", "data.missing_labels=ignore",
                    "scheduler.max_lr=0.1", "trainer.max_epochs=2", *CPU_OVERRIDES], tmp_path / "run")
    result = read_result(tmp_path / "run")
    assert result["status"] == "completed", result
    metrics = result["metrics"]
    assert all(torch.isfinite(torch.tensor(v)) for v in metrics.values()), metrics
    # the validation accuracy of each attribute, by hand from last.ckpt on the known labels of the validation split
    dm = CSVImageDataModule(csv_path=str(path), decode_workers=0, batch_size=8, val_fraction=0.25, image_size=12,
                            missing_labels="ignore", seed=0)
    dm.setup("fit")
    model, _ = load_predictor(str(tmp_path / "run" / "checkpoints" / "last.ckpt"))
    x = (dm.val_set.images.float() / 255 - torch.tensor(dm.mean).view(1, 3, 1, 1)) / torch.tensor(dm.std).view(1, 3, 1, 1)
    with torch.no_grad():
        logits = model(x)
    for head in ("colour", "size_class"):
        y = dm.val_set.labels[head]
        known = y != UNKNOWN_LABEL
        acc = float((logits[head].argmax(1)[known] == y[known]).float().mean())
        assert metrics[f"val/{head}/acc"] == pytest.approx(acc, abs=1e-6), head
    assert (dm.val_set.labels["size_class"] == UNKNOWN_LABEL).any()


def test_a_trained_models_class_numbers_relabel_every_attribute_and_keep_unknown_labels():
    """relabel (task=eval on other data): each head's labels renumbered by the model's class names, in the model's
    head order; an empty cell (UNKNOWN_LABEL) stays unknown; a class the model lacks, or another head, is refused."""
    import numpy as np

    from datamodules.file_images import Records, relabel

    labels = {"size": np.array([1, 0, UNKNOWN_LABEL]), "colour": np.array([0, 1, 0])}
    rec = Records(paths=["a", "b", "c"], labels=labels,
                  vocabularies={"size": ["big", "small"], "colour": ["blue", "red"]}, split=None, cache_dir="")
    known = {"colour": ["green", "red", "blue"], "size": ["small", "big", "huge"]}
    out = relabel(rec, known, "data.csv_path")
    assert list(out.vocabularies) == ["colour", "size"] and out.vocabularies == known
    assert out.labels["colour"].tolist() == [2, 1, 2] and out.labels["size"].tolist() == [0, 1, UNKNOWN_LABEL]
    with pytest.raises(ValueError, match=r"class\(es\) \['blue'\] of attribute 'colour' are not among the "
                                         r"checkpoint's"):
        relabel(rec, {"colour": ["red"], "size": ["big", "small"]}, "data.csv_path")
    with pytest.raises(ValueError, match=r"attributes \['size', 'colour'\] are not the model's \['size'\]"):
        relabel(rec, {"size": ["big", "small"]}, "data.csv_path")

"""The names users' data gives its splits: an image folder's train/valid/test (Kaggle's layout) or
training/validation/ folders, a CSV's split column saying Train/valid/Validation/TEST. They used to be read wrong
without a word: ROOT/valid/ ignored (validation then drawn from train/), ROOT/training/ + ROOT/validation/ read as
two classes named 'training' and 'validation' of the flat ImageFolder layout."""
import pytest

from datamodules.csv_images import CSVImageDataModule
from datamodules.image_folder import ImageFolderDataModule
from datamodules.tensor_images import split_of
from image_files import COLORS, write_csv_dataset, write_folder_dataset


def folder_dm(root, **kwargs):
    return ImageFolderDataModule(root=str(root), batch_size=4, decode_workers=0, **kwargs)


def held_out(dm) -> dict[str, list[str]]:
    """Each split's files, relative to the data folder's split folder (<class>/<file>)."""
    return {s: sorted("/".join(p.split("/")[-2:]) for p in paths) for s, paths in dm.split_paths.items()}


@pytest.mark.parametrize("names", [("train", "valid", "Test"), ("training", "validation", "testing"),
                                   ("Train", "Validation", "TEST")])
def test_split_folders_by_any_of_their_names_read_as_train_val_test(tmp_path, names):
    write_folder_dataset(tmp_path / "std", per_class=4, splits=("train", "val", "test"))
    write_folder_dataset(tmp_path / "other", per_class=4, splits=names)
    std, other = folder_dm(tmp_path / "std"), folder_dm(tmp_path / "other")
    for dm in (std, other):
        dm.setup("fit")
    assert other.classes == std.classes == sorted(COLORS)  # not ['training', 'validation', ...]
    assert held_out(other) == held_out(std)
    assert len(other.split_paths["val"]) == len(other.split_paths["test"]) == 3 * 4  # the folders, not a draw
    assert all(f"/{names[1]}/" in p for p in other.split_paths["val"])


def test_two_folders_for_one_split_are_refused_naming_both(tmp_path):
    write_folder_dataset(tmp_path, per_class=3, splits=("train", "val", "valid"))
    with pytest.raises(ValueError, match=r"data.root: .* 2 folders for the val split \(val, valid\); keep one"):
        folder_dm(tmp_path).prepare_data()


def test_a_folder_that_names_no_split_beside_train_is_named_in_a_warning(tmp_path):
    write_folder_dataset(tmp_path, per_class=4, splits=("train", "extra"))
    dm = folder_dm(tmp_path, val_fraction=0.25)
    with pytest.warns(UserWarning, match=r"data.root: ignoring folder\(s\) \['extra'\] beside train/: not a split"):
        dm.setup("fit")
    assert not any("/extra/" in p for paths in dm.split_paths.values() for p in paths)


def test_a_validation_folder_without_train_is_a_missing_train_folder(tmp_path):
    write_folder_dataset(tmp_path, per_class=3, splits=("validation",))
    with pytest.raises(FileNotFoundError, match=r"train does not exist \(found validation/\)"):
        folder_dm(tmp_path).prepare_data()


def test_csv_split_values_by_any_of_their_names_and_case(tmp_path):
    words = {"train": ["train", "Train", "TRAINING"], "val": ["val", "valid", "Validation"],
             "test": ["test", "Test", "testing"]}
    plan = ["train"] * 12 + ["val"] * 6 + ["test"] * 6
    std = write_csv_dataset(tmp_path / "std", n=24, split=plan)
    other = write_csv_dataset(tmp_path / "other", n=24, split=[words[s][i % 3] for i, s in enumerate(plan)])
    a, b = (CSVImageDataModule(csv_path=str(p), batch_size=4, decode_workers=0) for p in (std, other))
    for dm in (a, b):
        dm.setup("fit")
    assert held_out(a) == held_out(b) and len(b.split_paths["val"]) == 6 and len(b.split_paths["test"]) == 6


def test_csv_split_value_naming_no_split_is_refused_with_the_allowed_names(tmp_path):
    path = write_csv_dataset(tmp_path, n=24, split=["train"] * 20 + ["holdout"] * 4)
    with pytest.raises(ValueError, match=r"split column 'split' has values \['holdout'\]; allowed \(any case\): "
                                         r"train/training, val/valid/validation, test/testing"):
        CSVImageDataModule(csv_path=str(path), batch_size=4, decode_workers=0).prepare_data()


def test_split_of_reads_only_whole_names():
    assert [split_of(n) for n in ("Valid", " TEST ", "training")] == ["val", "test", "train"]
    assert [split_of(n) for n in ("validate", "trains", "dev", "")] == [None] * 4

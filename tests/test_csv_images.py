"""The CSV DataModule: columns, vocabularies, split column, stratification, safe paths and bad input."""
import os
import subprocess
import sys
import warnings
from collections import Counter

import pytest
import torch

from conftest import CIFAR_TOOL, SHARED_DATA
from datamodules.csv_images import CSVImageDataModule
from image_files import COLORS, class_image, write_csv, write_csv_dataset, write_image


def csv_dm(path, **kwargs):
    kwargs = {"batch_size": 4, "decode_workers": 0, "val_fraction": 0.25, "image_size": 12, **kwargs}
    return CSVImageDataModule(csv_path=str(path), **kwargs)


def warned(phrase: str, *datamodules) -> list[str]:
    """The warnings holding ``phrase`` that reading each datamodule's files gives (prepare_data, then setup, as
    train.py calls them: a warning about the files should come once)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for dm in datamodules:
            dm.prepare_data()
            dm.setup("fit")
    return [str(w.message) for w in caught if phrase in str(w.message)]


def test_every_other_column_is_a_head_with_its_vocabulary(tmp_path):
    path = write_csv_dataset(tmp_path, n=24)
    dm = csv_dm(path)
    dm.setup("fit")
    assert dm.heads == {"colour": 3, "size_class": 2}
    assert dm.vocabularies == {"colour": ["blue", "green", "red"], "size_class": ["1", "2"]}
    x, y = dm.train_set.images, dm.train_set.labels
    assert set(y) == {"colour", "size_class"} and len(y["colour"]) == len(x) == 18
    # labels follow the rows: image i has colour names[i % 3], so the dominant channel matches the label
    dominant = {"red": 0, "green": 1, "blue": 2}
    for image, c in zip(x, y["colour"]):
        assert int(image.float().mean(dim=(1, 2)).argmax()) == dominant[dm.vocabularies["colour"][int(c)]]
    only = csv_dm(path, label_columns=["size_class"])
    assert only.heads == {"size_class": 2}


@pytest.mark.parametrize("separator, encoding", [(";", "utf-8"), ("\t", "utf-8"), (",", "utf-8-sig"),
                                                 ("\t", "utf-16"), (",", "utf-16")])
def test_a_csv_written_on_windows_or_in_another_locale_reads_as_the_plain_one(tmp_path, separator, encoding):
    """Backslash paths (Windows), semicolons (a spreadsheet in a European locale), tabs, a byte-order mark, UTF-16
    (Excel's "Unicode text"; it stopped with a bare UnicodeDecodeError): the same images, labels and split as the
    plain comma CSV with forward slashes."""
    plain = write_csv_dataset(tmp_path, n=24)
    lines = plain.read_text().splitlines()
    other = tmp_path / "other.csv"
    other.write_text("\n".join(line.replace(",", separator).replace("/", "\\") for line in lines) + "\n",
                     encoding=encoding)
    assert "images\\000.png" in other.read_text(encoding=encoding)
    a, b = csv_dm(plain, seed=3), csv_dm(other, seed=3)
    for dm in (a, b):
        dm.setup("fit")
    assert b.heads == a.heads == {"colour": 3, "size_class": 2} and b.vocabularies == a.vocabularies
    assert b.split_paths == a.split_paths
    assert torch.equal(b.train_set.images, a.train_set.images)
    assert all(torch.equal(b.train_set.labels[k], a.train_set.labels[k]) for k in a.heads)


def test_a_csv_in_windows_1252_reads_its_labels_with_one_warning_naming_the_file(tmp_path):
    """Excel on Western-European Windows saves CSVs in Windows-1252: 'rouge-é' is the byte 0xE9, not UTF-8. It
    stopped with "'utf-8' codec can't decode byte 0xe9" and no file name; now it reads, with one warning."""
    plain = write_csv_dataset(tmp_path, n=24)
    lines = plain.read_text().splitlines()
    other = tmp_path / "excel.csv"
    other.write_bytes(("\r\n".join([lines[0]] + [line.replace(",red,", ",rouge-é,") for line in lines[1:]]) + "\r\n")
                      .encode("cp1252"))
    dm = csv_dm(other)
    messages = warned("not UTF-8", dm)
    assert len(messages) == 1 and str(other) in messages[0] and "line 2 is the first" in messages[0], messages
    assert dm.vocabularies["colour"] == sorted(["rouge-é" if c == "red" else c for c in COLORS])


def test_integer_labels_sort_numerically(tmp_path):
    rows = []
    for i in range(12):
        write_image(tmp_path / f"{i}.png", class_image((10 * i, 50, 50), seed=i))
        rows.append({"path": f"{i}.png", "level": str([2, 10, 1][i % 3])})
    dm = csv_dm(write_csv(tmp_path / "a.csv", rows))
    assert dm.heads == {"level": 3} and dm.vocabularies["level"] == ["1", "2", "10"]


def test_labels_that_differ_only_in_case_stay_apart_with_a_warning_and_spaces_are_stripped(tmp_path):
    """A hand-typed CSV: "red " reads as "red"; "Red" stays a class of its own (labels are compared as written),
    and the run says so once, naming the column and the pair."""

    rows = [{"file": f"images/{i:03d}.png", "colour": ["red", "red ", "Red", "blue"][i % 4]} for i in range(16)]
    for i in range(16):
        write_image(tmp_path / "images" / f"{i:03d}.png", class_image((200, 0, 0), seed=i))
    dm = csv_dm(write_csv(tmp_path / "labels.csv", rows))
    messages = warned("differ only in case", dm)
    assert dm.vocabularies == {"colour": ["Red", "blue", "red"]}
    assert len(messages) == 1 and "'colour'" in messages[0] and "['Red', 'red']" in messages[0], messages
    assert not warned("differ only in case", csv_dm(write_csv_dataset(tmp_path / "plain", n=12)))


def test_split_is_stratified_on_the_chosen_column_and_deterministic(tmp_path):
    path = write_csv_dataset(tmp_path, n=24)
    a, b = csv_dm(path, stratify_on="size_class", seed=5), csv_dm(path, stratify_on="size_class", seed=5)
    c = csv_dm(path, stratify_on="size_class", seed=6)
    for dm in (a, b, c):
        dm.setup("fit")
    assert Counter(a.val_set.labels["size_class"].tolist()) == {0: 3, 1: 3}
    assert a.split_paths == b.split_paths and a.split_paths != c.split_paths
    colour = csv_dm(path, seed=5)
    colour.setup("fit")
    assert Counter(colour.val_set.labels["colour"].tolist()) == {0: 2, 1: 2, 2: 2}


def test_split_column_is_used_when_present(tmp_path):
    split = ["train"] * 12 + ["val"] * 6 + ["test"] * 6
    path = write_csv_dataset(tmp_path, n=24, split=split)
    dm = csv_dm(path)
    assert dm.heads == {"colour": 3, "size_class": 2}  # the split column is no head
    dm.setup("fit")
    assert len(dm.train_set) == 12 and len(dm.val_set) == 6 and len(dm.test_set) == 6
    assert dm.split_paths["val"] == [str(tmp_path / "images" / f"{i:03d}.png") for i in range(12, 18)]


def test_a_split_column_under_another_name_is_refused_as_a_label_and_used_when_named(tmp_path):
    """A CSV whose split sits in a column ``fold`` (train/valid/test): with data.split_column at its default
    (``split``), ``fold`` became a third head, trained to predict the split, and the images were split at random
    (a new user's CSV, 2026-12-03). Now it stops, naming the key; data.split_column=fold splits by it, and a column
    listed in data.label_columns stays a label."""
    split = ["train"] * 12 + ["valid"] * 6 + ["TEST"] * 6
    path = write_csv_dataset(tmp_path, n=24, split=split)
    path.write_text(path.read_text().replace(",split", ",fold", 1))
    with pytest.raises(ValueError, match=r"column 'fold' holds split names \(TEST, train, valid\).*"
                                         r"data.split_column=fold"):
        csv_dm(path).setup("fit")
    dm = csv_dm(path, split_column="fold")
    dm.setup("fit")
    assert dm.heads == {"colour": 3, "size_class": 2}
    assert len(dm.train_set) == 12 and len(dm.val_set) == 6 and len(dm.test_set) == 6
    assert csv_dm(path, label_columns=["colour", "fold"]).heads == {"colour": 3, "fold": 3}


def test_split_leaving_a_class_without_training_images_is_refused(tmp_path):
    split = ["val" if i % 3 == 2 else "train" for i in range(24)]  # every 'blue' image (i % 3 == 2) in val
    path = write_csv_dataset(tmp_path, n=24, split=split)
    with pytest.raises(ValueError, match=r"\['blue'\] of attribute 'colour' without training images"):
        csv_dm(path).setup("fit")


def test_escaping_paths_are_refused_unless_allowed(tmp_path):
    data = tmp_path / "data"
    write_csv_dataset(data, n=6)
    outside = write_image(tmp_path / "outside.png", class_image((9, 9, 9)))
    os.symlink(outside, data / "images" / "link.png")
    rows = [{"file": "images/000.png", "colour": "a"}, {"file": "../outside.png", "colour": "b"},
            {"file": str(outside), "colour": "a"}, {"file": "images/link.png", "colour": "b"}]
    path = write_csv(data / "escape.csv", rows)
    with pytest.raises(ValueError) as e:
        csv_dm(path, val_fraction=0.0).prepare_data()
    msg = str(e.value)
    assert "3 image path(s)" in msg and "../outside.png" in msg and "images/link.png" in msg
    assert "data.allow_outside_paths=true" in msg and "images/000.png" not in msg
    rec = csv_dm(path, allow_outside_paths=True).read_records()
    assert rec.paths[1] == str(outside)


def test_image_root_overrides_the_csv_folder(tmp_path):
    write_csv_dataset(tmp_path / "pics", n=12)
    rows = [{"file": f"images/{i:03d}.png", "colour": "ab"[i % 2]} for i in range(12)]
    path = write_csv(tmp_path / "tables" / "t.csv", rows)
    dm = csv_dm(path, image_root=str(tmp_path / "pics"))
    dm.setup("fit")
    assert len(dm.train_set) + len(dm.val_set) == 12


@pytest.mark.parametrize("kwargs,message", [
    ({"image_column": "img"}, "data.image_column: 'img' is not a column .* columns are \\['file', 'colour', "
                              "'size_class'\\]"),
    ({"label_columns": ["colour", "shape"]}, "data.label_columns: \\['shape'\\] not in .* columns are"),
    ({"stratify_on": "file"}, "data.stratify_on"),
])
def test_bad_column_settings_list_the_columns(tmp_path, kwargs, message):
    path = write_csv_dataset(tmp_path, n=6)
    with pytest.raises(ValueError, match=message):
        csv_dm(path, **kwargs).prepare_data()


def test_single_valued_and_empty_label_columns_are_refused(tmp_path):
    path = write_csv(tmp_path / "one.csv", [{"file": "a.png", "colour": "red"}, {"file": "b.png", "colour": "red"}])
    with pytest.raises(ValueError, match="label column 'colour' has a single value \\['red'\\]"):
        csv_dm(path).prepare_data()
    path = write_csv(tmp_path / "gap.csv", [{"file": "a.png", "colour": "red"}, {"file": "b.png", "colour": ""}])
    with pytest.raises(ValueError, match="'colour' is empty on 1 line\\(s\\), e.g. lines \\[3\\]; .*drop those lines"):
        csv_dm(path).prepare_data()


def test_a_row_with_more_or_fewer_fields_than_the_header_is_named_by_its_line(tmp_path):
    """An unquoted comma inside a label made a fifth field: csv.DictReader filed it away and the shifted values
    became new classes of the next columns. A trailing delimiter (an empty last field) is not an error."""
    (tmp_path / "shifted.csv").write_text("file,shape,colour\na.png,square,red\nb.png,square,light,green\n"
                                          "c.png,circle\nd.png,circle,blue,\n")
    with pytest.raises(ValueError, match=r"data.csv_path: .*shifted.csv: 2 row\(s\) do not have the header's 3 fields "
                                         r"\(',' *-separated: file, shape, colour\): line 3 has 4, line 4 has 2\. "
                                         r"A value that holds ',' needs double quotes"):
        csv_dm(tmp_path / "shifted.csv").prepare_data()
    (tmp_path / "quoted.csv").write_text('file;shape;colour\r\na.png;square;"light;green"\r\nb.png;circle;red;\r\n')
    from datamodules.csv_images import read_csv
    assert read_csv(str(tmp_path / "quoted.csv")) == (["file", "shape", "colour"], [
        {"file": "a.png", "shape": "square", "colour": "light;green"},
        {"file": "b.png", "shape": "circle", "colour": "red"}])


def test_empty_and_missing_csv_are_refused(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="data.csv_path: .*empty.csv is empty"):
        csv_dm(tmp_path / "empty.csv").prepare_data()
    (tmp_path / "header.csv").write_text("file,colour\n")
    with pytest.raises(ValueError, match="is empty"):
        csv_dm(tmp_path / "header.csv").prepare_data()
    with pytest.raises(FileNotFoundError, match="data.csv_path: .*nope.csv does not exist"):
        csv_dm(tmp_path / "nope.csv").prepare_data()


def test_missing_and_corrupt_images_are_named_with_the_count(tmp_path):
    extra = [{"file": f"images/gone{i}.png", "colour": "red", "size_class": "1"} for i in range(11)]
    path = write_csv_dataset(tmp_path, n=24, rows_extra=extra)
    (tmp_path / "images" / "005.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match="12 file"):
        csv_dm(path).prepare_data()  # before training: train.py calls prepare_data first
    with pytest.raises(ValueError) as e:
        csv_dm(path).setup("fit")
    msg = str(e.value)
    assert "12 file(s)" in msg and "and 2 more" in msg and "(missing)" in msg and "data.skip_bad_images=true" in msg
    dm = csv_dm(path, skip_bad_images=True)
    with pytest.warns(UserWarning, match="skipping 12 file"):
        dm.setup("fit")
    kept = len(dm.train_set) + len(dm.val_set)
    assert kept == 23 and len(dm.bad_files) == 12 and str(tmp_path / "images" / "005.png") in dm.bad_files
    assert torch.equal(dm.train_set.labels["colour"].bincount(minlength=3) > 0, torch.ones(3, dtype=torch.bool))


@pytest.mark.skipif(not (CIFAR_TOOL.exists() and (SHARED_DATA / "cifar10-jpeg.npz").exists()),
                    reason="the offline CIFAR-10 copy (../shared/data) is absent")
def test_reads_the_cifar10_jpeg_attributes_layout(tmp_path):
    subprocess.run([sys.executable, str(CIFAR_TOOL), "attributes", str(tmp_path), "--per-class", "4"], check=True,
                   capture_output=True)
    dm = csv_dm(tmp_path / "annotations.csv", image_size=32, cache="mmap")
    dm.setup("fit")
    assert dm.heads == {"object": 10, "kind": 2, "brightness": 3}
    assert dm.vocabularies["brightness"] == ["bright", "dark", "medium"]
    assert len(dm.train_set) == 30 and len(dm.val_set) == 10
    assert dm.train_set.images.shape[1:] == (3, 32, 32)


def test_a_changed_image_rebuilds_the_cache(tmp_path):
    path = write_csv_dataset(tmp_path, n=12)
    first = csv_dm(path, val_fraction=0.0, test_fraction=0.25)
    with pytest.warns(UserWarning, match="validating on the test split"):
        first.setup("fit")
    assert first.validates_on_test  # the max_lr trials read no validation batch then
    target = first.split_paths["train"][0]
    write_image(tmp_path / target, class_image((255, 255, 0), size=(30, 30)))  # same name, new pixels
    again = csv_dm(path, val_fraction=0.0, test_fraction=0.25)
    with pytest.warns(UserWarning, match="validating on the test split"):
        again.setup("fit")
    assert again.split_paths == first.split_paths
    assert not torch.equal(again.train_set.images[0], first.train_set.images[0])
    assert torch.equal(again.train_set.images[1:], first.train_set.images[1:])
    assert len(list((tmp_path / ".image_cache").glob("*.npy"))) == 2


def test_an_image_listed_twice_is_named_in_one_warning_with_its_lines(tmp_path):
    """Two lines for one image (one of them relabelled) read silently: each line a sample, so the seeded split
    could put the image in training and in validation, and a clash taught both labels."""
    again = [{"file": "images/000.png", "colour": "green", "size_class": "1"},  # 000 is red: a clash
             {"file": "images/001.png", "colour": "green", "size_class": "1"}]  # 001 as it was: a repeat
    path = write_csv_dataset(tmp_path, n=24, rows_extra=again)
    messages = warned("more than one line", csv_dm(path))
    assert len(messages) == 1, messages
    assert "2 image(s) listed on more than one line, 1 of them with different labels" in messages[0]
    assert "'images/000.png' on lines [2, 26]" in messages[0]  # the clash is the example (header = line 1)
    assert not warned("more than one line", csv_dm(write_csv_dataset(tmp_path / "plain", n=24)))


def test_urls_in_the_image_column_are_refused_saying_to_download_them(tmp_path):
    path = write_csv(tmp_path / "urls.csv", [{"file": f"https://example.com/{i}.png", "colour": c}
                                             for i, c in enumerate(["red", "green"] * 4)])
    with pytest.raises(ValueError, match=r"8 image path\(s\) are URLs, e.g. https://example.com/0.png: download"):
        csv_dm(path).prepare_data()


def test_a_folder_or_a_binary_file_given_as_the_csv_is_named_for_what_it_is(tmp_path):
    """data.csv_path=<a folder> said "does not exist"; an image or a workbook said "no label columns not in ...;
    its columns are ['\\x89PNG']"."""
    write_csv_dataset(tmp_path, n=6)
    with pytest.raises(ValueError, match=r"data.csv_path: .* is a folder; it takes a CSV file .*data=image_folder"):
        csv_dm(tmp_path).prepare_data()
    with pytest.raises(ValueError, match=r"data.csv_path: .*000.png is not a text file \(a CSV\)"):
        csv_dm(tmp_path / "images" / "000.png").prepare_data()

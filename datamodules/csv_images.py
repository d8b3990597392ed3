"""Your own images listed in a CSV: one image-path column and one or more categorical label columns (one
classification head each), optionally a split column (train / val / test).

Paths are relative to the CSV's folder (or ``image_root``); an absolute path, or one that leads outside that
folder through ``..`` or a symlink, is refused unless ``allow_outside_paths=true``. A CSV written on Windows reads
the same: its ``\\`` separators become ``/``. Fields are separated by commas, semicolons or tabs (read off the
header line).
"""
from __future__ import annotations

import codecs
import csv
import io
import os
import re
import warnings
from collections.abc import Callable

import numpy as np

from datamodules.file_images import FileImageDataModule, Records, vocabulary
from datamodules.image_cache import MAX_LISTED
from datamodules.tensor_images import SPLIT_NAMES_SAID, UNKNOWN_LABEL, split_of

MISSING_LABELS = ("error", "ignore")
URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")  # http://, https://, s3://, gs://: not a path on this machine


def paths_root(csv_path: str, image_root: str | None = None) -> str:
    """The folder a CSV's image paths are relative to: ``image_root`` when given, else the CSV's own folder
    (absolute, ``~`` expanded); for training (``data.image_root``) and for prediction alike."""
    return os.path.abspath(os.path.expanduser(str(image_root or os.path.dirname(
        os.path.abspath(os.path.expanduser(str(csv_path)))))))


def resolve_paths(raw: list[str], root: str, allow_outside: bool, key: str) -> list[str]:
    """Absolute, real paths of ``raw`` (relative to ``root``); refuses ones outside ``root`` unless allowed."""
    urls = [p for p in raw if URL.match(p)]
    if urls:  # joined to the CSV's folder they read as missing files named ".../https:/host/..."
        raise ValueError(f"{key}: {len(urls)} image path(s) are URLs, e.g. {urls[0]}: download the images and list "
                         f"their local paths (relative to the CSV's folder or data.image_root)")
    root_real = os.path.realpath(root)
    out, outside = [], []
    for p in raw:
        p = p.replace("\\", "/") if os.sep == "/" else p  # folder\\image.jpg from a CSV written on Windows
        joined = os.path.join(root, os.path.expanduser(p))
        real = os.path.realpath(joined)
        if os.path.isabs(os.path.expanduser(p)) or os.path.commonpath([root_real, real]) != root_real:
            outside.append(p)
        out.append(real if not allow_outside else os.path.abspath(joined))
    if outside and not allow_outside:
        listed = ", ".join(outside[:MAX_LISTED]) + (f", and {len(outside) - MAX_LISTED} more" if
                                                     len(outside) > MAX_LISTED else "")
        raise ValueError(f"{key}: {len(outside)} image path(s) are absolute or lead outside {root_real} (through "
                         f"'..' or a symlink): {listed}. Set data.allow_outside_paths=true if you trust this CSV")
    return out


def delimiter(header: str) -> str:
    """The field separator of a CSV's header line: whichever of comma, semicolon and tab it holds most (a
    spreadsheet set to a European locale writes semicolons; a TSV, tabs); a comma for a one-column file."""
    return max((",", ";", "\t"), key=header.count)


def csv_text(path: str, key: str, warn: Callable[[str], None]) -> str:
    """A CSV file's text: UTF-8 (with or without Excel's byte-order mark) or UTF-16 with its mark (Excel's "Unicode
    text"); anything else is read as Windows-1252, the encoding Excel writes on Western-European Windows, with a
    warning naming the file and the first line that is not UTF-8 (it stopped with a bare UnicodeDecodeError)."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16")
    if b"\x00" in raw[:4096]:  # an image, a zip, a spreadsheet's .xlsx: no text file has NUL bytes
        raise ValueError(f"{key}: {path} is not a text file (a CSV): an image, an archive or an .xlsx workbook? "
                         f"Save the table as CSV (comma, semicolon or tab separated)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[:err.start].count(b"\n") + 1
        warn(f"{key}: {path} is not UTF-8 (line {line} is the first that is not); read as Windows-1252, Excel's "
             "encoding on Western-European Windows: check its labels and paths, or save it as UTF-8")
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError:  # a byte cp1252 leaves undefined: Latin-1 reads every byte
            return raw.decode("latin-1")


def read_csv(path: str, key: str = "data.csv_path",
             warn: Callable[[str], None] = warnings.warn) -> tuple[list[str], list[dict[str, str]]]:
    """(columns, rows) of the CSV at ``path``; ``key``, the config key that named it, for the messages; ``warn``
    gives a warning (a datamodule's: once, though it reads the file again in setup)."""
    if os.path.isdir(path):
        raise ValueError(f"{key}: {path} is a folder; it takes a CSV file (a folder of class folders is read by "
                         f"data=image_folder data.root={path})")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{key}: {path} does not exist")
    text = csv_text(path, key, warn)
    sep = delimiter(text.split("\n", 1)[0])
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=sep)
    rows, ragged = [], []
    for row in reader:  # DictReader files a row's extra fields under None and fills a short row's with None
        extra = [v for v in row.pop(None, []) if v.strip()]  # empty trailing fields (a trailing delimiter) are fine
        fields = sum(v is not None for v in row.values()) + len(extra)
        if extra or fields < len(row):
            ragged.append(f"line {reader.line_num} has {fields}")
        rows.append(row)
    columns = list(reader.fieldnames or [])
    if not columns or not rows:
        raise ValueError(f"{key}: {path} is empty (it needs a header and at least one row)")
    if ragged:
        raise ValueError(f"{key}: {path}: {len(ragged)} row(s) do not have the header's {len(columns)} fields "
                         f"({sep!r}-separated: {', '.join(columns)}): {', '.join(ragged[:5])}"
                         f"{', ...' if len(ragged) > 5 else ''}. A value that holds {sep!r} needs double "
                         "quotes around it")
    return columns, rows


class CSVImageDataModule(FileImageDataModule):
    """One head per label column, named after the column.

    Args:
        csv_path: the CSV file.
        image_column: the column with image paths (default: the first column).
        label_columns: the label columns (default: every other column but the split column).
        split_column: a column with train / val / test per row, used when the CSV has it.
        stratify_on: the label column the seeded split is stratified on (default: the first label column).
        image_root: folder the paths are relative to (default: the CSV's folder).
        allow_outside_paths: accept absolute paths and paths leading outside that folder.
        missing_labels: an empty label cell is an ``error`` (the default), or ``ignore``: that image counts for
            nothing in that attribute's loss and metrics (its label is ``UNKNOWN_LABEL``) and trains the others.
        **kwargs: see :class:`FileImageDataModule` and :class:`TensorImageDataModule`.
    """

    source_key = "data.csv_path"

    def __init__(self, csv_path: str, image_column: str | None = None, label_columns: list[str] | None = None,
                 split_column: str | None = "split", stratify_on: str | None = None, image_root: str | None = None,
                 allow_outside_paths: bool = False, missing_labels: str = "error", **kwargs):
        super().__init__(**kwargs)
        if missing_labels not in MISSING_LABELS:
            raise ValueError(f"data.missing_labels must be one of {list(MISSING_LABELS)}, got {missing_labels!r}")
        self.missing_labels = missing_labels
        self.csv_path = os.path.abspath(os.path.expanduser(str(csv_path)))
        self.image_column, self.split_column, self.stratify_on = image_column, split_column, stratify_on
        self.label_columns = list(label_columns) if label_columns is not None else None
        self.image_root = image_root
        self.allow_outside_paths = allow_outside_paths

    def stratify_head(self, rec: Records) -> str:
        """``stratify_on`` (checked against the label columns by :meth:`read_records`), else the first column."""
        return self.stratify_on or next(iter(rec.vocabularies))

    def warn_case_variants(self, column: str, vocab: list[str]) -> None:
        """Labels are compared as written (after stripping spaces): ``Cat`` and ``cat`` are two classes. Say so
        where a column has such pairs, most likely a typing slip that splits one class in two."""
        groups: dict[str, list[str]] = {}
        for value in vocab:
            groups.setdefault(value.casefold(), []).append(value)
        variants = [names for names in groups.values() if len(names) > 1]
        if variants:
            self.warn_once(f"data.csv_path ({self.csv_path}): label column {column!r} has values that differ only in "
                           f"case, each a class of its own: {variants[:MAX_LISTED]}; fix the CSV if they are one class")

    def warn_repeated(self, paths: list[str], raw: list[str], labels: dict[str, np.ndarray]) -> None:
        """A warning for images listed on more than one line: each line is a sample of its own (the seeded split can
        put the same image in training and in validation or test), and lines that disagree on a label teach both."""
        lines: dict[str, list[int]] = {}
        for i, path in enumerate(paths):
            lines.setdefault(path, []).append(i)
        repeated = [at for at in lines.values() if len(at) > 1]
        if not repeated:
            return
        clashing = [at for at in repeated if any(len({int(y[i]) for i in at}) > 1 for y in labels.values())]
        example = (clashing or repeated)[0]
        self.warn_once(f"data.csv_path ({self.csv_path}): {len(repeated)} image(s) listed on more than one line, "
                       f"{len(clashing)} of them with different labels; e.g. {raw[example[0]]!r} on lines "
                       f"{[i + 2 for i in example][:MAX_LISTED]}. Each line is a sample: a repeated image can land in "
                       f"training and in validation or test; list each image once")

    def source_path(self) -> str:
        return self.csv_path

    def refuse_split_like_labels(self, labels: list[str], rows: list[dict], split_col: str | None) -> None:
        """A column read as a label (data.label_columns unset) whose every value names a split (``fold``:
        train/val/test) trained a head to predict the split, and the CSV's own split went unused: stop, naming
        the keys that say which it is."""
        for col in labels:
            values = {(row.get(col) or "").strip() for row in rows} - {""}
            if len({split_of(v) for v in values}) >= 2 and all(split_of(v) for v in values):
                use = (f"set data.split_column={col} to split by it" if split_col is None else
                       f"rename or drop it (data.split_column={split_col} already splits)")
                raise ValueError(f"data.csv_path ({self.csv_path}): column {col!r} holds split names "
                                 f"({', '.join(sorted(values))}), yet would be trained as a label: {use}, or list "
                                 f"the label columns in data.label_columns (a column listed there is a label)")

    def read_records(self) -> Records:
        columns, rows = read_csv(self.csv_path, warn=self.warn_once)
        where = f"data.csv_path ({self.csv_path})"
        image_col = self.image_column or columns[0]
        if image_col not in columns:
            raise ValueError(f"data.image_column: {image_col!r} is not a column of {self.csv_path}; its columns "
                             f"are {columns}")
        split_col = self.split_column if self.split_column in columns else None
        labels = self.label_columns
        if labels is None and self.known_classes is not None:  # a trained model's attributes (task=eval) alone
            labels = list(self.known_classes)
            absent = [c for c in labels if c not in columns]
            if absent:
                raise ValueError(f"data.csv_path: the checkpoint's attribute(s) {absent} are not columns of "
                                 f"{self.csv_path}; its columns are {columns}")
        if labels is None:
            labels = [c for c in columns if c not in (image_col, split_col)]
            self.refuse_split_like_labels(labels, rows, split_col)
        missing = [c for c in labels if c not in columns]
        if missing or not labels:
            raise ValueError(f"data.label_columns: {missing or 'no label columns'} not in {self.csv_path}; its "
                             f"columns are {columns}")
        if self.stratify_on is not None and self.stratify_on not in labels:
            raise ValueError(f"data.stratify_on: {self.stratify_on!r} is not one of the label columns {labels}")
        vocabularies, label_arrays = {}, {}
        for col in labels:
            values = [(row.get(col) or "").strip() for row in rows]
            empty = [i + 2 for i, v in enumerate(values) if not v]  # line numbers (the header is line 1)
            if empty and self.missing_labels == "error":
                raise ValueError(f"{where}: label column {col!r} is empty on {len(empty)} line(s), e.g. lines "
                                 f"{empty[:MAX_LISTED]}; with data.missing_labels=ignore an empty cell leaves "
                                 "that image out of this attribute's loss and metrics (its other attributes still "
                                 "train); else fill them in (an unknown value can be a class of its own), drop "
                                 "those lines, or leave the column out of data.label_columns")
            vocab = vocabulary([v for v in values if v])
            if len(vocab) < 2 and self.known_classes is None:  # (data for a trained model may hold one class)
                raise ValueError(f"{where}: label column {col!r} has a single value {vocab}; a classification "
                                 "head needs >= 2 classes (drop it from data.label_columns)")
            self.warn_case_variants(col, vocab)
            index = {v: i for i, v in enumerate(vocab)}
            vocabularies[col] = vocab
            label_arrays[col] = np.asarray([index[v] if v else UNKNOWN_LABEL for v in values], np.int64)
        split = None
        if split_col is not None:
            given = [(row.get(split_col) or "").strip() for row in rows]
            split = np.asarray([split_of(value) for value in given], dtype=object)
            unknown = sorted({value for value, s in zip(given, split) if s is None})
            if unknown:
                raise ValueError(f"{where}: split column {split_col!r} has values {unknown[:MAX_LISTED]}; allowed "
                                 f"(any case): {SPLIT_NAMES_SAID}")
            split[split == "train"] = ""
        root = paths_root(self.csv_path, self.image_root)
        raw = [(row.get(image_col) or "").strip() for row in rows]
        empty = [i + 2 for i, p in enumerate(raw) if not p]
        if empty:
            raise ValueError(f"{where}: image column {image_col!r} is empty on line(s) {empty[:MAX_LISTED]}")
        paths = resolve_paths(raw, root, self.allow_outside_paths, where)
        self.warn_repeated(paths, raw, label_arrays)
        return Records(paths=paths, labels=label_arrays, vocabularies=vocabularies, split=split,
                       cache_dir=os.path.join(os.path.dirname(self.csv_path), ".image_cache"))

"""callbacks.range_test.result (RangeTestResult): a real sweep's result round-trips through JSON, save() writes the
sweep (every repeat), plot() returns a Figure."""
from __future__ import annotations

import csv
import dataclasses
import json
import os

import numpy as np
import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure
from torch.utils.data import DataLoader

from callbacks.range_test.finder import find_lr
from callbacks.range_test.loss import LRRangeTest
from callbacks.range_test.result import RangeTestResult
from range_fixtures import Regression, dataset

torch.set_num_threads(1)


def test_result_json_round_trip_and_save(tmp_path):
    pl.seed_everything(0, verbose=False)
    model = Regression()
    result = find_lr(model, range_test=LRRangeTest(num_steps=60, min_lr=1e-4, max_lr=100.0, repeats=2),
                     train_dataloaders=DataLoader(dataset(64, 0), batch_size=16, shuffle=True),
                     accelerator="cpu", default_root_dir=str(tmp_path))
    path = result.to_json(tmp_path / "r.json")
    back = RangeTestResult.from_json(path)
    # NaN != NaN: compare the serialised forms, and the fields that carry the answer directly
    assert json.dumps(dataclasses.asdict(back)) == json.dumps(dataclasses.asdict(result))
    assert (back.lr, back.rule, back.suggestions, back.lrs) == (result.lr, result.rule, result.suggestions,
                                                                result.lrs)
    np.testing.assert_array_equal(back.losses, result.losses)
    paths = result.save(tmp_path / "run")
    assert sorted(os.path.basename(p) for p in paths) == ["lr_range_test.csv", "lr_range_test.json",
                                                         "lr_range_test.png"]
    assert (tmp_path / "run" / "lr_range_test.png").stat().st_size > 10_000
    with open(tmp_path / "run" / "lr_range_test.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["repeat"] == "0"]
    assert [float(r["lr"]) for r in rows] == result.lrs
    np.testing.assert_array_equal([float(r["loss"]) for r in rows], result.losses)
    assert RangeTestResult.from_json(tmp_path / "run" / "lr_range_test.json").lr == result.lr
    assert isinstance(back.plot(), Figure)

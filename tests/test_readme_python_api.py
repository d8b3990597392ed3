"""The README's "Python API" section runs as written. Each of its three ```python blocks is executed unchanged, in a
fresh folder as the current directory (where the blocks write), and what it returns is checked: the range test's
LR, the training run's metric and result.json, the sweep summary's rows. The one set-up is what a reader has done
before: the sweep block reads the sweep directory it names, so a two-job sweep is run into that folder first."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

from conftest import ROOT, run_train_forked

README = (ROOT / "README.md").read_text()
HEADING = "\n## Python API\n"


def api_blocks() -> list[str]:
    """The ```python blocks of the section, in order."""
    assert HEADING in README, "the README lost its Python API section"
    section = README.split(HEADING, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def run_block(index: int, cwd: Path, monkeypatch) -> dict:
    """Execute block ``index`` as written, in ``cwd``; returns the names it defined."""
    monkeypatch.chdir(cwd)
    namespace: dict = {"__name__": "readme_python_api"}
    exec(compile(api_blocks()[index], f"README.md, Python API block {index + 1}", "exec"), namespace)
    return namespace


def test_the_section_shows_each_entry_point_once():
    blocks = api_blocks()
    assert len(blocks) == 3, "three examples, each run by a test below"
    assert "find_lr(" in blocks[0] and "run_from_overrides(" in blocks[1] and "summarize(" in blocks[2]


def test_the_range_test_example(tmp_path, monkeypatch):
    from callbacks.range_test.finder import RangeTestResult

    names = run_block(0, tmp_path, monkeypatch)
    result, test = names["result"], names["test"]
    assert isinstance(result, RangeTestResult) and result.kind == "loss"
    assert math.isfinite(result.lr) and test.min_lr <= result.lr <= test.max_lr, result.lr
    assert result.lr == result.suggestions[result.rule] and not result.trials  # trial_factors=None: the rule's LR
    assert sorted(Path(p).name for p in names["paths"]) == ["lr_range_test.csv", "lr_range_test.json",
                                                           "lr_range_test.png"]
    assert all((tmp_path / "range_test" / Path(p).name).stat().st_size > 0 for p in names["paths"])
    assert RangeTestResult.from_json(tmp_path / "range_test" / "lr_range_test.json").lr == result.lr


def test_the_training_run_example(tmp_path, monkeypatch):
    val_acc = run_block(1, tmp_path, monkeypatch)["val_acc"]
    run_dir = tmp_path / "outputs" / "from_python"
    written = json.loads((run_dir / "result.json").read_text())
    assert written["status"] == "completed" and written["monitor"] == "val/acc"
    assert val_acc == written["metrics"]["val/acc"] == written["objective"] and 0.0 <= val_acc <= 1.0
    assert written["lr"]["max_lr"] == 0.4 and written["run_dir"] == str(run_dir)  # the block's override and folder
    assert written["steps"] == 3 * (1024 // 64)  # experiment=smoke: 3 epochs of 1,024 images in batches of 64
    assert (run_dir / "checkpoints" / "last.ckpt").exists() and (run_dir / "config.yaml").exists()


def test_the_sweep_summary_example(tmp_path, monkeypatch, capsys):
    sweep_dir = re.search(r'summarize\("([^"]+)"\)', api_blocks()[2]).group(1)  # the folder the block reads
    tiny = ["experiment=smoke", "trainer.enable_progress_bar=false", "~callbacks.progress_bar", "~logger",
            "data.num_train=128", "data.num_val=64", "data.batch_size=32", "trainer.max_epochs=1"]
    sweep = run_train_forked(["-m", *tiny, "scheduler.max_lr=0.05,0.2", f"hydra.sweep.dir={sweep_dir}"], cwd=tmp_path,
                             env_extra={"OMP_NUM_THREADS": "1"})  # the sweep's command line, forked (conftest)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    capsys.readouterr()

    summary = run_block(2, tmp_path, monkeypatch)["summary"]
    assert summary.complete and not summary.missing and summary.monitor == "val/acc"
    assert len(summary.rows) == 2 == len(list((tmp_path / sweep_dir).glob("*/result.json")))  # one row per job
    assert sorted(row["scheduler.max_lr"] for row in summary.rows) == ["0.05", "0.2"]
    assert [row["rank"] for row in summary.rows] == [1, 2]
    assert {row["status"] for row in summary.rows} == {"completed"}
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "True []" and len(printed) == 3, printed


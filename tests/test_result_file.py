"""result.json: one module writes and reads it, for train.py, the sweep tools and the benchmarks alike."""
import math

import pytest
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from callbacks.run.result_file import (FINAL, FINISHED, RESULT_FILE, read_result, result_path, worst_value, write_atomic,
                                      write_result)
from callbacks.sweeps.checks import record_failure
from callbacks.sweeps.summary import summarize


def test_a_record_is_updated_in_place_and_never_half_written(tmp_path):
    run_dir = tmp_path / "run"
    assert read_result(run_dir) is None  # never written: no record, no error
    write_result(run_dir, status="running", reason="", lr={"max_lr": 0.2, "source": "config"}, run_dir=str(run_dir))
    record = write_result(run_dir, status="completed", metrics={"val/acc": 0.5}, objective=0.5)
    assert record == read_result(run_dir)
    assert record["status"] == "completed" and record["lr"]["max_lr"] == 0.2  # the start's fields are kept
    assert sorted(p.name for p in run_dir.iterdir()) == [RESULT_FILE]  # no temporary file left beside it


def test_under_ddp_only_rank_zero_writes(tmp_path, monkeypatch):
    from pytorch_lightning.utilities import rank_zero_only

    write_result(tmp_path, status="running", run_dir=str(tmp_path))
    monkeypatch.setattr(rank_zero_only, "rank", 1)  # another rank: it reaches the same record, rank 0 writes it
    record = write_result(tmp_path, status="completed", objective=0.5)
    assert record["status"] == "completed" and read_result(tmp_path)["status"] == "running"


def test_an_atomic_write_that_fails_midway_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = write_atomic(tmp_path / "sub" / "table.csv", "a,b\n1,2\n")  # the folder is made
    assert path.read_text() == "a,b\n1,2\n"

    def killed(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr("callbacks.run.result_file.os.replace", killed)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, "a,b\n3,")
    assert path.read_text() == "a,b\n1,2\n"  # a reader sees the old file, never half the new one


def test_an_unreadable_record_is_named_or_skipped_and_then_replaced(tmp_path):
    result_path(tmp_path).write_text('{"status": "runn')  # killed while writing
    with pytest.raises(ValueError, match=rf"{RESULT_FILE} is not valid JSON.*killed while writing"):
        read_result(tmp_path)
    assert read_result(tmp_path, strict=False) is None
    result_path(tmp_path).write_text("[1, 2]")
    with pytest.raises(ValueError, match="holds a list, expected a JSON object"):
        read_result(tmp_path)
    write_result(tmp_path, status="failed")
    assert read_result(tmp_path) == {"status": "failed"}


def test_the_worst_value_and_the_statuses():
    assert worst_value("max") == -math.inf and worst_value("min") == math.inf
    assert set(FINISHED) < set(FINAL) and "running" not in FINAL


def test_train_pys_record_and_the_sweeps_failure_record_are_read_by_the_one_reader(tmp_path):
    """train.py writes "running" at start; a job that then raises is marked "failed" by the Hydra callback
    (record_failure); read_result and the sweep summary read what both wrote."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    basic = {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper", "params": None}
    OmegaConf.save({"monitor": "val/acc", "monitor_mode": "max",
                    "hydra": {"overrides": {"task": ["seed=1,2"]}, "sweeper": basic}}, sweep / "multirun.yaml")
    for num in (0, 1):
        run_dir = sweep / f"{num}_seed={num + 1}"
        (run_dir / ".hydra").mkdir(parents=True)
        OmegaConf.save(OmegaConf.create([f"seed={num + 1}"]), run_dir / ".hydra" / "overrides.yaml")
        OmegaConf.save({"hydra": {"job": {"num": num}}}, run_dir / ".hydra" / "hydra.yaml")
        write_result(run_dir, status="running", reason="", overrides=[f"seed={num + 1}"], monitor="val/acc",
                     monitor_mode="max", lr={"max_lr": 0.2, "source": "config"}, run_dir=str(run_dir))
    done, crashed = sorted(sweep.glob("*_seed=*"))
    write_result(done, status="completed", metrics={"val/acc": 0.7}, objective=0.7, epochs=1, steps=4, wall_s=1.0)
    config = OmegaConf.create({"monitor": "val/acc", "monitor_mode": "max",
                               "hydra": {"runtime": {"output_dir": str(crashed)}}})
    record_failure(config, JobReturn(overrides=["seed=2"], status=JobStatus.FAILED,
                                     _return_value=RuntimeError("CUDA error: out of memory")))
    failed = read_result(crashed)
    assert failed["status"] == "failed" and failed["objective"] == -math.inf and failed["lr"]["max_lr"] == 0.2
    rows = {row["job"]: row for row in summarize(sweep).rows}
    assert rows[0]["status"] == "completed" and rows[0]["val/acc"] == 0.7
    assert rows[1]["status"] == "failed" and rows[1]["reason"] == "RuntimeError: CUDA error: out of memory"


def test_a_resumed_runs_wall_time_adds_this_session_to_what_the_run_it_continues_recorded(tmp_path):
    """A resume recorded only its own session's seconds (3.7 s for a run that had trained 20 s before Ctrl-C)."""
    import time

    from callbacks.run.ending import Ending
    from callbacks.run.result_file import run_records

    cfg = OmegaConf.create({"output_dir": str(tmp_path)})
    started = time.time() - 3.0
    assert Ending(cfg, "config", {}, started, None).wall_s() == pytest.approx(3.0, abs=0.5)  # a fresh run
    write_result(tmp_path, status="interrupted", wall_s=20.0)
    resumed = Ending(cfg, "config", {}, started, None, resumed=(5, run_records(tmp_path)))
    assert resumed.wall_s() == pytest.approx(23.0, abs=0.5)
    result_path(tmp_path).write_text("{not json")
    assert Ending(cfg, "config", {}, started, None, resumed=(5, run_records(tmp_path))).wall_s() == pytest.approx(3.0, abs=0.5)

"""train.py as separate processes: a signal during the LR search, and a two-process CPU DDP run (each test starts
train.py itself, so they sit apart from test_train.py for the suite's two workers to share the load)."""
import signal
import time

import pytest
from omegaconf import OmegaConf

from callbacks.run.result_file import read_result
from conftest import run_train_forked, smoke_overrides, start_train_forked


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_a_signal_during_the_lr_search_stops_the_run_at_once_with_nothing_to_resume(tmp_path, signum):
    """SIGTERM during the range test used to be noted by Lightning and ignored (the run searched and trained to the
    end); Ctrl-C ended with Lightning's exit 1. Both now stop the search: exit 130, result.json "interrupted", no
    checkpoint, and the message says to run the command again."""
    run_dir = tmp_path / "run"
    args = smoke_overrides("scheduler.max_lr=auto", "range_test.num_steps=5000", "range_test.max_lr=1e-3")
    # forked (conftest.start_train_forked): a process of its own with Python's own SIGINT handler, as from a shell
    run = start_train_forked([*args, f"hydra.run.dir={run_dir}"], cwd=tmp_path, merge_stderr=True, timeout=120)
    run.wait_for_line("run dir")  # the header's last line
    time.sleep(1.0)  # inside the search: it starts right after the header
    run.send_signal(getattr(signal, signum))
    proc = run.wait()
    out = proc.stdout
    assert proc.returncode == 130, out[-3000:]
    assert f"{signum} during the LR search: stopped before training" in out and "Traceback" not in out, out[-3000:]
    record = read_result(run_dir)
    assert record["status"] == "interrupted" and "Run the same command again" in record["reason"]
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "lr_range_test.json").exists()


def test_stop_at_once_raises_inside_and_gives_the_handlers_back():
    import os

    from callbacks.interrupt import SearchInterrupted, stop_at_once

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SearchInterrupted, match="SIGTERM during the LR search"):
        with stop_at_once("LR search"):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(10_000_000):  # the handler runs between two bytecodes of this loop
                pass
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_ddp_run_on_two_cpu_processes_with_auto_lr_prints_once_writes_once_and_resumes_exactly(tmp_path):
    """train.py with trainer=ddp on the CPU (gloo), max_lr=auto: both ranks search and train, rank 0 alone prints to
    the console and writes result.json, config.yaml and the range test's files; rank 1 logs to its own file; the
    ranks validate and test on each image once. Resumed under DDP from its first epoch's checkpoint, the run
    searches no more and ends with the same weights and results."""
    import torch

    run_dir = tmp_path / "run"
    args = smoke_overrides("trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.max_epochs=2",
                           "scheduler.max_lr=auto", "range_test=quick", "trainer.precision=32-true",
                           "data.num_val=127", "callbacks.model_checkpoint.save_top_k=-1")

    def train(*extra: str) -> str:  # rank 0 forked (conftest.run_train_forked); Lightning starts rank 1 afresh
        proc = run_train_forked([*args, *extra, f"hydra.run.dir={run_dir}"], cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        return proc.stdout + proc.stderr

    out = train()
    for line in ("device      cpu x2", "lr found    max_lr = ", "completed in "):
        assert sum(x.startswith(line) for x in out.splitlines()) == 1, (line, out[-3000:])
    assert out.count("found max_lr = ") == 1, out[-3000:]  # the range test's tables: rank 0's alone
    record = read_result(run_dir)
    assert record["status"] == "completed" and record["lr"]["source"].startswith("range_test (")
    # 127 validation and 127 test images on 2 ranks: each seen once (Lightning's sampler would pad to 128, k / 128)
    for key in ("val/acc", "test/acc"):
        correct = record["metrics"][key] * 127
        assert 0 < correct < 127 and abs(correct - round(correct)) < 1e-3, (key, record["metrics"][key])
    assert OmegaConf.load(run_dir / "config.yaml").scheduler.max_lr == record["lr"]["max_lr"]
    assert (run_dir / "lr_range_test.json").exists()
    rank1 = (run_dir / "train_ddp_process_1.log").read_text()
    assert f"max_lr = {record['lr']['max_lr']:.4g}" in rank1 and "completed in " in rank1  # the same LR on rank 1

    def weights() -> dict:
        return torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]

    full, first_epoch = weights(), run_dir / "checkpoints" / "best-epoch000.ckpt"
    searched = (run_dir / "lr_range_test.json").stat().st_mtime_ns
    resumed_out = train(f"ckpt_path={first_epoch}")
    assert "lr found    max_lr = " in resumed_out and "checkpoint: range_test (" in resumed_out
    assert (run_dir / "lr_range_test.json").stat().st_mtime_ns == searched  # no second search
    resumed = weights()
    assert all(torch.equal(full[k], resumed[k]) for k in full)
    again = read_result(run_dir)
    assert again["lr"]["max_lr"] == record["lr"]["max_lr"] and again["metrics"]["test/acc"] == record["metrics"][
        "test/acc"] and again["steps"] == record["steps"]


def test_an_interrupted_sweep_job_says_to_resume_the_sweep_even_when_it_stopped_in_the_lr_search(monkeypatch):
    """A sweep's job stopped in the LR search said "run the same command again", which retrained every job (now:
    refused, the folder holds a sweep); the sweep resumes with its folder and +resume=true."""
    from callbacks.run import hydra_job

    monkeypatch.setattr(hydra_job, "is_multirun", lambda: False)
    assert hydra_job.how_to_resume(None) == "Run the same command again"
    assert hydra_job.how_to_resume("r/checkpoints/last.ckpt").endswith("plus ckpt_path=r/checkpoints/last.ckpt")
    monkeypatch.setattr(hydra_job, "is_multirun", lambda: True)
    monkeypatch.setattr(hydra_job, "sweep_dir", lambda: "multirun/s")
    for checkpoint in (None, "x.ckpt"):
        assert hydra_job.how_to_resume(checkpoint) == ("Resume the sweep: the same command plus "
                                                   "hydra.sweep.dir=multirun/s +resume=true")

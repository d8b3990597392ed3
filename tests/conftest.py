"""Shared fixtures: compose configs with Hydra's compose API and shrink them for a CPU test run."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"
CIFAR_TOOL = SHARED_DATA / "cifar10_jpeg.py"

# Two cores on CI: keep each test process from oversubscribing them. Under pytest-xdist (make test: -n 2) each
# worker, and every train.py it starts, gets one thread: two workers then fill the two cores without OpenMP threads
# waiting on each other (a 2-thread process on a busy 2-core machine can run many times slower). In-process runs
# read OMP_NUM_THREADS like train.py does (callbacks/run/machine.py), hence the environment variable too.
TEST_THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(2, os.cpu_count() or 1))
torch.set_num_threads(TEST_THREADS)
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"

CPU_OVERRIDES = [
    "trainer=cpu",
    "logger=tensorboard",
    "~callbacks.progress_bar",
    "trainer.enable_progress_bar=false",
]


def compose_config(overrides=(), output_dir: Path | None = None):
    """The train config as train.py would see it (``output_dir`` replaces Hydra's run directory)."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides))
    if output_dir is not None:
        cfg.output_dir = str(output_dir)
    return cfg


def smoke_overrides(*extra: str) -> list[str]:
    """The smoke experiment shrunk further for a test: tiny data, one or two short epochs, no progress bars."""
    return ["experiment=smoke", *CPU_OVERRIDES, "data.num_train=256", "data.num_val=128", "data.batch_size=32",
            "trainer.max_epochs=2", *SHORT_TRIALS, *extra]


# The max_lr trials of scheduler.max_lr=auto at a test's size (the default is 4 trials of 50+ steps each).
SHORT_TRIALS = ["range_test.trial_min_steps=4", "range_test.trial_max_steps=6"]


@pytest.fixture
def compose_cfg(tmp_path):
    def _compose(*overrides: str):
        return compose_config(overrides, output_dir=tmp_path)
    return _compose


def train_env(env_extra: dict | None = None) -> dict:
    """The environment train.py runs with in the tests: this one, the repo on PYTHONPATH, the tests' threads."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(TEST_THREADS), **(env_extra or {})}


def run_train(args, cwd: Path, timeout: int = 240, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    """Run train.py in a subprocess (as a user would) with Hydra overrides ``args``."""
    env = train_env(env_extra)
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


class ForkedTrain:
    """One train.py child of tests/train_fork_server.py: ``pid`` (to signal it while it runs), ``output()`` (what
    it has written to stdout so far) and ``wait()`` (its subprocess.CompletedProcess)."""

    def __init__(self, server: "_ForkServer", args, out: str, err: str | None, pid: int, timeout: int):
        self.server, self.args, self.out, self.err, self.pid, self.timeout = server, args, out, err, pid, timeout

    def output(self) -> str:
        if not os.path.exists(self.out):  # the child opens it a moment after the server has written its pid
            return ""
        with open(self.out, encoding="utf-8", errors="replace") as f:
            return f.read()

    def alive(self) -> bool:
        """Whether it still runs (the server reaps it within 20 ms of its end, so its pid is gone then)."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def send_signal(self, signum: int) -> None:
        """``signum`` to it, unless it has ended already (the test then reads why from wait())."""
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def wait_until(self, done, what: str, timeout: float = 60) -> None:
        """Until ``done()`` is true; if it ends first or ``timeout`` passes, it is killed and the test fails, naming
        ``what`` it waited for, with its output."""
        import time

        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline or not self.alive():
                self.send_signal(9)
                self.wait()
                raise AssertionError(f"no {what} before it ended or {timeout} s passed:\n{self.output()[-3000:]}")
            time.sleep(0.05)

    def wait_for_line(self, start: str, timeout: float = 60) -> None:
        """Until a line of its stdout starts with ``start`` (wait_until)."""
        self.wait_until(lambda: any(line.startswith(start) for line in self.output().splitlines()),
                        f"line starting {start!r}", timeout)

    def wait(self) -> subprocess.CompletedProcess:
        answer = self.server.answer()
        if answer.get("timeout"):
            raise subprocess.TimeoutExpired([sys.executable, "train.py", *self.args], self.timeout)
        stderr = None
        if self.err is not None:
            with open(self.err, encoding="utf-8", errors="replace") as f:
                stderr = f.read()
        return subprocess.CompletedProcess([sys.executable, str(ROOT / "train.py"), *self.args],
                                           answer["returncode"], self.output(), stderr)


class _ForkServer:
    """tests/train_fork_server.py, started on first use in this (pytest worker) process and ended with it. One
    child at a time: start() returns it running, and it must be waited for before the next starts."""

    def __init__(self):
        self.proc = None
        self.tmp = None
        self.running = None  # the child started and not yet waited for

    def start(self, args, cwd, timeout, env, merge_stderr) -> ForkedTrain:
        import json
        import tempfile
        import time

        if self.proc is None or self.proc.poll() is not None:
            self.tmp = tempfile.mkdtemp(prefix="train_fork_server_")
            self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "train_fork_server.py")], cwd=ROOT,
                                         env=train_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            import atexit

            atexit.register(self.close)
        if self.running is not None:  # a test that failed before waiting for its child: end it, take its answer
            self.running.send_signal(9)
            self.running.wait()
        out, err, pid_file = (os.path.join(self.tmp, name) for name in ("stdout", "stderr", "pid"))
        for stale in (pid_file, out, err):  # the last child's: none may be read as this one's
            if os.path.exists(stale):
                os.remove(stale)
        args = [str(a) for a in args]
        request = {"args": args, "cwd": str(cwd), "env": env, "stdout": out, "stderr": None if merge_stderr else err,
                   "timeout": timeout, "pid_file": pid_file}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        while not os.path.exists(pid_file):  # the server writes it right after the fork
            if self.proc.poll() is not None:
                raise RuntimeError(f"tests/train_fork_server.py ended (status {self.proc.returncode})")
            time.sleep(0.01)
        with open(pid_file) as f:
            self.running = ForkedTrain(self, args, out, None if merge_stderr else err, int(f.read()), timeout)
        return self.running

    def answer(self) -> dict:
        """The server's answer for the running child, once it has ended: {"returncode"} or {"timeout": true}."""
        import json

        self.running = None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"tests/train_fork_server.py ended (status {self.proc.wait()})")
        return json.loads(line)

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        if self.tmp is not None:
            import shutil

            shutil.rmtree(self.tmp, ignore_errors=True)


_FORK_SERVER = _ForkServer()


def start_train_forked(args, cwd: Path, timeout: int = 240, env_extra: dict | None = None,
                       merge_stderr: bool = False) -> ForkedTrain:
    """``python train.py ARGS`` started as run_train_forked starts it, returned while it runs: for tests that
    signal a run (``run.send_signal(...)``) or read its output as it comes. ``run.wait()`` before the next one."""
    return _FORK_SERVER.start(args, cwd, timeout, train_env(env_extra), merge_stderr)


def run_train_forked(args, cwd: Path, timeout: int = 240, env_extra: dict | None = None,
                     merge_stderr: bool = False) -> subprocess.CompletedProcess:
    """``run_train`` without paying train.py's imports each time: train.py runs as ``__main__`` in a process forked
    from one that has imported them already (tests/train_fork_server.py): its own exit status, stdout and stderr, its
    argv, working directory and environment as run_train gives them. ``merge_stderr``: stderr into stdout (one
    pipe); ``stderr`` is then None. For tests of what a command line says, writes and exits with; run_train is the
    plain ``python train.py`` subprocess."""
    return start_train_forked(args, cwd, timeout, env_extra, merge_stderr).wait()


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def run_in_process(overrides, output_dir) -> tuple[object, str]:
    """``python train.py <overrides>`` with ``output_dir`` as its run directory, in this process
    (``train.run_from_overrides``): for tests of what a run leaves behind and says rather than of how the process
    exits (no .hydra/, train.log, exit status). Returns (what run() returned, the text a user would have seen: the
    lines train.py and Lightning logged and the Python warnings raised during the run)."""
    import warnings

    from train import run_from_overrides

    handler = _Lines()
    loggers = [logging.getLogger(name) for name in ("train", "pytorch_lightning", "lightning.pytorch")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = run_from_overrides(list(overrides), str(output_dir))
    finally:
        for logger, level in zip(loggers, levels):
            logger.removeHandler(handler)
            logger.setLevel(level)
    return value, "\n".join(handler.lines + [str(w.message) for w in caught])


@pytest.fixture(scope="session")
def cifar_copy(tmp_path_factory) -> Path:
    """A small real CIFAR-10 copy (20 images per class per split) in the standard batches layout."""
    if not CIFAR_TOOL.exists() or not (SHARED_DATA / "cifar10-jpeg.npz").exists():
        pytest.skip("the offline CIFAR-10 copy (../shared/data) is absent")
    pytest.importorskip("PIL")
    root = tmp_path_factory.mktemp("cifar")
    subprocess.run([sys.executable, str(CIFAR_TOOL), "batches", str(root), "--per-class", "20"], check=True,
                   capture_output=True)
    return root


#: the files whose tests take longest (pytest --durations=0 summed per file: 95, 80, 64, 45, 45, 28, 21, 21, 19, 17
#: and 15 s on 2026-12-03), longest first. `make test` hands whole files to its two workers in collection order: in
#: alphabetical order the longest (test_train*, test_sweeps) came last, where one worker could sit idle while the
#: other finished them. What the order alone saves was not measured apart from the machine's own drift: the same
#: commit's suite took 5 min 29 s and 6 min 04 s an hour apart that day
LONGEST_FILES = ("test_train.py", "test_sweeps.py", "test_train_auto_lr.py", "test_train_processes.py",
                 "test_benchmarks_speed.py", "test_run_options.py", "test_range_test_finder.py",
                 "test_benchmarks_auto_lr.py", "test_benchmarks_evidence.py", "test_task_eval.py", "test_ddp_resume.py",
                 "test_benchmarks_superconvergence.py")


def pytest_collection_modifyitems(items):
    """The longest files first (LONGEST_FILES), the rest after them in their usual order."""
    rank = {name: i for i, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))

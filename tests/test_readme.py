"""The README's commands work as written. Every command in a ```bash block, and every `train.py ...` example in
the text, is checked without training: train.py overrides compose with Hydra (each job of a multirun), make targets
exist, module commands import, benchmark options parse with the script's own parser, shell scripts parse, and
`.venv/bin/...` tools exist beside this Python. The ```python example runs as written."""
from __future__ import annotations

import argparse
import functools
import importlib
import os
import re
import runpy
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from conftest import CONF, ROOT

README = (ROOT / "README.md").read_text()


def bash_commands() -> list[list[str]]:
    """Each command of the README's bash blocks as argv (continuation lines joined, comments dropped)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            argv = shlex.split(line, comments=True)
            if argv:
                commands.append(argv)
    return commands


def inline_train_commands() -> list[list[str]]:
    """`train.py ...` examples written inline (the launcher table, the text)."""
    spans = re.findall(r"`((?:\.venv/bin/python )?train\.py [^`]+)`", README)
    return [shlex.split(span) for span in spans]


def train_jobs(args: list[str]) -> list[list[str]]:
    """The override lists of the jobs a train.py command runs (one, or each job of a -m sweep)."""
    multirun = "-m" in args or "--multirun" in args
    overrides = [a for a in args if a not in ("-m", "--multirun")]
    assert all("=" in o or o.startswith("~") for o in overrides), f"not a Hydra override in {args}"
    if not multirun:
        return [overrides]
    parsed = OverridesParser.create().parse_overrides(overrides)
    batches = BasicSweeper.split_arguments(parsed, max_batch_size=None)
    return [list(job) for batch in batches for job in batch]


def compose_job(overrides: list[str]):
    """The job's config, and the start-up check of its schedule that needs no data (a recipe's piecewise keys
    under the command's scheduler=one_cycle failed there, after composing)."""
    from callbacks.run.config_checks import check_schedule
    from train import AUTO_KEYS, auto_keys

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    if cfg.task.name == "train":
        check_schedule(cfg, stand_ins={key: AUTO_KEYS[key] for key in auto_keys(cfg)})
    return cfg


def check_benchmark_options(script: Path, args: list[str], monkeypatch) -> argparse.Namespace:
    """Parse ``args`` with the script's own argparse parser, stopping before it runs anything."""

    class Parsed(Exception):
        pass

    parse_args = argparse.ArgumentParser.parse_args
    seen = {}

    def parse_and_stop(self, argv=None, namespace=None):
        seen["ns"] = parse_args(self, argv, namespace)  # exits with 2 and a message on a bad option
        raise Parsed

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    monkeypatch.setattr(sys, "argv", [str(script), *args])
    monkeypatch.syspath_prepend(str(script.parent))
    with pytest.raises(Parsed):
        runpy.run_path(str(script), run_name="__main__")
    return seen["ns"]


def make_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))


def check_command(argv: list[str], monkeypatch) -> None:
    venv_bin = Path(sys.executable).parent
    head, rest = argv[0], argv[1:]
    if head == "make":
        target = rest[0]
        assert target in make_targets(), f"make {target}: no such target in the Makefile"
        extra = [a.split("=", 1)[1] for a in rest[1:] if a.startswith("ARGS=")]
        extra = shlex.split(extra[0]) if extra else []
        if target in ("train", "smoke"):
            for job in train_jobs((["experiment=smoke"] if target == "smoke" else []) + extra):
                compose_job(job)
        elif target == "bench-fast":
            check_benchmark_options(ROOT / "benchmarks" / "cifar10_fast.py", extra, monkeypatch)
        return
    if head in ("train.py",) or (head.endswith("/python") and rest and rest[0] == "train.py"):
        args = rest if head == "train.py" else rest[1:]
        for job in train_jobs(args):
            compose_job(job)
        return
    if head.endswith("/python") and rest[:1] == ["-m"]:
        module = importlib.import_module(rest[1])
        assert callable(getattr(module, "main", None)), f"python -m {rest[1]}: the module has no main()"
        return
    if head.endswith("/python") and rest and rest[0].startswith("benchmarks/"):
        check_benchmark_options(ROOT / rest[0], rest[1:], monkeypatch)
        return
    if head.startswith(".venv/bin/"):
        tool = venv_bin / Path(head).name
        assert tool.exists(), f"{head}: not installed beside {sys.executable}"
        return
    if head == "bash":
        subprocess.run(["bash", "-n", str(ROOT / rest[0])], check=True)
        return
    pytest.fail(f"the README runs a command this test does not know how to check: {shlex.join(argv)}")


COMMANDS = bash_commands() + inline_train_commands()


def test_the_readme_has_the_commands_a_user_needs():
    heads = {" ".join(c[:2]) for c in COMMANDS}
    assert {"make install", "make test"} <= heads
    assert any(c[:2] == [".venv/bin/python", "train.py"] and "-m" in c for c in COMMANDS)
    assert any(c[0] == ".venv/bin/tensorboard" for c in COMMANDS)


def test_the_test_command_is_what_ci_runs():
    """CI runs .ci/run, which must run exactly the README's test command."""
    assert ["make", "test"] in COMMANDS
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M), ci


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c)[:70] for c in COMMANDS])
def test_readme_command_works_as_written(argv, monkeypatch):
    check_command(argv, monkeypatch)


def test_a_command_with_a_wrong_key_would_be_caught(monkeypatch):
    """The check is not vacuous: a misspelt override or benchmark option fails it."""
    with pytest.raises(Exception):
        check_command([".venv/bin/python", "train.py", "experiment=smoke", "scheduler.max_lrr=0.1"], monkeypatch)
    with pytest.raises(SystemExit):
        check_command([".venv/bin/python", "benchmarks/overhead.py", "--no-such-option"], monkeypatch)
    with pytest.raises(AssertionError):
        check_command(["make", "no-such-target"], monkeypatch)


def test_the_python_example_runs_as_written(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks, "the README lost its Python example"
    monkeypatch.chdir(tmp_path)
    # The block runs unchanged; only find_lr's default LRRangeTest() is made a short one (20 sweep steps, trials of
    # 4-6 steps instead of 200 + 4 x 50-200): the same code path and checks, minutes less of training on a CPU.
    # The default's own values are checked in test_range_test_finder (num_steps 200, the four trial factors).
    import callbacks.range_test.finder as finder
    from callbacks.range_test.loss import LRRangeTest

    monkeypatch.setattr(finder, "LRRangeTest", functools.partial(LRRangeTest, num_steps=20, trial_min_steps=4,
                                                                 trial_max_steps=6))
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    result = namespace["result"]
    assert result.lr > 0 and result.lr in result.suggestions.values()
    assert (tmp_path / "range_test.png").stat().st_size > 0
    assert not os.environ.get("HYDRA_FULL_ERROR")  # the example sets nothing global

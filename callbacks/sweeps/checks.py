"""Checks a sweep's arguments before its first job starts, and records a job that raised as "failed".

Called by the ``SweepSummary`` Hydra callback (callbacks/sweeps/hydra_callback.py). Each error names the key or path and
what is allowed, and stops the sweep before anything runs, so no half-run sweep is left behind.
"""
from __future__ import annotations

import difflib
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from callbacks.run.command_line import leaf_keys
from callbacks.run.result_file import FINAL, read_result, worst_value, write_result
from callbacks.sweeps.resume import asks_resume, without_resume
from callbacks.sweeps.summary import MULTIRUN_FILE, planned_jobs, sweep_arguments

_ABSENT = object()


class SweepError(ValueError):
    """A sweep that cannot run as asked."""


def check_writable(sweep_dir: Path) -> None:
    try:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=sweep_dir, prefix=".write_test"):
            pass
    except OSError as e:
        raise SweepError(f"hydra.sweep.dir={sweep_dir} is not a writable directory ({e.strerror or e}); "
                         f"pass one you can write to, e.g. hydra.sweep.dir=multirun/my_sweep") from None


def _check_key(config: DictConfig, key: str, values: list | None, example: str, words: Mapping) -> None:
    current = OmegaConf.select(config, key, default=_ABSENT, throw_on_missing=False)
    if current is _ABSENT:
        plain = OmegaConf.to_container(config, resolve=False)
        plain.pop("hydra", None)
        close = difflib.get_close_matches(key, leaf_keys(plain), n=3, cutoff=0.75)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise SweepError(f"Could not override '{key}': the config has no such key (Hydra: Key "
                         f"'{key.rsplit('.', 1)[-1]}' is not in struct).{hint} To add a new key, use +{example}")
    if values is None or not isinstance(current, (int, float)) or isinstance(current, bool):
        return
    allowed = {word: spec["means"] for word, spec in words.items() if key in spec["keys"]}
    bad = [v for v in values if isinstance(v, str) and v.strip().lower() not in allowed]  # train.py reads Auto too
    if bad:
        extra = "".join(f" or {word!r} ({means})" for word, means in allowed.items())
        raise SweepError(f"{key} is a number (now {current}), but the sweep gives it {', '.join(map(repr, bad))}; "
                         f"sweep numbers{extra}, e.g. {key}=0.1,0.2")


def check_sweep(config: DictConfig, words: Mapping | None = None) -> None:
    """A writable sweep directory; swept keys that exist, with numbers where the config holds a number; at least
    one job; an Optuna direction that agrees with ``monitor_mode``. ``words``: what a numeric key may take besides
    numbers, ``{word: {"keys": [dotted keys], "means": "what the word does"}}`` (the SweepSummary callback's
    ``words``, from conf/train.yaml)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    sweeper = config.hydra.sweeper
    overrides = OverridesParser.create().parse_overrides(sweep_arguments(config))
    groups = set(config.hydra.runtime.get("choices") or {})
    group_swept = any(o.key_or_group in groups and o.is_sweep_override() for o in overrides)
    for override in overrides:
        key = override.key_or_group
        if (not override.is_sweep_override() or key in groups or key.startswith("hydra.") or override.is_add()
                or override.is_force_add() or override.is_delete()):
            continue
        values = list(override.sweep_iterator()) if override.is_discrete_sweep() else None
        if values == []:
            raise SweepError(f"the sweep over {key} is empty ('{override.input_line}' gives no values): give at "
                             f"least one value, e.g. {key}=0.1,0.2")
        if not group_swept:  # a swept group may bring the key with it
            _check_key(config, key, values, override.input_line, words or {})
    planned = planned_jobs(config)
    if planned is not None and (len(planned) if isinstance(planned, list) else planned) < 1:
        raise SweepError("the sweep has no jobs to run: give every swept key at least one value"
                         + ("" if isinstance(planned, list) else " and hydra.sweeper.n_trials >= 1"))
    if isinstance(planned, list):
        check_subdir_names(config, planned)
    check_sweep_dir(config)
    check_writable(Path(config.hydra.sweep.dir))  # last: a sweep refused above leaves no folder behind
    direction = sweeper.get("direction")
    if direction is not None and isinstance(direction, str) and "monitor_mode" in config:
        wanted = {"max": "maximize", "min": "minimize"}.get(config.monitor_mode)
        if wanted and direction != wanted:
            raise SweepError(f"hydra.sweeper.direction={direction} but monitor_mode={config.monitor_mode} "
                             f"({config.monitor}): set hydra.sweeper.direction={wanted}")


def check_sweep_dir(config: DictConfig) -> None:
    """``+resume=true`` needs the folder of a sweep run with the same arguments; without it, a folder that already
    holds a sweep is refused: a second sweep there would retrain into the first one's job folders or mix its jobs
    into the first one's summary. Checked before Hydra writes anything into the folder (``multirun.yaml``, each
    job's ``.hydra/``), so a refused command changes nothing."""
    sweep_dir = Path(config.hydra.sweep.dir)
    asked = sweep_arguments(config, with_params=False)
    resume = asks_resume(asked)
    old = sweep_dir / MULTIRUN_FILE
    if resume and not old.is_file():
        raise SweepError(f"+resume=true resumes the sweep in hydra.sweep.dir, but {sweep_dir} holds none (no "
                         f"{MULTIRUN_FILE}): pass the folder of the sweep to resume, e.g. "
                         "hydra.sweep.dir=multirun/2026-11-28/04-30-00")
    if not old.is_file():
        return
    ran = [str(o) for o in OmegaConf.load(old).hydra.overrides.get("task") or []]
    if not resume and not any(sweep_dir.glob("**/.hydra/overrides.yaml")):
        return  # a sweep that stopped before its first job (a typo in a swept value): nothing to keep
    if not resume:
        raise SweepError(f"hydra.sweep.dir={sweep_dir} already holds a sweep (run with "
                         f"{' '.join(ran) or 'no arguments'}); resume it with the same arguments plus +resume=true, "
                         "or pass another hydra.sweep.dir (nothing in it was changed)")
    if without_resume(ran) != without_resume(asked):
        gone = [o for o in without_resume(ran) if o not in without_resume(asked)]
        new = [o for o in without_resume(asked) if o not in without_resume(ran)]
        raise SweepError(f"cannot resume the sweep in {sweep_dir}: it ran with {' '.join(without_resume(ran))}; "
                         f"this command differs ({', '.join([*(f'-{o}' for o in gone), *(f'+{o}' for o in new)])}"
                         "); resume with the same arguments, or pass a new hydra.sweep.dir for a different sweep "
                         "(nothing in it was changed)")


def check_subdir_names(config: DictConfig, planned: list[list[str]]) -> None:
    """Job folders are named after their overrides (hydra.sweep.subdir); a name over the file system's 255-byte
    limit would fail at the first job with "File name too long", so say which setting to change instead."""
    from hydra._internal.config_loader_impl import get_overrides_dirname
    from hydra.core.override_parser.overrides_parser import OverridesParser

    subdir = str(OmegaConf.to_container(config.hydra.sweep, resolve=False).get("subdir", ""))
    if "${hydra.job.override_dirname}" not in subdir:
        return
    job = config.hydra.job.config.override_dirname
    parser = OverridesParser.create()
    for num, overrides in enumerate(planned):
        dirname = get_overrides_dirname(parser.parse_overrides(overrides), list(job.exclude_keys), job.item_sep,
                                        job.kv_sep)
        name = subdir.replace("${hydra.job.num}", str(num)).replace("${hydra.job.override_dirname}", dirname)
        longest = max(name.split("/"), key=lambda part: len(part.encode()))
        if len(longest.encode()) > 255:
            raise SweepError(f"job {num}'s folder name would be {len(longest.encode())} bytes (the limit is 255): "
                             f"{longest[:80]}...; move fixed overrides into an experiment config, leave them out of "
                             f"the name with hydra.job.config.override_dirname.exclude_keys=[...], or set "
                             "hydra.sweep.subdir='${hydra.job.num}'")


def record_failure(config: DictConfig, job_return: Any) -> None:
    """A job that raised out of train.py is a "failed" row of the summary, not a job stuck at "running"."""
    from hydra.core.utils import JobStatus

    if getattr(job_return, "status", None) != JobStatus.FAILED:
        return
    run_dir = Path(config.hydra.runtime.output_dir)
    result = read_result(run_dir, strict=False) or {}
    if result.get("status") in FINAL:
        return
    error = job_return._return_value  # the exception; JobReturn.return_value would re-raise it
    write_result(run_dir, status="failed", reason=f"{type(error).__name__}: {error}",
                 overrides=list(job_return.overrides or []), monitor=config.get("monitor"),
                 monitor_mode=config.get("monitor_mode"), objective=worst_value(config.get("monitor_mode", "max")),
                 run_dir=str(run_dir), metrics=result.get("metrics", {}))

"""One table for a whole sweep: ``summary.csv``, ``summary.md`` and a plot in the sweep directory.

Written by the Hydra callback ``SweepSummary`` when a multirun ends (registered in conf/train.yaml), and by hand on a
finished or interrupted sweep:

    python -m callbacks.sweeps.summary multirun/2026-11-28/04-30-00

One row per job, read from the job's own ``result.json`` (callbacks/run/result_file.py) and
``.hydra/overrides.yaml``: the swept values, the final and best metrics, the LR actually used (the range test's when
``scheduler.max_lr=auto``), epochs and steps run, wall time, status and reason. Completed jobs come first, best
first by the monitored metric; then diverged, failed, unfinished and never-started jobs, by job number. A sweep
whose jobs did not all finish gets a summary that says INCOMPLETE and lists the missing jobs.
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from callbacks.run.result_file import FINAL, RESULT_FILE, read_result, write_atomic
from callbacks.sweeps.plot import HEATMAP_FILE, LINEPLOT_FILE, Point, heatmap, lineplot
from callbacks.sweeps.seeds import REPEAT_KEY, SETTINGS_FILE, Setting, csv_text, number, repeated, settings_of
from callbacks.sweeps.seeds import markdown as settings_markdown

CSV_FILE, MD_FILE = "summary.csv", "summary.md"
MULTIRUN_FILE = "multirun.yaml"  # Hydra's copy of the sweep's config, in the sweep directory
TAIL_COLUMNS = ["lr", "lr_source", "epochs", "steps", "wall_s", "status", "reason", "run_dir"]


@dataclass
class Job:
    num: int | None
    overrides: list[str]
    result: dict[str, Any] | None = None
    run_dir: Path | None = None  # None: the sweep planned this job but it never started
    problem: str = ""            # why there is no usable result


@dataclass
class Summary:
    sweep_dir: Path
    monitor: str
    mode: str
    swept: list[str]
    columns: list[str]
    rows: list[dict[str, Any]]
    expected: int | None                          # jobs the sweep planned (None: unknown)
    missing: list[str] = field(default_factory=list)  # "job N (...): why", for jobs without a final result
    optuna_best: dict[str, Any] | None = None
    settings: list[Setting] = field(default_factory=list)  # per setting over seeds, when the seed is swept

    @property
    def complete(self) -> bool:
        return not self.missing and bool(self.rows)


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _values(overrides: list[str]) -> dict[str, str]:
    return {_key(o): o.split("=", 1)[1] for o in overrides if "=" in o}


def sweep_arguments(config: DictConfig, with_params: bool = True) -> list[str]:
    """``hydra.sweeper.params`` as overrides, then the command line's, as written (``${...}`` left unresolved)."""
    params = OmegaConf.to_container(config.hydra.sweeper, resolve=False).get("params") or {}
    task = OmegaConf.to_container(config.hydra.overrides, resolve=False).get("task") or []
    return ([f"{k}={v}" for k, v in params.items()] if with_params else []) + [str(o) for o in task]


def _sweep_config(sweep_dir: Path) -> DictConfig | None:
    path = sweep_dir / MULTIRUN_FILE
    return OmegaConf.load(path) if path.is_file() else None


def planned_jobs(sweep_cfg: DictConfig | None) -> list[list[str]] | int | None:
    """The overrides of every job the basic sweeper launches (in job order), the trial budget of an Optuna
    sweep, or None when the sweeper is another one."""
    if sweep_cfg is None:
        return None
    sweeper = sweep_cfg.hydra.sweeper
    target = str(sweeper.get("_target_", ""))
    if target.endswith("BasicSweeper"):
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parsed = OverridesParser.create().parse_overrides(sweep_arguments(sweep_cfg))
        return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    if "n_trials" in sweeper:
        return int(sweeper.n_trials)
    return None


def swept_keys(sweep_cfg: DictConfig | None, jobs: list[Job]) -> list[str]:
    """Keys given several values on the command line or in ``hydra.sweeper.params``, plus any key whose value
    differs between jobs; in command-line order."""
    keys: list[str] = []
    if sweep_cfg is not None:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        keys += [str(k) for k in OmegaConf.to_container(sweep_cfg.hydra.sweeper, resolve=False).get("params") or {}]
        for override in OverridesParser.create().parse_overrides(sweep_arguments(sweep_cfg, with_params=False)):
            if override.is_sweep_override():
                keys.append(_key(override.input_line))
    given = [_values(j.overrides) for j in jobs if j.overrides]
    every_key = dict.fromkeys(k for values in given for k in values)
    keys += [k for k in every_key if len({values.get(k) for values in given}) > 1]
    return list(dict.fromkeys(k for k in keys if k != "resume"))


def find_jobs(sweep_dir: Path) -> list[Job]:
    """Every job directory below ``sweep_dir`` (one with Hydra's ``.hydra/overrides.yaml``)."""
    jobs = []
    for overrides_file in sorted(sweep_dir.glob("**/.hydra/overrides.yaml")):
        run_dir = overrides_file.parent.parent
        hydra_file = overrides_file.parent / "hydra.yaml"
        hydra = OmegaConf.load(hydra_file).hydra if hydra_file.is_file() else None
        if hydra is not None and hydra.get("mode") == "RUN":  # a single run (python train.py ...), not a sweep's job
            continue
        num = hydra.job.get("num") if hydra is not None else None
        overrides = [str(o) for o in OmegaConf.to_container(OmegaConf.load(overrides_file))]  # as written
        job = Job(num=None if num is None else int(num), overrides=overrides, run_dir=run_dir)
        try:
            job.result = read_result(run_dir)
            if job.result is None:
                job.problem = (f"no {RESULT_FILE}: the job ended before training started (or its task, e.g. "
                               "lr_range_test, writes none)")
            elif job.result.get("status") not in FINAL:
                job.problem = f"status {job.result.get('status')!r}: interrupted, killed, or still running"
        except ValueError as e:
            job.problem = str(e)
        jobs.append(job)
    return jobs


def _status(job: Job) -> str:
    if job.run_dir is None:
        return "missing"
    return str(job.result.get("status", "unknown")) if job.result else "unknown"


def _row(job: Job, swept: list[str], sweep_dir: Path) -> dict[str, Any]:
    result = job.result or {}
    values = _values(job.overrides)
    lr = result.get("lr") or {}
    return {"job": job.num, **{k: values.get(k, "") for k in swept}, **(result.get("metrics") or {}),
            "lr": lr.get("max_lr"), "lr_source": lr.get("source"), "epochs": result.get("epochs"),
            "steps": result.get("steps"), "wall_s": result.get("wall_s"), "status": _status(job),
            "reason": result.get("reason") or job.problem,
            "run_dir": str(job.run_dir.relative_to(sweep_dir)) if job.run_dir else ""}


def _describe(job: Job, swept: list[str]) -> str:
    values = _values(job.overrides)
    given = " ".join(f"{k}={values[k]}" for k in swept if k in values)
    return f"job {job.num} ({given or 'overrides unknown'}): {job.problem}"


def summarize(sweep_dir: str | Path) -> Summary:
    """Read a sweep directory (finished or not) into a Summary; ValueError when it is not a sweep directory."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise ValueError(f"sweep directory {sweep_dir} does not exist")
    sweep_cfg = _sweep_config(sweep_dir)
    jobs = find_jobs(sweep_dir)
    if sweep_cfg is None and not jobs:
        raise ValueError(f"{sweep_dir} is not a Hydra sweep directory: no {MULTIRUN_FILE} and no sweep's job "
                         f"directories (<job>/.hydra/overrides.yaml) below it"
                         + (" (single runs' directories are not a sweep's)" if any(sweep_dir.glob("**/.hydra")) else ""))
    planned = planned_jobs(sweep_cfg)
    found = {job.num for job in jobs}
    if isinstance(planned, list):
        jobs += [Job(num=i, overrides=o, problem="not started") for i, o in enumerate(planned) if i not in found]
    elif isinstance(planned, int):
        jobs += [Job(num=i, overrides=[], problem="not started") for i in range(planned) if i not in found]
    jobs.sort(key=lambda j: (j.num is None, j.num or 0, str(j.run_dir)))

    results = [j.result for j in jobs if j.result]
    default_monitor = sweep_cfg.get("monitor", "val/acc") if sweep_cfg is not None else "val/acc"
    monitor = str(results[0].get("monitor", default_monitor)) if results else str(default_monitor)
    mode = str(results[0].get("monitor_mode", "max")) if results else "max"
    swept = swept_keys(sweep_cfg, jobs)
    rows = [_row(job, swept, sweep_dir) for job in jobs]

    def rank_key(row):
        value = number(row.get(monitor))
        if row["status"] != "completed" or not math.isfinite(value):
            return (1, 0.0, row["job"] if row["job"] is not None else math.inf)
        return (0, -value if mode == "max" else value, row["job"] if row["job"] is not None else math.inf)

    rows.sort(key=rank_key)
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank if rank_key(row)[0] == 0 else ""
    metric_names = sorted({name for r in results for name in (r.get("metrics") or {})})
    metrics = [m for m in (monitor, f"{monitor}_best") if m in metric_names]
    metrics += [m for m in metric_names if m not in metrics]
    columns = ["rank", "job", *swept, *metrics, *TAIL_COLUMNS]
    missing = [_describe(j, swept) for j in jobs if _status(j) not in FINAL]
    optuna_file = sweep_dir / "optimization_results.yaml"
    optuna_best = OmegaConf.to_container(OmegaConf.load(optuna_file)) if optuna_file.is_file() else None
    return Summary(sweep_dir, monitor, mode, swept, columns, rows,
                   expected=len(planned) if isinstance(planned, list) else planned, missing=missing,
                   optuna_best=optuna_best,
                   settings=settings_of(rows, swept, monitor, mode) if repeated(swept, rows) else [])


def _fmt(value: Any) -> str:
    """Four significant digits for numbers (also swept values written out in full, e.g. Optuna's)."""
    if value is None:
        return ""
    if isinstance(value, str) and "." in value:
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table_columns(summary: Summary) -> list[str]:
    """The Markdown table leaves out the per-step training logs (learning rates, momenta, train/ values) that the
    CSV keeps."""
    return [c for c in summary.columns if not (c.startswith("lr-") or c.startswith("train/"))]


def markdown(summary: Summary, plot_file: str | None = None) -> str:
    counts = {}
    for row in summary.rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    out = io.StringIO()
    out.write(f"# Sweep summary: {summary.sweep_dir}\n\n")
    if summary.complete:
        out.write(f"**Complete**: all {len(summary.rows)} jobs finished ({tally}).\n\n")
    elif not summary.rows:
        out.write("**INCOMPLETE**: no jobs ran.\n\n")
    else:
        out.write(f"**INCOMPLETE**: {len(summary.missing)} of {len(summary.rows)} jobs have no final result "
                  f"({tally}). Missing:\n\n" + "".join(f"- {m}\n" for m in summary.missing) + "\n")
    if summary.settings:
        out.write(settings_markdown(summary.settings, summary.monitor))
        out.write(f"![{summary.monitor}, mean ± se per setting]({plot_file})\n\n" if plot_file else "")
        out.write("## Per job\n\n")
    out.write(f"Sorted by `{summary.monitor}` ({summary.mode}, final value), best first; then jobs without one.\n\n")
    best = next((r for r in summary.rows if r["rank"] == 1), None)
    if best is not None:
        swept = " ".join(f"{k}={_fmt(best[k])}" for k in summary.swept)
        out.write(f"Best: job {best['job']} ({swept}): {summary.monitor} = {_fmt(best.get(summary.monitor))}\n\n")
    if summary.optuna_best:
        out.write(f"Optuna's best trial: {summary.optuna_best.get('best_params')} -> "
                  f"{summary.optuna_best.get('best_value')}\n\n")
    columns = _table_columns(summary)
    out.write("| " + " | ".join(columns) + " |\n")
    out.write("|" + "---|" * len(columns) + "\n")
    for row in summary.rows:
        out.write("| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |\n")
    if columns != summary.columns:
        rest = ", ".join(c for c in summary.columns if c not in columns)
        out.write(f"\nAll {len(summary.columns)} columns (also {rest}) are in {CSV_FILE}.\n")
    if plot_file and not summary.settings:
        out.write(f"\n![{summary.monitor}]({plot_file})\n")
    return out.getvalue()


def _asnumber(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _entries(summary: Summary) -> tuple[list[str], list[tuple[dict[str, Any], float, float, str, str]]]:
    """What to plot: (swept values, metric, its standard error, status, LR text) per job, or per setting (the mean over
    seeds) when the sweep repeats seeds."""
    if summary.settings:
        keys = [k for k in summary.swept if k != REPEAT_KEY]
        return keys, [(s.values, s.score.mean if s.complete else math.nan, s.score.se,
                       "completed" if s.complete else s.verdict.split(";")[0], s.lr_text()) for s in summary.settings]
    return summary.swept, [(r, number(r.get(summary.monitor)) if r["status"] == "completed" else math.nan,
                            math.nan, r["status"], "") for r in summary.rows]


def _points(summary: Summary) -> tuple[list[str], list[Point], list[Point]]:
    """The numeric swept keys, one plot point per job (or setting), and the reference points: those whose value of
    a numeric key is a word (``scheduler.max_lr=auto``), drawn as a level line in a line plot."""
    keys, entries = _entries(summary)
    numeric = [k for k in keys if len({_asnumber(e[0][k]) for e in entries} - {None}) > 1
               or all(_asnumber(e[0][k]) is not None for e in entries if e[0][k] != "")
               and any(e[0][k] != "" for e in entries)]
    others = [k for k in keys if k not in numeric]
    points, references = [], []
    for values, value, error, status, lr in entries:
        group = " ".join(f"{k}={values[k]}" for k in others)
        coords = tuple(_asnumber(values[k]) for k in numeric)
        if None not in coords:
            points.append(Point(coords, value, status, group, error))
        else:
            words = " ".join(f"{k}={values[k]}" for k, c in zip(numeric, coords) if c is None)
            lr = f" (lr {lr})" if lr and any(k.endswith("lr") for k, c in zip(numeric, coords) if c is None) else ""
            references.append(Point((), value, status, f"{words} {group}".strip() + lr, error))
    return numeric, points, references


def plot(summary: Summary):
    """The heatmap (two numeric swept keys and nothing else swept) or line plot (one), or None; over seeds, the
    settings' means with their standard errors."""
    numeric, points, references = _points(summary)
    if not points:
        return None
    if len(numeric) == 2 and not any(p.group for p in points):
        return heatmap(points, (numeric[0], numeric[1]), summary.monitor, summary.sweep_dir / HEATMAP_FILE)
    if len(numeric) == 1:
        return lineplot(points, numeric[0], summary.monitor, summary.sweep_dir / LINEPLOT_FILE, references)
    return None


def write(summary: Summary) -> dict[str, Path]:
    """summary.csv, the plot and summary.md in the sweep directory (each file appears whole or not at all)."""
    written = {}
    try:
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=summary.columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows({c: "" if row.get(c) is None else row.get(c) for c in summary.columns}
                         for row in summary.rows)
        write_atomic(summary.sweep_dir / CSV_FILE, text.getvalue())
        written["csv"] = summary.sweep_dir / CSV_FILE
        if summary.settings:
            write_atomic(summary.sweep_dir / SETTINGS_FILE, csv_text(summary.settings, summary.monitor))
            written["settings"] = summary.sweep_dir / SETTINGS_FILE
        info = plot(summary)
        if info is not None:
            written["plot"] = info.path
        write_atomic(summary.sweep_dir / MD_FILE, markdown(summary, info.path.name if info else None))
        written["md"] = summary.sweep_dir / MD_FILE
    except OSError as e:
        raise OSError(f"cannot write the sweep summary in {summary.sweep_dir}: {e.strerror or e}") from None
    return written


def report(sweep_dir: str | Path) -> Summary:
    """Summarize, write the files and print the table."""
    summary = summarize(sweep_dir)
    try:
        written = write(summary)
    finally:
        print(markdown(summary))
    print("Written: " + ", ".join(str(p) for p in written.values()))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m callbacks.sweeps.summary", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", help="a Hydra sweep directory (hydra.sweep.dir), finished or interrupted")
    args = parser.parse_args(argv)
    try:
        summary = report(args.sweep_dir)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0 if summary.complete else 1


if __name__ == "__main__":
    sys.exit(main())

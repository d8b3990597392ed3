"""What every speed benchmark shares: the common options (--quick, --record, --results), statistics of repeated
timings, a Markdown table on stdout, and the dated RESULTS.md entry (machine, versions, command, table).

Not a benchmark itself; ``benchmarks/*.py`` import it (they put the repository root on ``sys.path`` first).
"""
from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import shlex
import statistics
import sys
from pathlib import Path
from typing import Sequence

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SHARED_DATA = ROOT.parent / "shared" / "data"


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true",
                        help="a few seconds on synthetic data: checks the script works (what the tests run)")
    parser.add_argument("--record", action="store_true", help="append a dated entry with the table to --results")
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"the results file (default: {RESULTS})")


def median_spread(values: Sequence[float]) -> tuple[float, float]:
    """Median and spread (max - min) of repeated measurements."""
    return statistics.median(values), max(values) - min(values)


def steady_median(intervals: Sequence[float], warmup: int) -> float:
    """Median of per-step times after dropping the first ``warmup`` steps (allocator, oneDNN/cudnn autotuning)."""
    kept = list(intervals)[warmup:] or list(intervals)
    return statistics.median(kept)


def fmt(value: float, digits: int = 4) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "nan"
    return f"{value:.{digits}g}"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (what stdout shows and RESULTS.md keeps)."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(fmt(c) if isinstance(c, float) else str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    import pytorch_lightning as pl
    import torch

    info = {"cpu": cpu_model(), "cores": str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                                else os.cpu_count()),
            "torch threads": str(torch.get_num_threads()), "python": platform.python_version(),
            "torch": torch.__version__, "lightning": pl.__version__}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def record(path: Path, title: str, text: str, argv: Sequence[str] | None = None) -> None:
    """Append a dated entry: title, date (UTC), machine and versions, the command, and ``text`` (the table)."""
    argv = sys.argv if argv is None else argv
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    command = "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(argv[0], ROOT), *argv[1:]])
    info = ", ".join(f"{k} {v}" for k, v in machine().items())
    entry = f"\n## {title} ({stamp})\n\n{info}\n\n`{command}`\n\n{text}\n"
    with open(path, "a") as f:
        f.write(entry)
    print(f"recorded in {path}", file=sys.stderr)


def finish(args: argparse.Namespace, title: str, text: str) -> None:
    """Print the table; with --record also append it to --results."""
    print(text, flush=True)
    if args.record:
        record(args.results, title + (" (--quick: synthetic check, not a measurement)" if args.quick else ""), text)


def subprocess_env(threads: int | None = None) -> dict[str, str]:
    """The environment of a measured subprocess: the repository importable, a fixed thread count if given."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env

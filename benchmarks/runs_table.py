"""Shared by the evidence benchmarks (superconvergence.py, optimizers.py, range_test_validation.py).

A benchmark is a list of train.py jobs. Each job runs in its own subprocess in its own run directory
(``<runs dir>/<job name>``); ``result.json`` there is the record. A job whose result.json says ``completed`` (or
``diverged``: also a result) is not run again, so a benchmark interrupted half-way resumes where it stopped. The
rows each benchmark derives from the runs go to a CSV, and the figures are drawn from that CSV alone (``--plot-only``
redraws them without training).

``--in-process`` (for the --quick checks the test suite runs) runs the same train.py jobs one after another inside
the benchmark's own process instead: same overrides, run directories and result.json, but the ~5 s of imports are
paid once rather than per job (``--parallel`` and ``--timeout`` do not apply). Real measurements use subprocesses.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import math
import os
import platform
import runpy
import shutil
import subprocess
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from callbacks.run.result_file import FINISHED, read_result, result_path, write_atomic

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RUNS = ROOT / "benchmarks" / "runs"          # run directories and the CIFAR-10 layouts (git-ignored)
EVIDENCE = ROOT / "benchmarks" / "evidence"  # the CSVs and figures
RESULTS = ROOT / "benchmarks" / "RESULTS.md"

# Every job: CSV metrics beside TensorBoard (per-epoch val/acc for the curves), no progress bars, no schedule plot.
COMMON = ["logger=tensorboard_csv", "~callbacks.progress_bar", "trainer.enable_progress_bar=false", "plot_schedule=false"]
# --quick: synthetic 16-px images, a few batches, one epoch per budget unit; seconds per job (mostly start-up).
QUICK_DATA = ["data=synthetic", "trainer=cpu", "data.num_train=128", "data.num_val=64", "data.batch_size=32",
              "data.image_size=16",
              "trainer.log_every_n_steps=1"]
QUICK_RANGE_TEST = ["range_test.num_steps=10", "range_test.min_lr=0.001", "range_test.max_lr=3",
                    "range_test.trial_min_steps=4", "range_test.trial_max_steps=4"]
NAN = float("nan")


@dataclass
class Job:
    name: str             # run directory name under the runs dir; equal names are one run
    overrides: list[str]  # Hydra overrides for train.py (COMMON and hydra.run.dir are added)


def skip(message: str) -> None:
    """Stop a benchmark that cannot run here (e.g. no CIFAR-10 copy) without an error."""
    print(f"SKIPPED: {message}")
    sys.exit(0)


def cifar_data(per_class: int | None, runs: Path = RUNS) -> list[str]:
    """Overrides for the offline CIFAR-10 copy (all of it, or the first ``per_class`` images per class and split),
    laid out once under the runs dir. Skips the benchmark when ../shared/data is absent."""
    tool = SHARED / "cifar10_jpeg.py"
    if not tool.exists() or not (SHARED / "cifar10-jpeg.npz").exists():
        skip(f"the offline CIFAR-10 copy is absent ({SHARED}); nothing to benchmark")
    root = runs / (f"cifar10_pc{per_class}" if per_class else "cifar10")
    if not (root / "cifar-10-batches-py" / "test_batch").exists():
        extra = ["--per-class", str(per_class)] if per_class else []
        subprocess.run([sys.executable, str(tool), "batches", str(root), *extra], check=True, capture_output=True)
    return ["data=cifar10", f"data.root={root}", "trainer.log_every_n_steps=10"]


def train_size(per_class: int | None, val_fraction: float = 0.0) -> int:
    """Training images of the CIFAR-10 copy (or its subset) after the held-out validation split."""
    return int((10 * per_class if per_class else 50_000) * (1 - val_fraction))


def run_as_main(script: Path, args: list[str]) -> tuple[int, str, str]:
    """Run a Python script inside this process as ``__main__`` with ``sys.argv = [script, *args]``: (exit status,
    stdout, stderr), both captured. ``SystemExit`` gives the status (a message as exit code: status 1, the message
    on stderr); any other exception is status 1 with its traceback on stderr. ``sys.argv`` is restored."""
    out, err, code = io.StringIO(), io.StringIO(), 0
    saved = sys.argv
    sys.argv = [str(script), *args]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if not isinstance(exit_.code, int) and exit_.code is not None:
            err.write(str(exit_.code))
    except Exception:  # noqa: BLE001 - a crashed script is a failed run with its reason, as in a subprocess
        code = 1
        err.write(traceback.format_exc())
    finally:
        sys.argv = saved
    return code, out.getvalue(), err.getvalue()


def run_python(script: Path, args: list[str], in_process: bool = False, env: dict | None = None,
               timeout: float | None = None) -> tuple[int, str, str]:
    """``python script *args`` from the repository root: (exit status, stdout, stderr). ``env``: the subprocess's
    environment (default: this one with the repository on PYTHONPATH). ``in_process`` (the --quick checks the suite
    runs): ``run_as_main`` inside this process, from the repository root so Hydra finds conf/ beside train.py; no
    interpreter start-up (~5 s of imports), and no timing taken this way means anything."""
    if not in_process:
        proc = subprocess.run([sys.executable, str(script), *args], cwd=ROOT, capture_output=True, text=True,
                              env=env or {**os.environ, "PYTHONPATH": str(ROOT)}, timeout=timeout)
        return proc.returncode, proc.stdout, proc.stderr
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return run_as_main(script, args)
    finally:
        os.chdir(cwd)


def train_command(args: list[str], timeout: float | None = None, in_process: bool = False) -> tuple[int, str]:
    """``python train.py *args`` (:func:`run_python`): (exit status, its stderr, or stdout when stderr is empty)."""
    code, out, err = run_python(ROOT / "train.py", args, in_process, timeout=timeout)
    return code, (err or out)


def run_job(job: Job, runs: Path, timeout: float | None = None, verbose: bool = True, in_process: bool = False) -> dict:
    """Run one train.py job unless its result.json already says it finished; return its result.json (plus
    ``run_dir``). A job that crashed gets ``status: failed`` and its stderr's tail in ``reason``. ``in_process``:
    see ``train_command``."""
    run_dir = runs / job.name
    result = read_result(run_dir, strict=False)
    if result and result.get("status") in FINISHED:
        if verbose:
            print(f"  [done before] {job.name}: {result['status']}", flush=True)
        return {**result, "run_dir": str(run_dir)}
    if run_dir.exists():  # an unfinished attempt: start it again from scratch
        shutil.rmtree(run_dir)
    start = time.perf_counter()
    code, output = train_command([*COMMON, *job.overrides, f"hydra.run.dir={run_dir}"], timeout, in_process)
    wall = time.perf_counter() - start
    result = read_result(run_dir, strict=False) or {}
    if code != 0 and result.get("status") not in FINISHED:
        result = {**result, "status": "failed", "reason": output[-2000:]}
    result = {**result, "run_dir": str(run_dir), "command_wall_s": round(wall, 2)}
    if verbose:
        print(f"  [{wall:6.1f} s] {job.name}: {result.get('status')}"
              + (f" ({result.get('reason', '').strip().splitlines()[-1:]})" if result.get("status") == "failed" else ""),
              flush=True)
    return result


def run_jobs(jobs: list[Job], runs: Path, parallel: int = 1, timeout: float | None = None,
             in_process: bool = False) -> dict[str, dict]:
    """Run jobs (duplicates by name once), ``parallel`` subprocesses at a time (``in_process``: one after another
    in this process); {name: result}."""
    unique = list({job.name: job for job in jobs}.values())
    runs.mkdir(parents=True, exist_ok=True)
    if in_process:
        return {job.name: run_job(job, runs, in_process=True) for job in unique}
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        results = list(pool.map(lambda job: run_job(job, runs, timeout), unique))
    return {job.name: result for job, result in zip(unique, results)}


def range_test(job: Job, runs: Path, timeout: float | None = None, in_process: bool = False):
    """Run ``task=lr_range_test`` (resumable: a finished test is read back) and return its RangeTestResult."""
    from callbacks.range_test.finder import RangeTestResult

    path = runs / job.name / "lr_range_test.json"
    if not path.exists():
        if (runs / job.name).exists():
            shutil.rmtree(runs / job.name)
        _, output = train_command([*COMMON, "task=lr_range_test", *job.overrides, f"hydra.run.dir={runs / job.name}"],
                                  timeout, in_process)
        if not path.exists():
            sys.exit(f"range test {job.name} failed:\n{output[-3000:]}")
    result = RangeTestResult.from_json(str(path))
    print(f"  range test {job.name}: {len(result.lrs)} steps in {result.elapsed_s:.0f} s; "
          + ", ".join(f"{rule} {lr:.4g}" for rule, lr in result.suggestions.items()), flush=True)
    return result


def metric(result: dict, key: str) -> float:
    value = (result.get("metrics") or {}).get(key)
    return float(value) if value is not None else NAN


def metrics_rows(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "csv" / "metrics.csv"
    return list(csv.DictReader(open(path))) if path.exists() else []


def epoch_curve(run_dir: Path, key: str = "val/acc") -> list[tuple[int, float]]:
    """(epoch number from 1, ``key``) at the end of each epoch, from the run's CSV logger."""
    return [(int(r["epoch"]) + 1, float(r[key])) for r in metrics_rows(run_dir) if r.get(key) and r.get("epoch")]


def final_train_loss(run_dir: Path) -> float:
    """Mean logged training loss over the last epoch (per-step values from the CSV logger)."""
    rows = [r for r in metrics_rows(run_dir) if r.get("train/loss") and r.get("epoch")]
    if not rows:  # fewer steps than log_every_n_steps: the last step's loss, as result.json has it
        return metric(read_result(run_dir, strict=False) or {}, "train/loss")
    last = max(int(r["epoch"]) for r in rows)
    values = [float(r["train/loss"]) for r in rows if int(r["epoch"]) == last]
    return sum(values) / len(values)


def machine() -> str:
    """This machine in a few words: host, CPU model, cores (and GPU when one is visible)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()}, {cpu}, {os.cpu_count()} cores"


def today(timestamp: float | None = None) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(timestamp))


def run_date(run_dir) -> str:
    """When a run finished (its result.json's time), so a resumed benchmark keeps each run's own date."""
    path = result_path(run_dir)
    return today(path.stat().st_mtime if path.exists() else None)


def write_csv(path: Path, rows: list[dict], columns: list[str]) -> Path:
    """Write ``rows`` to ``path`` in one step (a reader, e.g. a second benchmark process, never sees half of it)."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return write_atomic(path, text.getvalue())


def standard_error(values) -> float:
    """Standard error of the mean over seeds (sample standard deviation / sqrt(n)); nan below two values."""
    import statistics
    values = list(values)
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else NAN


def read_csv(path: Path) -> list[dict]:
    """Rows of a benchmark CSV, numbers as floats (empty cells: nan), everything else as text."""
    def value(text: str):
        try:
            return float(text)
        except ValueError:
            return NAN if text == "" else text
    return [{k: value(v) for k, v in row.items()} for row in csv.DictReader(open(path))]


def fmt(value, spec: str = ".4g") -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else format(value, spec)
    return str(value)


def setup_text(row: dict) -> str:
    """What a figure's runs held equal, from a CSV row: network, batch, training images."""
    return (f"network {row.get('network')}, batch {fmt(row.get('batch_size'), 'g')}, "
            f"{fmt(row.get('train_images'), 'g')} training images")


def markdown_table(rows: list[dict], columns: list[str], specs: dict[str, str] | None = None) -> str:
    specs = specs or {}
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(fmt(row.get(c, ""), specs.get(c, ".4g")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def caption(fig, rows: list[dict], extra: str = "") -> None:
    """Date and machine of the runs (from the CSV's ``date``/``machine`` columns) under a figure."""
    dates = sorted({str(r.get("date")) for r in rows if r.get("date")})
    machines = sorted({str(r.get("machine")) for r in rows if r.get("machine")})
    when = dates[0] if len(dates) == 1 else f"{dates[0]} to {dates[-1]}" if dates else "date unknown"
    text = f"Runs of {when} on {'; '.join(machines) or 'an unknown machine'}." + (f" {extra}" if extra else "")
    fig.text(0.01, 0.01, text, fontsize=7, ha="left", va="bottom", wrap=True)
    fig.subplots_adjust(bottom=0.2)


def save_figure(fig, rows: list[dict], png: Path) -> Path:
    """Caption (date, machine), write the PNG and free the figure."""
    import matplotlib.pyplot as plt

    caption(fig, rows)
    fig.savefig(png, dpi=120)
    plt.close(fig)
    return png


def pyplot():
    """matplotlib's pyplot without a display."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def run_fields(result: dict) -> dict:
    """The columns every benchmark row takes from a run: status, test accuracy, date, machine, run dir."""
    return {"status": result.get("status"), "test_acc": metric(result, "test/acc"),
            "date": run_date(result["run_dir"]), "machine": machine(), "run_dir": repo_path(result["run_dir"])}


def repo_path(path) -> str:
    """A path as committed files write it: relative to the repository root (absolute paths mean nothing elsewhere)."""
    return os.path.relpath(os.path.abspath(str(path)), ROOT)


def finish(args, csv_path: Path, draw, summary, title: str) -> None:
    """The end of every benchmark: figures from the CSV (``draw(csv_path) -> [png, ...]``), the table on stdout
    and, with --record, a dated entry in RESULTS.md."""
    if not csv_path.exists():
        sys.exit(f"no results yet: {csv_path}")
    figures = draw(csv_path)
    text = summary(csv_path)
    print(text)
    print("figures: " + ", ".join(str(f) for f in figures) + f"\nCSV: {csv_path}")
    if args.record:
        record(args.results, title, command_line(), text + "\n\nFigures: " + ", ".join(repo_path(f) for f in figures))


def record(results: Path, title: str, command: str, body: str) -> None:
    """Append a dated entry to RESULTS.md (or ``results``)."""
    entry = (f"\n## {title} ({today()})\n\n`{command}`\n\nMachine: {machine()}.\n\n{body.strip()}\n")
    with open(results, "a") as f:
        f.write(entry)
    print(f"recorded in {results}")


def common_parser(doc: str, out_name: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="seconds-long check on synthetic data (model=small, one tiny epoch per budget unit)")
    parser.add_argument("--plot-only", action="store_true", help="redraw figures and table from the CSV; no training")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"folder for the CSV and figures (default benchmarks/evidence/{out_name}; --quick: "
                             f"benchmarks/runs/{out_name}_quick)")
    parser.add_argument("--runs", type=Path, default=None,
                        help=f"folder of the run directories (default benchmarks/runs/{out_name}, or <out>/runs)")
    parser.add_argument("--record", action="store_true", help="append a dated entry to benchmarks/RESULTS.md")
    parser.add_argument("--results", type=Path, default=RESULTS, help="the file --record appends to")
    parser.add_argument("--per-class", type=int, default=None, help="first N CIFAR-10 images per class and split (0: all)")
    parser.add_argument("--network", default=None, help="model config, conf/model/: small, airbench, resnet9, resnet18")
    parser.add_argument("--parallel", type=int, default=1,
                        help="train.py subprocesses at a time (1 for honest wall times; 2 only for --quick checks)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per train.py job")
    parser.add_argument("--in-process", action="store_true",
                        help="run the train.py jobs one after another in this process (imports paid once; no "
                             "--parallel, no --timeout): for --quick checks, not for timings")
    parser.add_argument("--extra", nargs="*", default=[], help="more Hydra overrides for every job")
    return parser


def folders(args, out_name: str) -> tuple[Path, Path]:
    """(folder of the CSVs and figures, folder of the run directories). Defaults: benchmarks/evidence/<name> (small
    files to commit) and benchmarks/runs/<name> (git-ignored); --quick keeps both under benchmarks/runs/."""
    if args.out:
        return args.out, args.runs or args.out / "runs"
    if args.quick:
        return RUNS / f"{out_name}_quick", args.runs or RUNS / f"{out_name}_quick" / "runs"
    return EVIDENCE / out_name, args.runs or RUNS / out_name


def command_line() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])


def print_estimate(jobs: int, steps_per_job: float, seconds_per_step: float, startup_s: float = 10.0,
                   what: str = "") -> float:
    total = jobs * (steps_per_job * seconds_per_step + startup_s)
    print(f"estimate{(' for ' + what) if what else ''}: {jobs} jobs x ~{steps_per_job:.0f} optimizer steps x "
          f"{seconds_per_step:.2f} s/step + {startup_s:.0f} s start-up each = ~{total / 60:.0f} min", flush=True)
    return total

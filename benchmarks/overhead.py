"""Lightning's overhead per optimizer step: train.py against the hand-written loop of benchmarks/reference_loop.py.

    python benchmarks/overhead.py                       # small and airbench, 3 rounds, 30 steps each side
    python benchmarks/overhead.py --rounds 5 --steps 40 --models airbench --record
    python benchmarks/overhead.py --quick               # small net, 1 round, 4 steps, batch 32: checks it runs

Both sides run the same recipe (``experiment=cifar10_fast trainer=cpu model=<net>``, synthetic images, enough for
all steps in one epoch) each in its OWN subprocess, interleaved A (reference), B (train.py), A, B, ... so that a
slow phase of the machine hits both. train.py runs as a user runs it: default callbacks (checkpoints, LR monitor,
Rich progress bar, divergence and interrupt checks, Lookahead) and the TensorBoard logger, capped with
``trainer.max_steps``; ``test=false`` only skips the test after training (outside the timed window).

How train.py's steps are timed without its start-up: a timing callback, ``benchmarks/step_timer.StepTimer``, is
added by Hydra override (``+callbacks.step_timer._target_=...``). It stamps ``perf_counter()`` at every
``on_train_batch_end`` into a list (no I/O, no sync in the loop) and writes the list at the end of training, so a
step's time is the time between consecutive step ends: everything the loop does per step, start-up excluded. The
reference loop stamps the same point of its loop. Chosen over "difference of two max_steps runs" because that
needs two full start-ups per point and its error is the difference of two noisy start-up times.

Per side and round: the median step time after ``--warmup`` steps; per round: ratio = train.py / reference; the
summary gives the median ratio over rounds and its spread (max - min). Target: ratio <= 1.03.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.reference_loop import BASE_OVERRIDES, data_overrides  # noqa: E402
from benchmarks.report import add_common_options, finish, median_spread, steady_median, subprocess_env, table  # noqa: E402
from benchmarks.runs_table import run_python  # noqa: E402


def run_reference(model: str, steps: int, batch: int | None, quick: bool, out: Path, threads, extra,
                  in_process: bool = False) -> list[float]:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "reference_loop.py"), "--model", model, "--steps", str(steps),
           "--warmup", "0", "--json", str(out)]
    cmd += (["--batch-size", str(batch)] if batch else []) + (["--quick"] if quick else [])
    cmd += (["--override", *extra] if extra else [])
    _run(cmd, threads, in_process)
    return json.loads(out.read_text())["intervals"]


def run_train(model: str, steps: int, batch: int | None, quick: bool, out: Path, run_dir: Path, threads,
              extra, in_process: bool = False) -> list[float]:
    cmd = [sys.executable, str(ROOT / "train.py"), *BASE_OVERRIDES, f"model={model}",
           *data_overrides(batch, steps, quick), f"trainer.max_steps={steps}", "test=false",
           f"hydra.run.dir={run_dir}", "+callbacks.step_timer._target_=benchmarks.step_timer.StepTimer",
           f"+callbacks.step_timer.path={out}", *extra]
    _run(cmd, threads, in_process)
    return json.loads(out.read_text())["intervals"]


def _run(cmd: list[str], threads, in_process: bool) -> None:
    """Run one side (``cmd``: ``[python, script, *args]``); ``in_process``: inside this process (no timings)."""
    code, out, err = run_python(Path(cmd[1]), cmd[2:], in_process, env=subprocess_env(threads))
    if code != 0:
        sys.stderr.write(out[-3000:] + err[-5000:])
        sys.exit(f"failed: {' '.join(cmd)}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(p)
    p.add_argument("--models", nargs="+", default=None, help="model configs (default: small airbench; --quick: small)")
    p.add_argument("--rounds", type=int, default=None, help="A/B rounds (default 3, at least 3 for a claim)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default 30; 4 with --quick)")
    p.add_argument("--warmup", type=int, default=None, help="first steps left out of each median (default 5; 1 --quick)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the recipe's 1024 (32 with --quick)")
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of both sides (default: inherited)")
    p.add_argument("--override", nargs="*", default=[], help="Hydra overrides for both sides")
    p.add_argument("--in-process", action="store_true",
                   help="run both sides inside this process, not as fresh processes: only to check that it works "
                        "(the suite's --quick run); its timings are not comparable")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    models = args.models or (["small"] if args.quick else ["small", "airbench"])
    rounds = args.rounds or (1 if args.quick else 3)
    steps = args.steps or (4 if args.quick else 30)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 5)
    batch = args.batch_size or (32 if args.quick else None)
    if steps <= warmup:
        sys.exit(f"--steps ({steps}) must exceed --warmup ({warmup})")
    per_round, summary = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ratios: dict[str, list[float]] = {m: [] for m in models}
        for r in range(rounds):
            for model in models:
                # both lists start at the second step (the first has no previous step end): drop warmup - 1 more
                ref = steady_median(run_reference(model, steps, batch, args.quick, tmp / "ref.json", args.threads,
                                                  args.override, args.in_process), max(0, warmup - 1))
                lit = steady_median(run_train(model, steps, batch, args.quick, tmp / "train.json",
                                              tmp / f"run_{model}_{r}", args.threads, args.override,
                                              args.in_process), max(0, warmup - 1))
                ratios[model].append(lit / ref)
                per_round.append([r + 1, model, ref, lit, lit / ref])
                print(f"round {r + 1} {model}: reference {ref:.4g} s/step, train.py {lit:.4g} s/step, "
                      f"ratio {lit / ref:.4f}", file=sys.stderr, flush=True)
        for model in models:
            ratio, spread = median_spread(ratios[model])
            summary.append([model, rounds, ratio, spread, "yes" if ratio <= 1.03 else "no"])
    text = "\n\n".join([
        table(["round", "network", "reference s/step", "train.py s/step", "ratio"], per_round),
        table(["network", "rounds", "ratio train.py/reference (median)", "spread (max-min)", "<= 1.03"], summary),
    ])
    finish(args, f"Lightning overhead per step ({steps} steps, warm-up {warmup}, batch "
                 f"{batch or 1024})", text)
    if not all(math.isfinite(row[2]) and row[2] > 0 for row in summary):
        sys.exit("a ratio is not a positive finite number")


if __name__ == "__main__":
    main()

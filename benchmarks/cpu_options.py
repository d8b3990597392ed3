"""CPU speed options one by one and combined, against the fp32 NCHW baseline, on the cifar10_fast recipe.

    python benchmarks/cpu_options.py                          # all options, airbench, batch 1024, 3 rounds
    python benchmarks/cpu_options.py --options channels_last bf16 --rounds 5 --record
    python benchmarks/cpu_options.py --accuracy --seeds 0     # also train each option to the end (CIFAR-10 copy)
    python benchmarks/cpu_options.py --quick                  # small net, batch 32, 3 steps, in one process

Step time: each option runs ``--steps`` optimizer steps of benchmarks/reference_loop.py (the recipe without
Lightning, each option applied as train.py applies it), each run in its own subprocess, interleaved with the
baseline: base, option 1, base, option 2, ..., repeated ``--rounds`` times. Every option sets its layout
explicitly (``speed.channels_last``, on by default), so the baseline is fp32 NCHW and ``bf16`` is bf16 NCHW. These
are speed-ups of one option over another in the same loop; the project's step against airbench94's own loop is
benchmarks/peer_speed.py.
Speed-up of a round = the baseline's median s/step just before the option / the option's median s/step; the table
gives the median over rounds and its spread. ``--loop train`` times train.py instead (StepTimer callback, as
benchmarks/overhead.py does). ``--quick`` runs in one process (no subprocess start-up), compile left out (its
compilation alone takes minutes on 2 cores) unless named in ``--options``.

Accuracy (``--accuracy``): train.py runs the whole recipe per option and seed on the offline CIFAR-10 copy
(../shared/data; skipped with a message when absent) and the table gives test accuracy (TTA) and the precision the
run actually used (read back from its config.yaml, so a fallback such as train.py's fp16 -> fp32 without CUDA would
show; bf16-mixed runs on the CPU as asked).
"""
from __future__ import annotations

import argparse
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.overhead import run_reference, run_train  # noqa: E402
from benchmarks.reference_loop import BASE_OVERRIDES, compose, data_overrides, train_steps  # noqa: E402
from benchmarks.report import (SHARED_DATA, add_common_options, finish, median_spread, steady_median,  # noqa: E402
                               subprocess_env, table)
from callbacks.run.result_file import read_result  # noqa: E402

# Every option names its layout: trainer=cpu has channels_last ON by default (speed.channels_last, since 6321c06),
# so an option without speed.channels_last=false would run channels_last too (the 2026-11-29 "fp32" baseline in
# RESULTS.md did: fp32 + channels_last, not NCHW).
NCHW = "speed.channels_last=false"
OPTIONS = {
    "fp32": [NCHW],  # the baseline: trainer=cpu (fp32), NCHW, eager
    "channels_last": ["speed.channels_last=true"],
    "bf16": [NCHW, "trainer.precision=bf16-mixed"],
    "compile": [NCHW, "speed.compile=true"],
    "channels_last+bf16": ["speed.channels_last=true", "trainer.precision=bf16-mixed"],
    "channels_last+compile": ["speed.channels_last=true", "speed.compile=true"],
    "channels_last+bf16+compile": ["speed.channels_last=true", "trainer.precision=bf16-mixed", "speed.compile=true"],
    "cpu_fast": ["trainer=cpu_fast"],
}


def measure(args, model: str, overrides: list[str], tmp: Path, tag: str) -> float:
    """Median s/step of one run with ``overrides`` (after the warm-up)."""
    if args.quick:  # in this process: seconds
        cfg = compose([*BASE_OVERRIDES, f"model={model}", *data_overrides(args.batch, args.steps, True), *overrides])
        return steady_median(train_steps(cfg, args.steps), args.warmup)
    if args.loop == "train":
        times = run_train(model, args.steps, args.batch, False, tmp / "t.json", tmp / f"run_{tag}", args.threads,
                          overrides)
    else:
        times = run_reference(model, args.steps, args.batch, False, tmp / "t.json", args.threads, overrides)
    return steady_median(times, max(0, args.warmup - 1))  # the first step is not in the list (no previous end)


def accuracy_runs(args, names: list[str], tmp: Path) -> list[list[object]]:
    if args.quick:
        data = ["data=synthetic", "data.num_train=256", "data.num_val=64", "data.batch_size=32",
                "trainer.max_steps=3", f"model={args.model}"]
    else:
        tool = SHARED_DATA / "cifar10_jpeg.py"
        if not tool.exists():
            print(f"--accuracy: the offline CIFAR-10 copy is absent ({tool}); accuracy not measured", file=sys.stderr)
            return []
        from benchmarks.cifar10_fast import cifar_copy
        data = [f"data.root={cifar_copy()}", f"model={args.model}"]
    rows = []
    for name in names:
        for seed in args.seeds:
            run_dir = tmp / f"acc_{name}_{seed}"
            cmd = [sys.executable, str(ROOT / "train.py"), *BASE_OVERRIDES, *data, f"seed={seed}",
                   f"hydra.run.dir={run_dir}", "~callbacks.progress_bar", "trainer.enable_progress_bar=false",
                   *OPTIONS[name]]
            result = subprocess.run(cmd, cwd=ROOT, env=subprocess_env(args.threads), capture_output=True, text=True)
            if result.returncode != 0:
                sys.stderr.write(result.stderr[-4000:])
                sys.exit(f"failed: {' '.join(cmd)}")
            record = read_result(run_dir)
            used = yaml.safe_load((run_dir / "config.yaml").read_text())
            rows.append([name, seed, record["metrics"].get("test/acc", math.nan), used["trainer"]["precision"],
                         used["speed"]["channels_last"], used["speed"]["compile"], record["wall_s"]])
    return rows


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(p)
    p.add_argument("--options", nargs="+", choices=[o for o in OPTIONS if o != "fp32"], default=None,
                   help="options to compare with fp32 (default: all; --quick: all but compile)")
    p.add_argument("--model", default=None, help="model config (default airbench; small with --quick)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 3; 1 with --quick)")
    p.add_argument("--steps", type=int, default=None, help="steps per run (default 20; 3 with --quick)")
    p.add_argument("--warmup", type=int, default=None, help="steps left out (default 5, covers compilation; 1 --quick)")
    p.add_argument("--batch-size", dest="batch", type=int, default=None, help="default 1024 (32 with --quick)")
    p.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the subprocesses")
    p.add_argument("--loop", choices=["reference", "train"], default="reference", help="what runs the steps")
    p.add_argument("--accuracy", action="store_true", help="also train each option to the end (train.py)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of the --accuracy runs")
    args = p.parse_args(argv)
    args.model = args.model or ("small" if args.quick else "airbench")
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.steps = args.steps or (3 if args.quick else 20)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 5)
    args.batch = args.batch or (32 if args.quick else None)
    args.options = args.options or [o for o in OPTIONS if o != "fp32" and not (args.quick and "compile" in o)]
    if args.steps <= args.warmup:
        p.error("--steps must exceed --warmup")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    speedups: dict[str, list[float]] = {o: [] for o in args.options}
    times: dict[str, list[float]] = {o: [] for o in ["fp32", *args.options]}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for r in range(args.rounds):
            for name in args.options:
                base = measure(args, args.model, OPTIONS["fp32"], tmp, f"fp32_{r}_{name}")
                option = measure(args, args.model, OPTIONS[name], tmp, f"{name}_{r}")
                times["fp32"].append(base)
                times[name].append(option)
                speedups[name].append(base / option)
                print(f"round {r + 1} {name}: fp32 {base:.4g} s/step, option {option:.4g} s/step",
                      file=sys.stderr, flush=True)
        rows = [["fp32", f"(trainer=cpu) {' '.join(OPTIONS['fp32'])}", median_spread(times["fp32"])[0], 1.0, 0.0]]
        for name in args.options:
            speedup, spread = median_spread(speedups[name])
            rows.append([name, " ".join(OPTIONS[name]), median_spread(times[name])[0], speedup, spread])
        text = table(["option", "overrides", "s/step (median)", "speed-up vs fp32 (median)", "spread"], rows)
        if args.accuracy:
            acc = accuracy_runs(args, ["fp32", *args.options], tmp)
            if acc:
                text += "\n\n" + table(["option", "seed", "test/acc", "precision used", "channels_last used",
                                        "compile used", "wall s"], acc)
    batch = args.batch or 1024
    finish(args, f"CPU options, {args.model}, batch {batch}, {args.steps} steps ({args.loop} loop)", text)


if __name__ == "__main__":
    main()

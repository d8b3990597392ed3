"""The project's cifar10_fast optimizer step against airbench94's own training loop (issue 21), at equal settings.

    python benchmarks/peer_speed.py --record                  # fp32 and bf16, channels_last, 3 rounds
    python benchmarks/peer_speed.py --pairs fp32_cl bf16_cl fp32_nchw --rounds 5 --record
    python benchmarks/peer_speed.py --quick --in-process      # batch 4, 1 round, tiny CIFAR copy: the suite runs this
    python benchmarks/peer_speed.py --plot-only               # table and figure again from the CSV

The peer is ../shared/peers/airbench94_cpu.py: Keller Jordan's airbench94 loop adapted to the CPU (same network,
batch 1024, Nesterov SGD, label smoothing, EMA every 5 steps; ``--channels-last``, ``--bf16``). Its ``--steps N``
prints ``s_per_step``: the wall time of its steps 3..N divided by N - 2 (its first two steps are its warm-up).

The project's side is the recipe's step as benchmarks/reference_loop.py runs it (``experiment=cifar10_fast
trainer=cpu model=airbench``, synthetic images: step time does not depend on pixel values), the same loop
benchmarks/cpu_options.py times; benchmarks/overhead.py measured train.py's step at 0.96x of it. Its per-step
times are averaged over the SAME window as the peer's: steps 3..N, mean (not median), so both numbers are the
same quantity: training steps only, after the same two warm-up steps, no start-up. What each step contains is
each loop's own: the project augments each batch inside the step (crop + flip, ~1% of a step here), the peer
augments the whole epoch before its first step.

Pairs (precision + layout, the same on both sides): ``fp32_cl`` (fp32, channels_last: the project's CPU default),
``bf16_cl`` (bf16 autocast + channels_last: ``trainer=cpu_fast``), ``fp32_nchw`` (optional). Per round and pair:
project, then peer (A, B), each in its own subprocess, same thread count (OMP_NUM_THREADS = ``--threads``, default
torch's: OMP_NUM_THREADS, else the cores); rounds repeat A, B, A, B. Per pair: ratio project/peer of s/step,
median and range (min-max) over rounds. Below 1: the project's step is faster. The CSV's ``cpu_capability`` is
torch's kernel level on this CPU (AVX2, AVX512, ...): bf16 autocast is fast only with AVX-512 BF16 or AMX.

Achieved FLOP/s: the FLOPs of one training step (forward + backward) of each side's network at the batch, counted
by torch.utils.flop_counter.FlopCounterMode on meta tensors (shapes only), over its s/step; against a ceiling
measured in the same run: the forward of one large convolution (default input 64x256x32x32, 3x3, 256 -> 256,
channels_last: 77 GFLOP a call) timed in fp32 and under bf16 autocast (best of 2 after a warm-up), FLOP/s = its
FLOPs / time. (A 1024-image input, ``--ceiling-shape 1024 256 32 32``, is 1.2 TFLOP a call: minutes per call where
bf16 is emulated.) Before the rounds the script prints an estimate of its time from these numbers.

Outputs (--out, default benchmarks/evidence/peer_speed): peer_speed.csv (one row per round, pair and side, with
date, machine and versions), peer_speed.png, a Markdown table on stdout; --record appends it to RESULTS.md.
``--quick``: batch 4, 3 steps (2 warm-up, 1 timed), 1 round, a 20-per-class CIFAR copy for the peer (its batch set
to 4 in its module's ``hyp``), a small convolution for the ceiling: a check that it runs, not a measurement (batch 4:
on a CPU without bf16 instructions bf16 autocast is emulated, ~10x slower than fp32). Skips (exit 0, "SKIPPED")
without ../shared/peers/airbench94_cpu.py or the offline CIFAR-10 copy. ``--network``,
``--per-class``, ``--parallel`` and ``--timeout`` of the shared options do not apply; ``--extra`` adds Hydra
overrides to the project's side only.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import runs_table as rt  # noqa: E402
from benchmarks.report import machine as versions, subprocess_env  # noqa: E402

PEER = ROOT.parent / "shared" / "peers" / "airbench94_cpu.py"
PEER_BATCH = 1024     # the peer's hyp["bs"]; other batch sizes (--quick) patch it in the peer's module
WARMUP = 2            # the peer's s_per_step leaves out its first 2 steps; the project's side leaves out the same
PAIRS = {
    "fp32_cl": dict(precision="fp32", layout="channels_last",
                    project=["trainer.precision=32-true", "speed.channels_last=true"], peer=["--channels-last"]),
    "bf16_cl": dict(precision="bf16", layout="channels_last",
                    project=["trainer.precision=bf16-mixed", "speed.channels_last=true"],
                    peer=["--channels-last", "--bf16"]),
    "fp32_nchw": dict(precision="fp32", layout="nchw",
                      project=["trainer.precision=32-true", "speed.channels_last=false"], peer=[]),
}
STEP_SHARE = 0.5      # for the printed estimate only: a training step assumed to reach half the conv ceiling
COLUMNS = ["round", "pair", "side", "precision", "layout", "batch", "timed_steps", "warmup_steps", "threads",
           "cpu_capability",
           "s_per_step", "ratio", "flops_per_step", "flop_s", "ceiling_flop_s", "ceiling_share",
           "ceiling_fp32_flop_s", "ceiling_bf16_flop_s", "ceiling_conv", "date", "machine", "python", "torch",
           "lightning", "command"]


# ------------------------------------------------------------------------------------------------ the peer
def load_peer(path: Path = PEER):
    spec = importlib.util.spec_from_file_location("airbench94_cpu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_peer(argv: list[str]) -> None:
    """``BATCH ROOT --steps N ...``: the peer's main() with its batch size set to BATCH (its own argv after it)."""
    peer = load_peer()
    peer.hyp["bs"] = int(argv[0])
    saved = sys.argv
    sys.argv = [str(PEER), *argv[1:]]
    try:
        peer.main()
    finally:
        sys.argv = saved


def peer_result(stdout: str) -> dict:
    """The peer's final JSON line ({"steps", "train_s", "s_per_step"})."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"the peer printed no JSON line:\n{stdout[-2000:]}")


def peer_step(pair: dict, steps: int, batch: int, root: str, threads: int, in_process: bool) -> float:
    """The peer's s_per_step over ``steps`` timed steps (it runs WARMUP more)."""
    argv = [root, "--steps", str(steps + WARMUP), "--seed", "0", *pair["peer"]]
    if in_process:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            run_peer([str(batch), *argv])
        stdout = out.getvalue()
    else:
        cmd = ([sys.executable, str(PEER), *argv] if batch == PEER_BATCH else  # the peer script as it is
               [sys.executable, "-c", "import sys; from benchmarks.peer_speed import run_peer; run_peer(sys.argv[1:])",
                str(batch), *argv])
        proc = subprocess.run(cmd, cwd=ROOT, env=subprocess_env(threads), capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"the peer failed: {' '.join(cmd)}\n{proc.stdout[-2000:]}{proc.stderr[-4000:]}")
        stdout = proc.stdout
    result = peer_result(stdout)
    if result["steps"] != steps + WARMUP or not result.get("s_per_step"):
        sys.exit(f"the peer ran {result['steps']} steps, asked {steps + WARMUP}: {result}")
    return float(result["s_per_step"])


# ------------------------------------------------------------------------------------------------ the project
def project_overrides(pair: dict, batch: int, steps: int, extra: list[str]) -> list[str]:
    from benchmarks.reference_loop import BASE_OVERRIDES, data_overrides

    return [*BASE_OVERRIDES, "model=airbench", *data_overrides(batch, steps, False), *pair["project"], *extra]


def project_step(pair: dict, steps: int, batch: int, threads: int, extra: list[str], in_process: bool,
                 tmp: Path) -> float:
    """Mean s/step of the project's reference loop over its steps 3..N: the peer's window (see the docstring)."""
    total = steps + WARMUP
    if in_process:
        from benchmarks.reference_loop import compose, train_steps

        times = train_steps(compose(project_overrides(pair, batch, total, extra)), total)  # times[k]: step k
    else:
        from benchmarks.overhead import run_reference

        intervals = run_reference("airbench", total, batch, False, tmp / "ref.json", threads,
                                  [*pair["project"], *extra])
        times = [float("nan"), *intervals]  # intervals[k]: step k + 1 (the first step has no previous end)
    kept = times[WARMUP:]
    if len(kept) != steps:
        sys.exit(f"the reference loop timed {len(kept)} steps, expected {steps}")
    return statistics.fmean(kept)


# ------------------------------------------------------------------------------------------------ FLOPs
def step_flops(model, batch: int, loss) -> int:
    """FLOPs of one forward + backward of ``model`` on a batch of 32x32 images, counted on meta tensors."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = model.to("meta").train()
    x = torch.empty(batch, 3, 32, 32, device="meta")
    y = torch.zeros(batch, dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        loss(model, x, y).backward()
    return int(counter.get_total_flops())


def peer_flops(batch: int) -> int:
    import torch.nn.functional as F

    peer = load_peer()
    return step_flops(peer.make_net(), batch, lambda net, x, y: F.cross_entropy(
        net(x), y, label_smoothing=peer.hyp["ls"], reduction="none").sum())


def project_flops(batch: int) -> int:
    from hydra.utils import instantiate

    from benchmarks.reference_loop import compose

    cfg = compose(project_overrides(PAIRS["fp32_cl"], batch, 1, []))
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    model = instantiate(cfg.model, heads=dm.heads, optimizer=instantiate(cfg.optimizer))
    head = model.head_names[0]
    return step_flops(model, batch, lambda m, x, y: m.loss_from_logits(m.logits(x), {head: y}))


def conv_ceiling(shape: list[int], repeats: int = 2) -> dict:
    """FLOP/s of one 3x3 convolution's forward (C -> C channels, channels_last), fp32 and bf16 autocast: best of
    ``repeats`` after one warm-up. Inputs already in the timed dtype (autocast then casts only the weight)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    n, c, h, w = shape
    conv = torch.nn.Conv2d(c, c, 3, padding=1, bias=False)
    with torch.device("meta"), FlopCounterMode(display=False) as counter:
        torch.nn.Conv2d(c, c, 3, padding=1, bias=False)(torch.empty(n, c, h, w))
    flops = counter.get_total_flops()
    conv = conv.to(memory_format=torch.channels_last)
    out = {"flops": flops, "conv": f"{n}x{c}x{h}x{w} 3x3 {c}->{c} channels_last"}
    x32 = torch.randn(n, c, h, w).contiguous(memory_format=torch.channels_last)
    for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
        x = x32 if dtype is None else x32.to(dtype)
        context = contextlib.nullcontext() if dtype is None else torch.autocast("cpu", dtype=dtype)
        times = []
        with torch.no_grad(), context:
            for _ in range(repeats + 1):
                start = time.perf_counter()
                conv(x)
                times.append(time.perf_counter() - start)
        out[name] = flops / min(times[1:])
        del x
    return out


# ------------------------------------------------------------------------------------------------ report
def pair_summary(rows: list[dict]) -> list[dict]:
    """Per pair: medians over rounds, the ratio project/peer per round (median, min, max), FLOP/s and ceiling."""
    out = []
    for pair in dict.fromkeys(r["pair"] for r in rows):
        mine = [r for r in rows if r["pair"] == pair]
        rounds = sorted({r["round"] for r in mine})
        side = {s: {r["round"]: r for r in mine if r["side"] == s} for s in ("project", "peer")}
        both = [k for k in rounds if k in side["project"] and k in side["peer"]]
        ratios = [side["project"][k]["s_per_step"] / side["peer"][k]["s_per_step"] for k in both]
        if not ratios:
            continue

        def med(s, key):
            return statistics.median(side[s][k][key] for k in both)
        ceiling = mine[0]["ceiling_flop_s"]
        out.append({"pair": pair, "precision": mine[0]["precision"], "layout": mine[0]["layout"],
                    "rounds": len(both), "project_s_step": med("project", "s_per_step"),
                    "peer_s_step": med("peer", "s_per_step"), "ratio_median": statistics.median(ratios),
                    "ratio_min": min(ratios), "ratio_max": max(ratios),
                    "project_gflop_s": med("project", "flop_s") / 1e9, "peer_gflop_s": med("peer", "flop_s") / 1e9,
                    "ceiling_gflop_s": ceiling / 1e9,
                    "project_pct_ceiling": 100 * med("project", "flop_s") / ceiling,
                    "peer_pct_ceiling": 100 * med("peer", "flop_s") / ceiling})
    return out


def summary(csv_path: Path) -> str:
    rows = rt.read_csv(csv_path)
    first = rows[0]
    flops = {r["side"]: r["flops_per_step"] for r in rows}
    table = rt.markdown_table(pair_summary(rows), [
        "pair", "precision", "layout", "rounds", "project_s_step", "peer_s_step", "ratio_median", "ratio_min",
        "ratio_max", "project_gflop_s", "peer_gflop_s", "ceiling_gflop_s", "project_pct_ceiling",
        "peer_pct_ceiling"], {"rounds": "g", "project_pct_ceiling": ".1f", "peer_pct_ceiling": ".1f"})
    per_round = rt.markdown_table(rows, ["round", "pair", "side", "s_per_step", "ratio"], {"round": "g"})
    return (f"Seconds per optimizer step, batch {first['batch']:g}, {first['timed_steps']:g} timed steps after "
            f"{first['warmup_steps']:g} warm-up (mean, the peer's own window), {first['threads']:g} threads each; "
            f"ratio = project / peer per round (below 1: the project's step is faster), median and range over "
            f"rounds. FLOPs of one training step (forward + backward, FlopCounterMode): project "
            f"{flops.get('project', float('nan')) / 1e9:.4g} GFLOP, peer {flops.get('peer', float('nan')) / 1e9:.4g} "
            f"GFLOP. Ceiling: one convolution forward ({first['ceiling_conv']}), fp32 "
            f"{first['ceiling_fp32_flop_s'] / 1e9:.4g} GFLOP/s, bf16 autocast {first['ceiling_bf16_flop_s'] / 1e9:.4g}"
            f" GFLOP/s; each pair is set against the ceiling of its precision.\n\n{table}\n\nPer round:\n\n"
            f"{per_round}\n\n{first['machine']} (torch kernels: {first['cpu_capability']}); python {first['python']}, "
            f"torch {first['torch']}, lightning {first['lightning']}; {first['date']}.")


def plot(csv_path: Path, png: Path) -> Path:
    plt = rt.pyplot()
    rows = rt.read_csv(csv_path)
    table = pair_summary(rows)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for i, t in enumerate(table):
        mine = {(r["round"], r["side"]): r["s_per_step"] for r in rows if r["pair"] == t["pair"]}
        ratios = [mine[(k, "project")] / mine[(k, "peer")] for k, s in mine if s == "project" and (k, "peer") in mine]
        left.plot([i] * len(ratios), ratios, "o", color="C0", alpha=0.6)
        left.plot([i - 0.2, i + 0.2], [t["ratio_median"]] * 2, color="C1", lw=2)
        right.bar([i - 0.2, i + 0.2], [t["project_gflop_s"], t["peer_gflop_s"]], width=0.38,
                  color=["C0", "C2"], label=["project", "peer"] if i == 0 else None)
        right.plot([i - 0.4, i + 0.4], [t["ceiling_gflop_s"]] * 2, "k--", lw=1,
                   label="conv ceiling (same precision)" if i == 0 else None)
    names = [t["pair"] for t in table]
    left.axhline(1.0, color="black", lw=0.6)
    left.set_xticks(range(len(names)), names)
    left.set_ylabel("s/step project / s/step airbench94 loop")
    left.set_title("ratio per round (dots), median (line)", fontsize=9)
    right.set_xticks(range(len(names)), names)
    right.set_ylabel("achieved GFLOP/s (training step)")
    right.set_title("FLOP/s of a training step against one large conv", fontsize=9)
    right.legend(fontsize=7)
    return rt.save_figure(fig, rows, png)


# ------------------------------------------------------------------------------------------------ main
def parse_args(argv=None):
    import torch

    parser = rt.common_parser(__doc__, "peer_speed")
    parser.add_argument("--pairs", nargs="+", choices=list(PAIRS), default=None,
                        help="precision/layout pairs (default fp32_cl bf16_cl)")
    parser.add_argument("--rounds", type=int, default=None, help="A, B rounds (default 3; --quick 1)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"timed steps per run, after the {WARMUP} warm-up steps (default 12; --quick 1)")
    parser.add_argument("--batch-size", type=int, default=None, help=f"default {PEER_BATCH} (--quick 4)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads of both sides (default: torch's: OMP_NUM_THREADS, else the cores)")
    parser.add_argument("--ceiling-shape", type=int, nargs=4, default=None, metavar=("N", "C", "H", "W"),
                        help="input of the ceiling convolution (default 64 256 32 32, 77 GFLOP; --quick 8 64 16 16)")
    args = parser.parse_args(argv)
    if args.network or args.per_class is not None or args.parallel != 1 or args.timeout:
        parser.error("--network, --per-class, --parallel and --timeout do not apply (one network, one job at a time)")
    args.pairs = args.pairs or ["fp32_cl", "bf16_cl"]
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.steps = args.steps or (1 if args.quick else 12)
    args.batch_size = args.batch_size or (4 if args.quick else PEER_BATCH)
    args.threads = args.threads or torch.get_num_threads()  # OMP_NUM_THREADS, else torch's default (the cores)
    args.ceiling_shape = args.ceiling_shape or ([8, 64, 16, 16] if args.quick else [64, 256, 32, 32])
    return args


def measure(args, csv_path: Path) -> None:
    import torch

    if not PEER.exists():
        rt.skip(f"the peer {rt.repo_path(PEER)} is absent; nothing to compare with")
    root = next(o.split("=", 1)[1] for o in rt.cifar_data(20 if args.quick else None) if o.startswith("data.root="))
    torch.set_num_threads(args.threads)  # this process: the ceiling and, with --in-process, both sides
    flops = {"project": project_flops(args.batch_size), "peer": peer_flops(args.batch_size)}
    ceiling = conv_ceiling(args.ceiling_shape)
    print(f"FLOPs per step: project {flops['project'] / 1e9:.4g} G, peer {flops['peer'] / 1e9:.4g} G; ceiling "
          f"fp32 {ceiling['fp32'] / 1e9:.4g}, bf16 {ceiling['bf16'] / 1e9:.4g} GFLOP/s", flush=True)
    guess = {p: flops["project"] / (STEP_SHARE * ceiling[PAIRS[p]["precision"]]) for p in args.pairs}
    startup = 2.0 if args.in_process else 12.0
    total = args.rounds * sum(2 * (startup + (args.steps + WARMUP) * guess[p]) for p in args.pairs)
    print("estimate (a step at half the conv ceiling of its precision): "
          + ", ".join(f"{p} ~{guess[p]:.3g} s/step" for p in args.pairs)
          + f"; {args.rounds} rounds x {len(args.pairs)} pairs x 2 sides: ~{total / 60:.1f} min", flush=True)
    info = versions()
    common = {"batch": args.batch_size, "timed_steps": args.steps, "warmup_steps": WARMUP, "threads": args.threads,
              "cpu_capability": torch.backends.cpu.get_cpu_capability(),
              "ceiling_fp32_flop_s": ceiling["fp32"], "ceiling_bf16_flop_s": ceiling["bf16"],
              "ceiling_conv": ceiling["conv"], "machine": rt.machine(), "python": info["python"],
              "torch": info["torch"], "lightning": info["lightning"], "command": rt.command_line()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(1, args.rounds + 1):
            for name in args.pairs:
                pair = PAIRS[name]
                times = {"project": project_step(pair, args.steps, args.batch_size, args.threads, args.extra,
                                                 args.in_process, Path(tmp)),
                         "peer": peer_step(pair, args.steps, args.batch_size, root, args.threads, args.in_process)}
                ratio = times["project"] / times["peer"]
                for side, seconds in times.items():
                    rows.append({**common, "round": r, "pair": name, "side": side, "precision": pair["precision"],
                                 "layout": pair["layout"], "s_per_step": seconds, "ratio": ratio,
                                 "flops_per_step": flops[side], "flop_s": flops[side] / seconds,
                                 "ceiling_flop_s": ceiling[pair["precision"]],
                                 "ceiling_share": flops[side] / seconds / ceiling[pair["precision"]],
                                 "date": rt.today()})
                print(f"round {r} {name}: project {times['project']:.4g} s/step, peer {times['peer']:.4g} s/step, "
                      f"ratio {ratio:.4f}", flush=True)
                rt.write_csv(csv_path, rows, COLUMNS)  # after every pair: a partial CSV is readable


def main(argv=None) -> None:
    args = parse_args(argv)
    out, _ = rt.folders(args, "peer_speed")
    csv_path = out / "peer_speed.csv"
    if not args.plot_only:
        measure(args, csv_path)
    rt.finish(args, csv_path, lambda path: [plot(path, out / "peer_speed.png")], summary,
              f"cifar10_fast step against airbench94's own loop, batch {args.batch_size} (issue 21)")


if __name__ == "__main__":
    main()

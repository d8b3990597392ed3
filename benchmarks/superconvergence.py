"""Benchmark (issues 12, 21): does one-cycle reach in N epochs what other LR schedules need several times N for?

Smith's super-convergence claim is about budget. The same network, optimizer (SGD, momentum 0.9, weight decay 5e-4),
data and batch size are trained with four schedules at several budgets (default 1, 2, 4 and 8 epochs, an 8x span):
  one_cycle  one-cycle with inverse cyclic momentum 0.95 -> 0.85 -> 0.95 (Smith & Topin 2017), peak = LR
  constant   scheduler=none, optimizer.lr = LR, momentum 0.9
  step       LR, divided by 10 at 50% and at 75% of the run (piecewise, unit=fraction, repeated knots)
  cyclic     triangular2 between LR/10 and LR, two cycles per run (Smith 2017)

Each schedule gets its LR with the same effort, per budget and per seed: one LR range test (task=lr_range_test,
shared by all) gives a centre LR (its `--rule` suggestion); every schedule, budget and seed is trained at
LR = centre x `--factors`, and the run with the best validation accuracy (a held-out 20% of the training images,
never the test split) is that seed's result for that schedule and budget. Reported: its test accuracy (the test
split), mean over seeds with the standard error, and the headline read off the curves: the smallest budget at which
one-cycle leads every other schedule, and how many epochs each other schedule needs to reach that accuracy.

Outputs in --out: superconvergence.csv (one row per run; `chosen` marks each seed's validation-chosen run),
superconvergence_epochs.csv (val/acc per epoch of the chosen runs at the largest budget), accuracy_vs_budget.png
(mean and standard error per schedule), accuracy_vs_epoch.png, a table on stdout. Resumable: finished runs are read
back, not rerun.

    python benchmarks/superconvergence.py --quick --in-process   # seconds per job: checks the plumbing
    python benchmarks/superconvergence.py --parallel 2 --extra speed.threads=1 --record   # ~1 h alone, 2 cores
    python benchmarks/superconvergence.py --plot-only             # redraw from the CSVs
"""
from __future__ import annotations

import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runs_table as rt  # noqa: E402

SCHEDULES = ("one_cycle", "constant", "step", "cyclic")
COLUMNS = ["schedule", "budget_epochs", "seed", "lr_factor", "lr", "chosen", "status", "val_acc", "test_acc",
           "train_loss", "steps", "wall_s", "network", "optimizer", "batch_size", "train_images", "lr_rule",
           "date", "machine", "run_dir"]
EPOCH_COLUMNS = ["schedule", "budget_epochs", "seed", "lr", "epoch", "val_acc", "date", "machine"]
OPTIMIZER = ["optimizer=sgd", "optimizer.momentum=0.9", "optimizer.weight_decay=5e-4"]
VAL_FRACTION = 0.2


def schedule_overrides(schedule: str, lr: float, budget: float) -> list[str]:
    """The Hydra overrides of one schedule with peak (or constant, or initial) LR ``lr``."""
    if schedule == "one_cycle":
        return ["scheduler=one_cycle", f"scheduler.max_lr={lr:.6g}"]
    if schedule == "constant":
        return ["scheduler=none", f"optimizer.lr={lr:.6g}"]
    if schedule == "step":
        values = ",".join(f"{v:.6g}" for v in (lr, lr, lr / 10, lr / 10, lr / 100, lr / 100))
        return ["scheduler=piecewise", "scheduler.unit=fraction", "scheduler.knots=[0,0.5,0.5,0.75,0.75,1]",
                f"scheduler.values=[{values}]"]
    if schedule == "cyclic":
        return ["scheduler=cyclic", "scheduler.mode=triangular2", f"scheduler.base_lr={lr / 10:.6g}",
                f"scheduler.max_lr={lr:.6g}", "scheduler.unit=epoch", f"scheduler.step_size_up={budget / 4:g}"]
    raise ValueError(f"unknown schedule {schedule!r}; choose from {SCHEDULES}")


def job_name(schedule: str, lr: float, budget: float, seed: int) -> str:
    return f"{schedule}_lr{lr:.4g}_e{budget:g}_s{seed}"


def score(row_: dict) -> float:
    value = row_["val_acc"]
    return -math.inf if row_["status"] != "completed" or math.isnan(value) else value


def mark_chosen(rows: list[dict]) -> list[dict]:
    """Per (schedule, budget, seed): the run with the best validation accuracy gets ``chosen`` = 1."""
    for key in {(r["schedule"], r["budget_epochs"], r["seed"]) for r in rows}:
        mine = [r for r in rows if (r["schedule"], r["budget_epochs"], r["seed"]) == key]
        for r in mine:
            r["chosen"] = ""
        max(mine, key=score)["chosen"] = 1
    return rows


def curves(rows: list[dict]) -> dict[str, dict[float, dict]]:
    """{schedule: {budget: {mean, se, n, lrs}}} over the chosen runs (test accuracy, %)."""
    out: dict[str, dict[float, dict]] = {}
    for r in (r for r in rows if r["chosen"] == 1):
        out.setdefault(r["schedule"], {}).setdefault(r["budget_epochs"], []).append(r)
    for schedule, budgets in out.items():
        for budget, runs in budgets.items():
            accs = [100 * r["test_acc"] for r in runs]
            se = rt.standard_error(accs)
            budgets[budget] = {"mean": statistics.mean(accs), "se": se, "n": len(accs),
                               "lrs": sorted(r["lr"] for r in runs)}
    return {s: dict(sorted(b.items())) for s, b in out.items()}


def epochs_to_reach(curve: dict[float, dict], target: float) -> float:
    """The budget at which a schedule's mean test accuracy first reaches ``target``, interpolated linearly in
    log2(budget) between the two budgets around it; inf if it never does within the budgets run."""
    points = list(curve.items())
    for i, (budget, point) in enumerate(points):
        if point["mean"] >= target:
            if i == 0:
                return budget
            (b0, p0) = points[i - 1]
            frac = (target - p0["mean"]) / (point["mean"] - p0["mean"])
            return 2 ** (math.log2(b0) + frac * (math.log2(budget) - math.log2(b0)))
    return math.inf


def headline(table: dict[str, dict[float, dict]]) -> str:
    """The smallest budget where one-cycle's mean leads every other schedule's, and the epochs each other
    schedule needs to reach one-cycle's accuracy there."""
    if "one_cycle" not in table or len(table) < 2:
        return "Headline: needs one_cycle and at least one other schedule."
    others = [s for s in table if s != "one_cycle"]
    lead = next((b for b, p in table["one_cycle"].items()
                 if all(b in table[s] and p["mean"] > table[s][b]["mean"] for s in others)), None)
    if lead is None:
        return "Headline: one-cycle does not lead every other schedule at any budget run here."
    target = table["one_cycle"][lead]
    lines = [f"Headline: one-cycle first leads every other schedule at {lead:g} epochs ({target['mean']:.2f}% "
             f"+/- {target['se']:.2f}). Epochs each schedule needs to reach that mean accuracy (interpolated in "
             "log budget; '>' = not within the budgets run):"]
    for s in others:
        need = epochs_to_reach(table[s], target["mean"])
        margin = target["mean"] - table[s][lead]["mean"]
        se = math.hypot(target["se"], table[s][lead]["se"])
        word = "a measurable lead" if margin > 2 * se else "no measurable difference"
        lines.append(f"- {s}: " + (f"> {max(table[s]):g} epochs" if math.isinf(need) else
                                    f"{need:.2g} epochs ({need / lead:.2g}x)")
                     + f"; at {lead:g} epochs one-cycle leads it by {margin:.2f} +/- {se:.2f} points ({word})")
    return "\n".join(lines)


def summary(csv_path: Path) -> str:
    rows = rt.read_csv(csv_path)
    table = curves(rows)
    budgets = sorted({b for c in table.values() for b in c})
    lines = [{"schedule": s, **{f"{b:g} ep": (f"{c[b]['mean']:.2f} +/- {c[b]['se']:.2f} (n={c[b]['n']})"
                                              if b in c else "-") for b in budgets},
              "chosen LRs": "; ".join(f"{b:g}: " + " ".join(f"{lr:.3g}" for lr in c[b]["lrs"]) for b in c)}
             for s, c in table.items()]
    text = ("Test accuracy (%) of each seed's validation-chosen run: mean +/- standard error over seeds.\n\n"
            + rt.markdown_table(lines, ["schedule", *[f"{b:g} ep" for b in budgets], "chosen LRs"]))
    return text + "\n\n" + headline(table) + edge_notes(rows)


def edge_notes(rows: list[dict]) -> str:
    """A line per schedule and budget whose chosen LR is the largest or smallest swept on some seed (its best
    may lie beyond: widen --factors)."""
    factors = sorted({r["lr_factor"] for r in rows})
    notes = sorted({f"- {r['schedule']} at {r['budget_epochs']:g} epochs, seed {r['seed']:g}: the "
                    f"{'largest' if r['lr_factor'] == factors[-1] else 'smallest'} swept LR (x{r['lr_factor']:.3g})"
                    for r in rows if r["chosen"] == 1 and len(factors) > 1 and r["lr_factor"] in (factors[0], factors[-1])})
    return ("\n\nChosen at the edge of the LR sweep (its best may lie beyond):\n" + "\n".join(notes)) if notes else ""


def plot_accuracy_vs_budget(csv_path: Path, png: Path) -> Path:
    """Test accuracy against training budget (epochs), mean and standard error per schedule."""
    plt = rt.pyplot()
    rows = rt.read_csv(csv_path)
    fig, ax = plt.subplots(figsize=(7, 5))
    for schedule, curve in curves(rows).items():
        budgets = list(curve)
        ax.errorbar(budgets, [curve[b]["mean"] for b in budgets],
                    yerr=[0 if math.isnan(curve[b]["se"]) else curve[b]["se"] for b in budgets],
                    fmt="o-", capsize=3, label=schedule)
    budgets = sorted({r["budget_epochs"] for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
    ax.set_xlabel("training budget (epochs)")
    ax.set_ylabel("test accuracy (%), mean +/- s.e. over seeds")
    ax.grid(alpha=0.3)
    ax.legend(title="schedule")
    first = rows[0] if rows else {}
    seeds = len({r["seed"] for r in rows})
    ax.set_title(f"Test accuracy vs budget. Held equal: {rt.setup_text(first)},\n{first.get('optimizer')}; "
                 f"LR chosen on validation per schedule, budget and seed ({seeds} seeds)", fontsize=9)
    return rt.save_figure(fig, rows, png)


def plot_accuracy_vs_epoch(csv_path: Path, png: Path) -> Path:
    """Validation accuracy after each epoch of the largest budget's chosen runs, mean over seeds per schedule."""
    plt = rt.pyplot()
    rows = rt.read_csv(csv_path)
    budget = max(r["budget_epochs"] for r in rows)
    rows = [r for r in rows if r["budget_epochs"] == budget]
    fig, ax = plt.subplots(figsize=(7, 5))
    for schedule in dict.fromkeys(r["schedule"] for r in rows):
        epochs = sorted({r["epoch"] for r in rows if r["schedule"] == schedule})
        means = [100 * statistics.mean(r["val_acc"] for r in rows if r["schedule"] == schedule and r["epoch"] == e)
                 for e in epochs]
        ax.plot(epochs, means, "o-", label=schedule)
    ax.set_xlabel("epoch (end of)")
    ax.set_ylabel("validation accuracy (%), mean over seeds")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(title="schedule")
    ax.set_title(f"Accuracy per epoch at the {budget:g}-epoch budget. Held equal: network, optimizer, data, batch,"
                 f"\nbudget; each schedule at its own validation-chosen LR", fontsize=9)
    return rt.save_figure(fig, rows, png)


def main() -> None:
    parser = rt.common_parser(__doc__, "superconvergence")
    parser.add_argument("--budgets", type=float, nargs="+", default=None, help="epochs (default 1 2 4 8)")
    parser.add_argument("--schedules", nargs="+", default=list(SCHEDULES), choices=SCHEDULES)
    parser.add_argument("--factors", type=float, nargs="+", default=None,
                        help="LR sweep = range-test suggestion x these (default 1/9 1/3 1 3 9: constant LR chose 1/3, then "
                             "the lowest, on 7 of 12 cells; RESULTS.md 2026-12-01)")
    parser.add_argument("--rule", default="loss_min", help="range-test suggestion at the sweep's centre")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 2 (--quick: 0)")
    parser.add_argument("--range-steps", type=int, default=100, help="optimizer steps of the range test")
    parser.set_defaults(per_class=300, network="small")
    args = parser.parse_args()
    out, runs = rt.folders(args, "superconvergence")
    csv_path, epochs_csv = out / "superconvergence.csv", out / "superconvergence_epochs.csv"

    if not args.plot_only:
        budgets = args.budgets or ([1, 2] if args.quick else [1, 2, 4, 8])
        factors = args.factors or ([1.0] if args.quick else [1 / 9, 1 / 3, 1.0, 3.0, 9.0])
        seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
        network = "small" if args.quick else args.network
        if args.quick:
            data, batch, images, range_steps = rt.QUICK_DATA, 32, 128, rt.QUICK_RANGE_TEST
        else:
            data = rt.cifar_data(args.per_class, runs.parent) + [f"data.batch_size={args.batch_size}",
                                                                  f"data.val_fraction={VAL_FRACTION}", "trainer=cpu"]
            batch, images = args.batch_size, rt.train_size(args.per_class, VAL_FRACTION)
            range_steps = [f"range_test.num_steps={args.range_steps}"]
        base = [f"model={network}", *data, *OPTIMIZER, *args.extra]
        setup = {"network": network, "optimizer": "SGD momentum 0.9 wd 5e-4", "batch_size": batch,
                 "train_images": images, "lr_rule": f"{args.rule} x factor"}

        test = rt.range_test(rt.Job("range_test", base + ["seed=0"] + range_steps), runs, args.timeout,
                             args.in_process)
        centre = test.suggestions.get(args.rule) or test.lr  # a rule with no answer: the test's own choice
        print(f"LR sweep centre: {centre:.4g} ({args.rule if test.suggestions.get(args.rule) else test.rule})")
        grid = [(seed, s, b, f) for seed in seeds for s in args.schedules for b in budgets for f in factors]
        rt.print_estimate(len(grid), sum(b for *_, b, _ in grid) / len(grid) * images // batch,
                          test.elapsed_s / max(1, len(test.lrs)), what="every run (s/step from the range test)")
        rows = []
        for seed in seeds:  # seeds outermost: a benchmark stopped early still covers every schedule and budget
            mine = [(s, b, f, centre * f) for sd, s, b, f in grid if sd == seed]
            done = rt.run_jobs([rt.Job(job_name(s, lr, b, seed), base + [f"seed={seed}", f"trainer.max_epochs={b:g}"]
                                       + schedule_overrides(s, lr, b)) for s, b, _, lr in mine],
                               runs, args.parallel, args.timeout, args.in_process)
            for s, b, f, lr in mine:
                result = done[job_name(s, lr, b, seed)]
                rows.append({"schedule": s, "budget_epochs": b, "seed": seed, "lr_factor": f, "lr": lr,
                             "val_acc": rt.metric(result, "val/acc"),
                             "train_loss": rt.final_train_loss(result["run_dir"]), "steps": result.get("steps"),
                             "wall_s": result.get("wall_s"), **rt.run_fields(result), **setup})
            rt.write_csv(csv_path, mark_chosen(rows), COLUMNS)  # after every seed: a partial CSV is readable
        largest = max(budgets)
        epochs = [{"schedule": r["schedule"], "budget_epochs": largest, "seed": r["seed"], "lr": r["lr"], "epoch": e,
                   "val_acc": acc, "date": r["date"], "machine": r["machine"]}
                  for r in rows if r["chosen"] == 1 and r["budget_epochs"] == largest
                  for e, acc in rt.epoch_curve(rt.ROOT / str(r["run_dir"]))]
        rt.write_csv(epochs_csv, epochs, EPOCH_COLUMNS)
    rt.finish(args, csv_path, lambda path: [plot_accuracy_vs_budget(path, out / "accuracy_vs_budget.png"),
                                            plot_accuracy_vs_epoch(epochs_csv, out / "accuracy_vs_epoch.png")],
              summary, "Super-convergence: test accuracy against budget, one-cycle vs constant, step, cyclic "
                       "(issue 21)")


if __name__ == "__main__":
    main()

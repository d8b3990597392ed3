"""Benchmark (issue 12): does one-cycle reach a given accuracy in fewer epochs than other LR schedules?

The same network, optimizer (SGD, momentum 0.9, weight decay 5e-4), data and batch size are trained with four
schedules at the same budgets (default 1, 2 and 4 epochs):
  one_cycle  one-cycle with inverse cyclic momentum 0.95 -> 0.85 -> 0.95 (Smith & Topin 2017), peak = LR
  constant   scheduler=none, optimizer.lr = LR, momentum 0.9
  step       LR, divided by 10 at 50% and at 75% of the run (piecewise, unit=fraction, repeated knots)
  cyclic     triangular2 between LR/10 and LR, two cycles per run (Smith 2017)

Choosing each schedule's LR with the same effort: one LR range test (task=lr_range_test, shared by all) gives a
centre LR (its `--rule` suggestion); each schedule then gets a sweep of LR = centre x `--factors` at the smallest
budget, and the LR with the best validation accuracy (a held-out 10% of the training images, never the test split)
is used at every budget. Reported: test accuracy (the test split) per schedule and budget.

Outputs in --out: superconvergence.csv (one row per run: the LR sweep and the budgets), superconvergence_epochs.csv
(val/acc per epoch of every chosen run), accuracy_vs_budget.png, accuracy_vs_epoch.png (largest budget), a table
on stdout. Resumable: finished runs are read back, not rerun.

    python benchmarks/superconvergence.py --quick --parallel 2    # a few seconds per job: checks the plumbing
    python benchmarks/superconvergence.py --record     # airbench net, 1000 images per class, budgets 1 2 4
    python benchmarks/superconvergence.py --plot-only             # redraw from the CSVs
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runs_table as rt  # noqa: E402

SCHEDULES = ("one_cycle", "constant", "step", "cyclic")
COLUMNS = ["schedule", "stage", "budget_epochs", "lr_factor", "lr", "chosen", "status", "val_acc", "test_acc",
           "train_loss", "steps", "wall_s", "network", "optimizer", "batch_size", "train_images", "lr_rule",
           "date", "machine", "run_dir"]
EPOCH_COLUMNS = ["schedule", "budget_epochs", "lr", "epoch", "val_acc", "date", "machine"]
OPTIMIZER = ["optimizer=sgd", "optimizer.momentum=0.9", "optimizer.weight_decay=5e-4"]


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


def job_name(schedule: str, lr: float, budget: float) -> str:
    return f"{schedule}_lr{lr:.4g}_e{budget:g}"


def row(schedule: str, stage: str, budget: float, factor: float, lr: float, result: dict, setup: dict) -> dict:
    return {"schedule": schedule, "stage": stage, "budget_epochs": budget, "lr_factor": factor, "lr": lr,
            "val_acc": rt.metric(result, "val/acc"), "train_loss": rt.final_train_loss(result["run_dir"]),
            "steps": result.get("steps"), "wall_s": result.get("wall_s"), **rt.run_fields(result), **setup}


def score(row_: dict) -> float:
    value = row_["val_acc"]
    return -math.inf if row_["status"] != "completed" or math.isnan(value) else value


def plot_accuracy_vs_budget(csv_path: Path, png: Path) -> Path:
    """Test accuracy against training budget (epochs), one line per schedule, from superconvergence.csv."""
    plt = rt.pyplot()
    rows = [r for r in rt.read_csv(csv_path) if r["stage"] == "budget"]
    fig, ax = plt.subplots(figsize=(7, 5))
    for schedule in dict.fromkeys(r["schedule"] for r in rows):
        points = sorted((r["budget_epochs"], 100 * r["test_acc"], r["lr"]) for r in rows if r["schedule"] == schedule)
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-",
                label=f"{schedule} (LR {points[0][2]:.3g})")
    budgets = sorted({r["budget_epochs"] for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
    ax.set_xlabel("training budget (epochs)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(title="schedule (chosen LR)")
    first = rows[0] if rows else {}
    ax.set_title(f"Test accuracy vs budget. Held equal: {rt.setup_text(first)},\n{first.get('optimizer')}, "
                 f"LR chosen by the same sweep per schedule", fontsize=9)
    return rt.save_figure(fig, rows, png)


def plot_accuracy_vs_epoch(csv_path: Path, png: Path) -> Path:
    """Validation accuracy after each epoch of the largest budget's runs, one line per schedule."""
    plt = rt.pyplot()
    rows = rt.read_csv(csv_path)
    budget = max(r["budget_epochs"] for r in rows)
    rows = [r for r in rows if r["budget_epochs"] == budget]
    fig, ax = plt.subplots(figsize=(7, 5))
    for schedule in dict.fromkeys(r["schedule"] for r in rows):
        points = sorted((r["epoch"], 100 * r["val_acc"]) for r in rows if r["schedule"] == schedule)
        ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=schedule)
    ax.set_xlabel("epoch (end of)")
    ax.set_ylabel("validation accuracy (%; CIFAR: a held-out 10% of the training images)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(title="schedule")
    ax.set_title(f"Accuracy per epoch at the {budget:g}-epoch budget. Held equal: network, optimizer, data, batch,"
                 f"\nbudget; each schedule at its own swept LR", fontsize=9)
    return rt.save_figure(fig, rows, png)


def summary(csv_path: Path) -> str:
    rows = [r for r in rt.read_csv(csv_path) if r["stage"] == "budget"]
    budgets = sorted({r["budget_epochs"] for r in rows})
    table = []
    for schedule in dict.fromkeys(r["schedule"] for r in rows):
        mine = {r["budget_epochs"]: r for r in rows if r["schedule"] == schedule}
        table.append({"schedule": schedule, "LR": next(iter(mine.values()))["lr"],
                      **{f"test acc {b:g} ep (%)": 100 * mine[b]["test_acc"] if b in mine else math.nan
                         for b in budgets}})
    columns = ["schedule", "LR"] + [f"test acc {b:g} ep (%)" for b in budgets]
    sweep = [r for r in rt.read_csv(csv_path) if r["stage"] == "lr_sweep"]
    sweep_table = rt.markdown_table(
        [{**r, "val_acc": 100 * r["val_acc"], "chosen": "yes" if r["chosen"] == 1 else ""} for r in sweep],
        ["schedule", "budget_epochs", "lr_factor", "lr", "status", "val_acc", "chosen"], {"val_acc": ".2f"})
    return (rt.markdown_table(table, columns, {c: ".2f" for c in columns[2:]})
            + "\n\nLR sweep at the smallest budget (validation accuracy, %):\n\n" + sweep_table + edge_notes(sweep))


def edge_notes(sweep: list[dict]) -> str:
    """A warning per schedule whose chosen LR is the largest or smallest it was swept at (its best may lie beyond:
    the comparison is then not at each schedule's best LR)."""
    notes = []
    for schedule in dict.fromkeys(r["schedule"] for r in sweep):
        mine = [r for r in sweep if r["schedule"] == schedule]
        chosen = [r for r in mine if r["chosen"] == 1]
        factors = sorted(r["lr_factor"] for r in mine)
        if len(factors) < 2 or not chosen:
            continue
        side = {factors[-1]: "largest", factors[0]: "smallest"}.get(chosen[0]["lr_factor"])
        if side:
            notes.append(f"- {schedule}: the chosen LR is the {side} swept (x{chosen[0]['lr_factor']:.3g}); its best "
                         "may lie beyond: widen --factors")
    return ("\n\nAt the edge of the sweep:\n" + "\n".join(notes)) if notes else ""


def main() -> None:
    parser = rt.common_parser(__doc__, "superconvergence")
    parser.add_argument("--budgets", type=float, nargs="+", default=None, help="epochs (default 1 2 4)")
    parser.add_argument("--schedules", nargs="+", default=list(SCHEDULES), choices=SCHEDULES)
    parser.add_argument("--factors", type=float, nargs="+", default=None,
                        help="LR sweep = range-test suggestion x these (default 1/3 1 3 9)")
    parser.add_argument("--rule", default="valley", help="range-test suggestion at the sweep's centre")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--range-steps", type=int, default=100, help="optimizer steps of the range test")
    parser.set_defaults(per_class=1000, network="airbench")
    args = parser.parse_args()
    out, runs = rt.folders(args, "superconvergence")
    csv_path, epochs_csv = out / "superconvergence.csv", out / "superconvergence_epochs.csv"

    if not args.plot_only:
        budgets = args.budgets or ([1, 2] if args.quick else [1, 2, 4])
        factors = args.factors or ([1.0] if args.quick else [1 / 3, 1.0, 3.0, 9.0])
        network = "small" if args.quick else args.network
        if args.quick:
            data, batch, images, range_steps = rt.QUICK_DATA, 32, 128, rt.QUICK_RANGE_TEST
        else:
            data = rt.cifar_data(args.per_class, runs.parent) + [f"data.batch_size={args.batch_size}",
                                                                  "data.val_fraction=0.1", "trainer=cpu"]
            batch, images = args.batch_size, rt.train_size(args.per_class, 0.1)
            range_steps = [f"range_test.num_steps={args.range_steps}"]
        base = [f"model={network}", *data, *OPTIMIZER, f"seed={args.seed}", *args.extra]
        setup = {"network": network, "optimizer": "SGD momentum 0.9 wd 5e-4", "batch_size": batch,
                 "train_images": images, "lr_rule": f"{args.rule} x factor"}
        steps_per_epoch = images // batch
        small = min(budgets)

        test = rt.range_test(rt.Job("range_test", base + range_steps), runs, args.timeout, args.in_process)
        centre = test.suggestions.get(args.rule) or test.lr  # a rule with no answer: the test's own choice
        print(f"LR sweep centre: {centre:.4g} ({args.rule if test.suggestions.get(args.rule) else test.rule})")
        per_step = test.elapsed_s / max(1, len(test.lrs))
        sweep_jobs = len(args.schedules) * len(factors)
        rt.print_estimate(sweep_jobs + len(args.schedules) * (len(budgets) - 1),
                          steps_per_epoch * (sweep_jobs * small + len(args.schedules) * (sum(budgets) - small))
                          / (sweep_jobs + len(args.schedules) * (len(budgets) - 1)),
                          per_step, what="the sweep and the budgets (s/step from the range test)")

        def job(schedule, lr, budget):
            return rt.Job(job_name(schedule, lr, budget),
                          base + schedule_overrides(schedule, lr, budget) + [f"trainer.max_epochs={budget:g}"])

        grid = [(s, f, centre * f) for s in args.schedules for f in factors]
        done = rt.run_jobs([job(s, lr, small) for s, _, lr in grid], runs, args.parallel, args.timeout,
                           args.in_process)
        rows = [row(s, "lr_sweep", small, f, lr, done[job_name(s, lr, small)], setup) for s, f, lr in grid]
        chosen = {}
        for schedule in args.schedules:
            best = max((r for r in rows if r["schedule"] == schedule), key=score)
            best["chosen"] = 1
            chosen[schedule] = (best["lr_factor"], best["lr"])
        later = [(s, b) for s in args.schedules for b in budgets]
        done = rt.run_jobs([job(s, chosen[s][1], b) for s, b in later], runs, args.parallel, args.timeout,
                           args.in_process)
        budget_rows = [row(s, "budget", b, *chosen[s], done[job_name(s, chosen[s][1], b)], setup) for s, b in later]
        rt.write_csv(csv_path, rows + budget_rows, COLUMNS)
        epochs = [{"schedule": r["schedule"], "budget_epochs": r["budget_epochs"], "lr": r["lr"], "epoch": e,
                   "val_acc": acc, "date": r["date"], "machine": r["machine"]}
                  for r in budget_rows for e, acc in rt.epoch_curve(rt.ROOT / str(r["run_dir"]))]
        rt.write_csv(epochs_csv, epochs, EPOCH_COLUMNS)
    rt.finish(args, csv_path, lambda path: [plot_accuracy_vs_budget(path, out / "accuracy_vs_budget.png"),
                                            plot_accuracy_vs_epoch(epochs_csv, out / "accuracy_vs_epoch.png")],
              summary, "Super-convergence: one-cycle vs constant, step and cyclical LR (issue 12)")

if __name__ == "__main__":
    main()

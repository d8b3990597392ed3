"""Benchmark (issue 12): SGD, SGD+Nesterov, Adam, AdamW and Adagrad under one-cycle, each at its own range-test LR.

Every run: the same network, data, batch and budget (epochs), scheduler=one_cycle with scheduler.max_lr=auto, so
train.py runs the LR range test on that optimizer first and uses its suggestion (range_test.suggestion, default
loss_min) as the peak LR. Momentum (SGD) or beta1 (Adam, AdamW) cycles 0.95 -> 0.85 -> 0.95; Adagrad has none
(cycle_momentum=false). Each optimizer keeps its config's weight decay (conf/optimizer/*.yaml).

Reported per optimizer and seed: the LR found, the final training loss (mean over the last epoch's logged steps)
and the test accuracy: a table on stdout, optimizers.csv and a scatter figure optimizers.png (loss vs accuracy).

    python benchmarks/optimizers.py --quick --parallel 2
    python benchmarks/optimizers.py --record           # airbench net, 1000 images per class, 4 epochs
    python benchmarks/optimizers.py --plot-only
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runs_table as rt  # noqa: E402

OPTIMIZERS = ("sgd", "nesterov", "adam", "adamw", "adagrad")
COLUMNS = ["optimizer", "seed", "epochs", "max_lr", "lr_source", "status", "train_loss", "test_acc", "val_acc",
           "steps", "wall_s", "network", "batch_size", "train_images", "date", "machine", "run_dir"]


def optimizer_overrides(name: str) -> list[str]:
    no_momentum = ["scheduler.cycle_momentum=false"] if name == "adagrad" else []
    return [f"optimizer={name}", "scheduler=one_cycle", "scheduler.max_lr=auto", *no_momentum]


def plot_scatter(csv_path: Path, png: Path) -> Path:
    """Final training loss (x) against test accuracy (y), one point per optimizer and seed, from optimizers.csv."""
    plt = rt.pyplot()
    rows = [r for r in rt.read_csv(csv_path) if r["status"] == "completed"]
    fig, ax = plt.subplots(figsize=(7, 5))
    for name in dict.fromkeys(r["optimizer"] for r in rows):
        mine = [r for r in rows if r["optimizer"] == name]
        ax.scatter([r["train_loss"] for r in mine], [100 * r["test_acc"] for r in mine], s=40,
                   label=f"{name} (peak LR {mine[0]['max_lr']:.3g})")
        for r in mine:
            ax.annotate(name, (r["train_loss"], 100 * r["test_acc"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.set_xlabel("final training loss (cross-entropy, mean over the last epoch)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    first = rows[0] if rows else {}
    ax.set_title(f"Optimizers under one-cycle at their own range-test LR. Held equal: {rt.fmt(first.get('epochs'), 'g')}"
                 f" epochs,\n{rt.setup_text(first)}, one-cycle shape", fontsize=9)
    return rt.save_figure(fig, rows, png)


def summary(csv_path: Path) -> str:
    rows = [{**r, "test_acc": 100 * r["test_acc"]} for r in rt.read_csv(csv_path)]
    return rt.markdown_table(rows, ["optimizer", "seed", "epochs", "max_lr", "lr_source", "status", "train_loss",
                                    "test_acc", "wall_s"], {"test_acc": ".2f", "seed": "g", "wall_s": ".0f"})


def main() -> None:
    parser = rt.common_parser(__doc__, "optimizers")
    parser.add_argument("--optimizers", nargs="+", default=list(OPTIMIZERS), choices=OPTIMIZERS)
    parser.add_argument("--epochs", type=float, default=None, help="budget per run (default 4; --quick 1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--range-steps", type=int, default=100, help="optimizer steps of each range test")
    parser.set_defaults(per_class=1000, network="airbench")
    args = parser.parse_args()
    out, runs = rt.folders(args, "optimizers")
    csv_path = out / "optimizers.csv"

    if not args.plot_only:
        epochs = args.epochs or (1 if args.quick else 4)
        network = "small" if args.quick else args.network
        if args.quick:
            data, batch, images, range_steps = rt.QUICK_DATA, 32, 128, rt.QUICK_RANGE_TEST
        else:
            data = rt.cifar_data(args.per_class, runs.parent) + [f"data.batch_size={args.batch_size}", "trainer=cpu"]
            batch, images = args.batch_size, rt.train_size(args.per_class, 0.1)  # data=cifar10 holds out 10%
            range_steps = [f"range_test.num_steps={args.range_steps}"]
        base = [f"model={network}", *data, *range_steps, f"trainer.max_epochs={epochs:g}", *args.extra]
        plan = [(name, seed) for name in args.optimizers for seed in args.seeds]
        print(f"{len(plan)} runs, each a range test of <= {range_steps[0].split('=')[1]} steps then "
              f"{epochs:g} epochs x {images // batch} steps (batch {batch})", flush=True)
        jobs = [rt.Job(f"{name}_s{seed}_e{epochs:g}", base + optimizer_overrides(name) + [f"seed={seed}"])
                for name, seed in plan]
        done = rt.run_jobs(jobs, runs, args.parallel, args.timeout, args.in_process)
        rows = []
        for (name, seed), job in zip(plan, jobs):
            result = done[job.name]
            lr = result.get("lr") or {}
            rows.append({"optimizer": name, "seed": seed, "epochs": epochs, "max_lr": lr.get("max_lr"),
                         "lr_source": lr.get("source"), "train_loss": rt.final_train_loss(result["run_dir"]),
                         "val_acc": rt.metric(result, "val/acc"), "steps": result.get("steps"),
                         "wall_s": result.get("wall_s"), "network": network, "batch_size": batch,
                         "train_images": images, **rt.run_fields(result)})
        rt.write_csv(csv_path, rows, COLUMNS)
    rt.finish(args, csv_path, lambda path: [plot_scatter(path, out / "optimizers.png")], summary,
              "Optimizers under one-cycle at their own range-test LR (issue 12)")


if __name__ == "__main__":
    main()

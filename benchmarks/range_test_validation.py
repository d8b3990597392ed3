"""Benchmark (issue 12): where does each LR range-test suggestion land, and does max_lr=auto come within 1 point
of the best peak LR? (Replaces benchmarks/lr_range_test.py.)

For each recipe (default cifar10_fast and cifar10_resnet9) and seed: run the range test (task=lr_range_test) on the
recipe, then train the recipe at the full budget with peak LR = factor x each suggestion (factors 1/4 1/2 1 2 4;
rules min_div10, steepest, valley, loss_min; equal LRs are one run). How the peak LR is set: scheduler.max_lr when
the recipe's schedule has one (one_cycle, cyclic, warmup); for a piecewise schedule all knot values are scaled so
that the largest is the peak (the recipe's shape is kept); else optimizer.lr.

Reported per recipe, rule and seed: the test accuracy at x1, its rank among that rule's five points (1 = best) and
its gap to the best accuracy of every run swept for that recipe and seed, in points. The recipe's own
range_test.suggestion when the runs were made is marked `auto` in the CSV and tables (scheduler.max_lr=auto starts
from it; with the default max_lr trials it then trains at the trial that wins, benchmarks/auto_lr.py); the figure
marks the rule the recipe's config names now. Outputs in --out: range_test_validation.csv (one row per rule and
factor), range_test_validation.png (accuracy against peak LR), a table on stdout.

Budget: the full recipes are far too slow on a CPU (one cifar10_fast step at batch 1024 takes ~8 s here). Use
--per-class, --epochs (>= 2 for an honest check), --batch-size and --network for a reduced version; the estimated
time is printed before anything trains, and again, measured, after the range tests.

    python benchmarks/range_test_validation.py --quick --parallel 2
    python benchmarks/range_test_validation.py --per-class 200 --epochs 2 --batch-size 128 --record
    python benchmarks/range_test_validation.py --plot-only
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runs_table as rt  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

RULES = ("min_div10", "steepest", "valley", "loss_min")
FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)
RECIPES = ("cifar10_fast", "cifar10_resnet9")
COLUMNS = ["recipe", "seed", "rule", "auto", "suggestion", "factor", "lr", "status", "test_acc", "epochs",
           "train_images", "batch_size", "network", "date", "machine", "run_dir"]
# Seconds per training image (forward + backward, 2 threads, batch 128) measured on the 2-core development machine,
# times 2.5 for augmentation, evaluation and logging (a 1-epoch airbench run here took 26 s for 23 steps of 128 plus
# 6,000 evaluation images): a rough estimate printed before the range tests measure the step time.
SECONDS_PER_IMAGE = {"small": 0.00026 * 2.5, "airbench": 0.0023 * 2.5, "resnet9": 0.0078 * 2.5}


def recipe_config(overrides: list[str]):
    """The train config a recipe composes to (Hydra's compose API, no run)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(rt.ROOT / "conf"), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)


def peak_overrides(scheduler: dict, lr: float, epochs: float | None, recipe_epochs: float) -> list[str]:
    """Overrides that make ``lr`` the run's peak LR (see the module docstring); a piecewise schedule in epochs is
    rescaled to fractions of the run when the budget differs from the recipe's."""
    target = str(scheduler.get("_target_") or "")
    if "max_lr" in scheduler:
        return [f"scheduler.max_lr={lr:.6g}"]
    if target.endswith("piecewise"):
        values = [float(v) for v in scheduler["values"]]
        scale = lr / max(values)
        out = [f"scheduler.values=[{','.join(f'{v * scale:.6g}' for v in values)}]"]
        if scheduler.get("unit") == "epoch" and epochs is not None and epochs != recipe_epochs:
            knots = ",".join(f"{min(1.0, float(k) / recipe_epochs):.6g}" for k in scheduler["knots"])
            out += ["scheduler.unit=fraction", f"scheduler.knots=[{knots}]"]
        return out
    return [f"optimizer.lr={lr:.6g}"]


def rank_table(rows: list[dict]) -> list[dict]:
    """Per recipe, seed and rule: accuracy at x1, its rank among the rule's points, gap to the best swept run."""
    out = []
    for recipe, seed in dict.fromkeys((r["recipe"], r["seed"]) for r in rows):
        mine = [r for r in rows if r["recipe"] == recipe and r["seed"] == seed]
        best = max((r["test_acc"] for r in mine if not math.isnan(r["test_acc"])), default=math.nan)
        for rule in dict.fromkeys(r["rule"] for r in mine):
            points = [r for r in mine if r["rule"] == rule]
            at_one = next((r for r in points if r["factor"] == 1.0), None)
            if at_one is None:
                continue
            acc = at_one["test_acc"]
            rank = 1 + sum(r["test_acc"] > acc for r in points) if not math.isnan(acc) else math.nan
            out.append({"recipe": recipe, "seed": seed, "rule": rule, "auto": at_one["auto"],
                        "suggestion": at_one["suggestion"], "test_acc_x1": 100 * acc, "rank": rank,
                        "of": len(points), "best_swept": 100 * best, "gap_points": 100 * (best - acc)})
    return out


def mean_table(ranked: list[dict]) -> list[dict]:
    out = []
    for recipe, rule in dict.fromkeys((r["recipe"], r["rule"]) for r in ranked):
        mine = [r for r in ranked if r["recipe"] == recipe and r["rule"] == rule]
        gap = sum(r["gap_points"] for r in mine) / len(mine)
        out.append({"recipe": recipe, "rule": rule, "auto": mine[0]["auto"], "seeds": len(mine),
                    "mean_acc_x1": sum(r["test_acc_x1"] for r in mine) / len(mine),
                    "mean_rank": sum(r["rank"] for r in mine) / len(mine), "mean_gap_points": gap,
                    "worst_gap_points": max(r["gap_points"] for r in mine),
                    "within_1_point": "yes" if max(r["gap_points"] for r in mine) <= 1.0 else "no"})
    return out


def configured_rule(recipe: str) -> tuple[str, bool]:
    """(range_test.suggestion, whether max_lr=auto runs max_lr trials around it) as the recipe's config has them NOW
    (an unknown recipe name: the default config's)."""
    try:
        cfg = recipe_config([f"experiment={recipe}"])
    except Exception:  # noqa: BLE001 - e.g. a CSV written for a recipe that has no experiment config
        cfg = recipe_config([])
    return str(cfg.range_test.get("suggestion")), bool(cfg.range_test.get("trial_factors"))


def rule_label(rule: str, configured: str, trials: bool) -> str:
    """Legend text of a suggestion's line: the configured rule is named as such (what max_lr=auto starts from, and
    with trials not the LR it trains at), not by the CSV's ``auto`` column, which records the rule configured when
    the runs were made."""
    if rule != configured:
        return rule
    return f"{rule} (configured rule; auto = it + max_lr trials)" if trials else f"{rule} (configured rule = auto)"


def plot_sweep(csv_path: Path, png: Path) -> Path:
    """Test accuracy against peak LR (log axis), one panel per recipe, one line per seed; dotted lines: the
    suggestions (solid: the rule the recipe's config names now, ``configured_rule``)."""
    plt = rt.pyplot()
    rows = rt.read_csv(csv_path)
    recipes = list(dict.fromkeys(r["recipe"] for r in rows))
    fig, axes = plt.subplots(1, len(recipes), figsize=(6 * len(recipes), 5), squeeze=False)
    colours = dict(zip(RULES, plt.rcParams["axes.prop_cycle"].by_key()["color"][2:]))
    for ax, recipe in zip(axes[0], recipes):
        mine = [r for r in rows if r["recipe"] == recipe]
        configured, trials = configured_rule(recipe)
        for seed in dict.fromkeys(r["seed"] for r in mine):
            points = sorted({(r["lr"], 100 * r["test_acc"]) for r in mine if r["seed"] == seed})
            ax.plot([p[0] for p in points], [p[1] for p in points], "o-", label=f"seed {seed:g}")
        for rule, lr in sorted({(r["rule"], r["suggestion"]) for r in mine}):
            ax.axvline(lr, ls="-" if rule == configured else ":", color=colours.get(rule, "grey"), alpha=0.8,
                       label=rule_label(rule, configured, trials))
        ax.set_xscale("log")
        ax.set_xlabel("peak learning rate (log scale)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=7)
        first = mine[0]
        ax.set_title(f"{recipe}: accuracy vs peak LR. Held equal: recipe, {first['epochs']:g} epochs,\n"
                     f"{rt.setup_text(first)}", fontsize=9)
    return rt.save_figure(fig, rows, png)


def summary(csv_path: Path) -> str:
    ranked = rank_table(rt.read_csv(csv_path))
    specs = {"test_acc_x1": ".2f", "best_swept": ".2f", "gap_points": ".2f", "mean_acc_x1": ".2f",
             "mean_rank": ".2g", "mean_gap_points": ".2f", "worst_gap_points": ".2f", "seed": "g", "rank": "g",
             "seeds": "g", "of": "g"}
    return ("Per seed (accuracy in %, gap in points to the best of all runs swept for that recipe and seed):\n\n"
            + rt.markdown_table(ranked, ["recipe", "seed", "rule", "auto", "suggestion", "test_acc_x1", "rank", "of",
                                         "best_swept", "gap_points"], specs)
            + "\n\nOver seeds:\n\n"
            + rt.markdown_table(mean_table(ranked), ["recipe", "rule", "auto", "seeds", "mean_acc_x1", "mean_rank",
                                                    "mean_gap_points", "worst_gap_points", "within_1_point"], specs))


def main() -> None:
    parser = rt.common_parser(__doc__, "range_test_validation")
    parser.add_argument("--recipes", nargs="+", default=None, help="experiment configs (default: the two below; "
                        "--quick: smoke)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 (--quick: 0)")
    parser.add_argument("--rules", nargs="+", default=None, choices=RULES, help="default all (--quick: range_test.suggestion)")
    parser.add_argument("--factors", type=float, nargs="+", default=None, help="default 0.25 0.5 1 2 4")
    parser.add_argument("--epochs", type=float, default=None, help="budget (default: each recipe's own)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: each recipe's own")
    parser.add_argument("--range-steps", type=int, default=100, help="optimizer steps of each range test")
    args = parser.parse_args()
    out, runs = rt.folders(args, "range_test_validation")
    csv_path = out / "range_test_validation.csv"

    if not args.plot_only:
        recipes = args.recipes or (["smoke"] if args.quick else list(RECIPES))
        seeds = args.seeds or ([0] if args.quick else [0, 1])
        rules = args.rules or ([] if args.quick else list(RULES))  # --quick: only the configured (auto) rule
        factors = args.factors or ([1.0, 2.0] if args.quick else list(FACTORS))
        if args.quick:
            data, range_steps, images = rt.QUICK_DATA + ["model=small"], rt.QUICK_RANGE_TEST, 128
        else:
            data, range_steps = rt.cifar_data(args.per_class, runs.parent), [f"range_test.num_steps={args.range_steps}"]
            images = rt.train_size(args.per_class)
        rows, plan = [], []
        for recipe in recipes:
            base = [f"experiment={recipe}", *data, *(["trainer=cpu"] if not args.quick else [])]
            base += [f"model={args.network}"] if args.network else []
            base += [f"data.batch_size={args.batch_size}"] if args.batch_size else []
            base += [f"trainer.max_epochs={args.epochs:g}", "trainer.max_steps=-1"] if args.epochs else (
                ["trainer.max_epochs=1"] if args.quick else [])
            base += args.extra
            cfg = recipe_config(base)
            epochs = args.epochs or float(cfg.trainer.max_epochs)
            steps = images // int(cfg.data.batch_size)
            if cfg.trainer.get("max_steps", -1) and cfg.trainer.max_steps > 0:
                steps = min(steps * epochs, cfg.trainer.max_steps) / epochs
            plan.append((recipe, base, cfg, epochs, steps))
            runs_per_seed = max(1, len(rules)) * len(factors)
            per_step = SECONDS_PER_IMAGE.get(cfg.model.backbone.name, 0.01) * int(cfg.data.batch_size)
            rt.print_estimate(len(seeds) * runs_per_seed, epochs * steps, per_step,
                              what=f"{recipe} ({cfg.model.backbone.name}, batch {cfg.data.batch_size}, "
                                   f"{steps:.0f} steps/epoch, at most; prior s/step)")
        for recipe, base, cfg, epochs, steps in plan:
            auto_rule = cfg.range_test.get("suggestion")
            recipe_rules = rules or [auto_rule]  # --quick: each recipe's own configured rule
            sched = OmegaConf.to_container(cfg.scheduler)
            grid = []
            for seed in seeds:
                test = rt.range_test(rt.Job(f"{recipe}_s{seed}_range_test", base + range_steps + [f"seed={seed}"]),
                                     runs, args.timeout, args.in_process)
                grid += [(seed, rule, test.suggestions[rule], f) for rule in recipe_rules for f in factors
                         if test.suggestions.get(rule)]
                n = len({f"{s}_{lr * f:.4g}" for s, _, lr, f in grid if s == seed})
                rt.print_estimate(n, epochs * steps, test.elapsed_s / max(1, len(test.lrs)),
                                  what=f"{recipe} seed {seed} sweep (s/step measured by its range test)")

            def name(seed, lr):
                return f"{recipe}_s{seed}_lr{lr:.4g}"
            own_epochs = float(recipe_config([f"experiment={recipe}"]).trainer.max_epochs)  # the recipe's budget
            jobs = [rt.Job(name(seed, s * f), base + [f"seed={seed}"] + peak_overrides(sched, s * f, epochs, own_epochs))
                    for seed, _, s, f in grid]
            done = rt.run_jobs(jobs, runs, args.parallel, args.timeout, args.in_process)
            for seed, rule, suggestion, factor in grid:
                result = done[name(seed, suggestion * factor)]
                rows.append({"recipe": recipe, "seed": seed, "rule": rule, "auto": "yes" if rule == auto_rule else "",
                             "suggestion": suggestion, "factor": factor, "lr": suggestion * factor,
                             "epochs": epochs, "train_images": images, "batch_size": int(cfg.data.batch_size),
                             "network": cfg.model.backbone.name, **rt.run_fields(result)})
        rt.write_csv(csv_path, rows, COLUMNS)
    rt.finish(args, csv_path, lambda path: [plot_sweep(path, out / "range_test_validation.png")], summary,
              "Where the LR range test's suggestions land (issue 12)")


if __name__ == "__main__":
    main()

"""What a run prints: third-party noise filtered out, warnings kept to repeat at the end, the header (what runs, on
what, and how an auto LR will be found), the line with the LR found, the closing summary (metrics, wall time, where
the files are) and, when asked, the whole config."""
from __future__ import annotations

import glob
import logging
import os
import re
import shlex
import sys
import time
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only
from rich import print as rprint
from rich.syntax import Syntax
from rich.tree import Tree

from callbacks.run.hydra_job import runtime_choices, scheduler_config, short_name
from lightning_modules.networks import network_name

log = logging.getLogger("train")  # the run's own messages (console and train.log)

# Third-party messages that say nothing about this run, dropped here and nowhere else.
NOISE = ("GPU available:", "TPU available:", "HPU available:", "Tip: For seamless cloud", "Seed set to",
         "Trainer already configured with model summary", "`Trainer.fit` stopped", "does not have many workers",
         "isinstance(treespec, LeafSpec)", "`weights_only` was not set", "exists and is not empty")


class DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in NOISE)


# "<file>:<line>: <Category>: <text>", as Python formats a warning; Lightning's formatter leaves the category out of its
# own ("<file>:<line>: <text>"), whose text may hold ": " itself (a ModelCheckpoint warning lost its first half)
WARNING_LINE = re.compile(r"^.*?:\d+: (?:[A-Za-z_][\w.]*(?:Warning|Error): )?(?P<text>.*)$")


def warning_text(line: str) -> str:
    """The text of a captured warning's first line, without its file, line and category."""
    match = WARNING_LINE.match(line)
    return match.group("text") if match else line


class KeepWarnings(logging.Handler):
    """Collects the warnings that matter (GPU fallback, repeated batches, ...) to repeat them at the end."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self.addFilter(DropNoise())

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().strip().splitlines()[0]
        if record.name == "py.warnings":
            message = warning_text(message)
        if message not in self.messages:
            self.messages.append(message)


def quiet_console() -> KeepWarnings:
    """Route Lightning's messages and Python warnings through Hydra's logging (console + train.log), minus NOISE."""
    logging.captureWarnings(True)
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):  # Lightning adds its own console handler when imported first
            logger.removeHandler(handler)
        logger.propagate = True
    root = logging.getLogger()
    for handler in root.handlers:
        handler.addFilter(DropNoise())
        if rank_zero_only.rank > 0 and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.ERROR)  # DDP's other ranks: their lines (and warnings, the same as rank 0's)
            # go to their own log file, not twice to the console; their errors still show
    keep = KeepWarnings()
    root.addHandler(keep)
    return keep


def log_header(cfg: DictConfig, model: pl.LightningModule, datamodule, lr_source: str, threads_why: str,
               speed_why: str | None = None) -> None:
    choices = runtime_choices()
    splits = [(name, getattr(datamodule, f"{name}_set", None)) for name in ("train", "val", "test")]
    val, test = splits[1][1], splits[2][1]
    if val is not None and getattr(val, "images", None) is getattr(test, "images", False):  # one split, two roles
        splits = [splits[0], ("val (= test)", val)]
    sizes = " / ".join(f"{len(ds):,} {name}" for name, ds in splits if ds is not None)
    scheduler = scheduler_config(cfg)
    peak = scheduler.get("max_lr", max(scheduler.get("values", [cfg.optimizer.get("lr")]) or [None]))
    peak = f"peak LR {peak}" if scheduler.get("_target_") else f"constant LR {cfg.optimizer.get('lr')}"  # none
    heads = ", ".join(f"{k}={v}" for k, v in datamodule.heads.items())
    for line in (
        f"experiment  {choices.get('experiment') or '(defaults)'}   task {cfg.task.name}   seed {cfg.seed}",
        f"model       {network_name(cfg.model.backbone)}: {model.num_parameters():,} parameters, heads {heads}",
        f"data        {short_name(cfg.data.get('_target_'))}: {sizes} images, batch {cfg.data.get('batch_size')}",
        f"optimizer   {short_name(cfg.optimizer.get('_target_'))}, weight decay {cfg.optimizer.get('weight_decay')}, "
        f"momentum {cfg.optimizer.get('momentum', cfg.optimizer.get('betas'))}",
        f"schedule    {short_name(scheduler.get('_target_'))}, {peak} ({lr_source})",
        f"device      {cfg.trainer.accelerator} x{cfg.trainer.devices}, precision {cfg.trainer.precision}, "
        f"threads {torch.get_num_threads()} ({threads_why})",
        *([f"speed       {speed_why}"] if speed_why else []),  # trainer=auto: what it picked and why
        f"run dir     {cfg.output_dir}",
    ):
        log.info(line)


def lr_plan(cfg: DictConfig, keys: list[str], trials: bool) -> str:
    """What the header says about the peak LR before anything runs (the header's ``lr_source``): ``config``; for
    the schedule ``keys`` set to auto, a resume's checkpoint or the search that will find them (``trials``: the
    max_lr trials follow the sweep); for task=lr_range_test, the search alone (it trains nothing)."""
    if cfg.task.name != "lr_range_test" and (not keys or cfg.ckpt_path):
        return "auto: read from the checkpoint" if keys else "config"
    test = cfg.range_test
    if short_name(test.get("_target_")) == "AccuracyRangeTest":
        length = f"{test.num_steps} steps" if test.get("num_steps") else f"{test.num_epochs:g} epochs"
        search = f"the accuracy range test: {length}"
    else:
        repeats = f" x {test.repeats} repeats" if test.get("repeats", 1) > 1 else ""
        search = f"the LR range test: {test.num_steps} steps{repeats}"
    if trials:
        search += f", then max_lr trials at {', '.join(f'{f:g}x' for f in test.trial_factors)}"
        search += " and one between the best and the next" if test.get("trial_refine") else ""
        share = test.get("update_share")
        search += f", blended with where a step moves the weights {share:.0%}" if share else ""
        optimizer = cfg.get("optimizer") or {}  # Adagrad: callbacks/range_test/step_count.py (v18)
        if short_name(optimizer.get("_target_")) == "Adagrad" and not optimizer.get("initial_accumulator_value"):
            search += "; Adagrad: carried to the run's LR peak"
    if cfg.task.name == "lr_range_test":
        return f"not trained; {search}"
    return f"{' and '.join(keys)} found by {search}"


def log_lr_found(values: dict, source: str, search=None) -> None:
    """One line after the LR search: the LRs the schedule will use and where they came from (``lr_source``), with
    the search's cost when one ran (``search``: its RangeTestResult). Nothing when ``values`` is empty."""
    if not values:
        return
    found = ", ".join(f"{key} = {value:.4g}" for key, value in values.items())
    cost = f" in {search.elapsed_s:.1f} s ({search.search_steps} optimizer steps)" if search is not None else ""
    log.info(f"lr found    {found}{cost}: {source}")


def lr_overrides(schedule: Any, max_lr: float, base_lr: float | None) -> dict:
    """What task=lr_range_test's LRs become on the command line of the run that trains with them: the schedule's
    peak (``scheduler.max_lr``); for piecewise, whose ``values`` are absolute LRs, the values scaled so that their
    peak is the LR found (the recipe's shape kept; ``optimizer.lr`` would change nothing); the optimizer's LR for
    ``scheduler=none``; and a cyclic schedule's ``base_lr`` where the accuracy test found it."""
    if "max_lr" in schedule:
        found: dict = {"scheduler.max_lr": max_lr}
    elif schedule.get("values") and max(schedule["values"]) > 0:
        peak = max(schedule["values"])
        found = {"scheduler.values": [float(v) * max_lr / peak for v in schedule["values"]]}
    else:
        found = {"optimizer.lr": max_lr}
    if base_lr is not None and "base_lr" in schedule:  # the accuracy test: both ends of a cyclic schedule
        found["scheduler.base_lr"] = base_lr
    return found


def _override_value(value: Any) -> str:
    return f"[{','.join(f'{v:.4g}' for v in value)}]" if isinstance(value, (list, tuple)) else f"{value:.4g}"


def log_train_command(overrides: list[str], values: dict) -> None:
    """After task=lr_range_test: the command that trains with what it found, this command's ``overrides`` with the
    task and any value given for the ``values`` keys (``scheduler.max_lr``, ...) replaced by the LRs found."""
    replaced = {"task", *values}
    kept = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] not in replaced]
    args = kept + [f"{key}={_override_value(value)}" for key, value in values.items()]
    log.info(f"train with  python train.py {' '.join(shlex.quote(a) for a in args)}")


def tensorboard_command(log_dir: str) -> str:
    """The command that shows ``log_dir`` in TensorBoard, to paste in any folder: this Python's own tensorboard
    (the virtual environment's), paths quoted (a run directory with a space in it broke the pasted command)."""
    own = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    program = own if os.path.exists(own) else "tensorboard"
    return f"{shlex.quote(program)} --logdir {shlex.quote(os.path.normpath(log_dir))}"


def log_logger_paths(loggers: list | tuple) -> None:
    """Where to look at the curves: the TensorBoard command, the CSV logger's metrics.csv."""
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            log.info(f"TensorBoard {tensorboard_command(logger.log_dir)}")
        elif isinstance(logger, CSVLogger):
            log.info(f"metrics     {os.path.join(os.path.normpath(logger.log_dir), 'metrics.csv')}")


def log_summary(cfg: DictConfig, status: str, metrics: dict, started: float, keep: KeepWarnings | None,
                loggers: list | tuple = ()) -> None:
    """The closing lines; ``loggers`` (the trainer's) say where to look at the curves: TensorBoard, metrics.csv."""
    shown = {k: v for k, v in metrics.items() if k.startswith(("val/", "test/")) or k == f"{cfg.monitor}_best"}
    checkpoints = sorted(glob.glob(os.path.join(cfg.output_dir, "checkpoints", "*.ckpt")))
    figures = sorted(glob.glob(os.path.join(cfg.output_dir, "**", "*.png"), recursive=True))
    log.info(f"{status} in {time.time() - started:.1f} s: " + (", ".join(f"{k} {v:.4f}" for k, v in shown.items())
                                                             or "no metrics"))
    log.info(f"checkpoints {', '.join(checkpoints) or 'none'}")
    if figures:
        log.info(f"figures     {', '.join(figures)}")
    log_logger_paths(loggers)
    for message in (keep.messages if keep else []):
        log.info(f"warning     {message}")


def log_search_cost(search: dict, train_steps: int | None) -> None:
    """One closing line on what the LR search cost against the training it tuned (``search``: how the LRs were
    found, with ``search_s`` and ``search_steps``), in optimizer steps; nothing when no search ran. Where the search
    took longer than the training, it says that a sweep of a few fixed max_lr costs less."""
    steps = search.get("search_steps") or 0
    if not steps or not train_steps:
        return
    share = steps / train_steps
    advice = (f"; on runs this short a sweep of a few fixed max_lr (-m scheduler.max_lr=...) costs less"
              if share > 1 else "")
    log.info(f"lr search   {search.get('search_s', 0):.1f} s, {steps} optimizer steps: {share:.2g}x the training's "
             f"{train_steps}{advice}")


def print_config(cfg: DictConfig) -> None:
    tree = Tree("config", guide_style="dim")
    for key, node in cfg.items():
        text = OmegaConf.to_yaml(node, resolve=True) if isinstance(node, DictConfig) else str(node)
        tree.add(f"[bold]{key}[/bold]").add(Syntax(text, "yaml", theme="ansi_dark"))
    rprint(tree)

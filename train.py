"""Train (or range-test) a classifier from a Hydra config.

    python train.py                                   # defaults: CIFAR-10, ResNet-9, one-cycle
    python train.py experiment=cifar10_resnet9        # Page's 24-epoch 94% recipe
    python train.py experiment=smoke                  # seconds on a CPU, synthetic data
    python train.py task=lr_range_test                # LR range test only
    python train.py scheduler.max_lr=auto             # range test, then one-cycle at the LR it found
    python train.py -m scheduler.max_lr=0.2,0.4,0.8 optimizer.weight_decay=5e-4,1e-3   # sweep

Reads top to bottom: seed; data; model; the LR range test when asked for (its result is written into the config,
so everything built afterwards, logged or saved sees the LR actually used); callbacks, loggers, trainer; fit; test.
"""
from __future__ import annotations

import glob
import inspect
import json
import logging
import math
import os
import re
import time
import warnings

import hydra
import pytorch_lightning as pl
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger
from rich import print as rprint
from rich.syntax import Syntax
from rich.tree import Tree

from callbacks.divergence import Diverged
from callbacks.interrupt import Interrupted
from callbacks.range_test.finder import RangeTestResult, find_lr
from callbacks.schedules.lr_schedule import LRSchedule
from callbacks.run_config import RunConfig, read_checkpoint, saved_run_config
from callbacks.sweeps.resume import resume_decision
from lightning_modules.predict import predict_from_config

AUTO_KEYS = ("max_lr", "base_lr")  # schedule keys the range test can fill in ("auto")


log = logging.getLogger("train")

# Third-party messages that say nothing about this run, dropped here and nowhere else.
NOISE = ("GPU available:", "TPU available:", "HPU available:", "Tip: For seamless cloud", "Seed set to",
         "Trainer already configured with model summary", "`Trainer.fit` stopped", "does not have many workers",
         "isinstance(treespec, LeafSpec)", "`weights_only` was not set", "exists and is not empty")


class DropNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in NOISE)


class KeepWarnings(logging.Handler):
    """Collects the warnings that matter (GPU fallback, repeated batches, ...) to repeat them at the end."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self.addFilter(DropNoise())

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage().strip().splitlines()[0]
        if record.name == "py.warnings":  # "<file>:<line>: <Category>: <text>" -> "<text>"
            message = message.split(": ", 2)[-1] if message.count(": ") >= 2 else message
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
    keep = KeepWarnings()
    root.addHandler(keep)
    return keep


def log_header(cfg: DictConfig, model: pl.LightningModule, datamodule, lr_source: str, threads_why: str) -> None:
    choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
    splits = [(name, getattr(datamodule, f"{name}_set", None)) for name in ("train", "val", "test")]
    sizes = " / ".join(f"{len(ds):,} {name}" for name, ds in splits if ds is not None)
    scheduler = cfg.get("scheduler") or {}
    peak = scheduler.get("max_lr", max(scheduler.get("values", [cfg.optimizer.get("lr")]) or [None]))
    heads = ", ".join(f"{k}={v}" for k, v in datamodule.heads.items())
    for line in (
        f"experiment  {choices.get('experiment') or '(defaults)'}   task {cfg.task.name}   seed {cfg.seed}",
        f"model       {cfg.model.backbone.name}: {model.num_parameters():,} parameters, heads {heads}",
        f"data        {short_name(cfg.data.get('_target_'))}: {sizes} images, batch {cfg.data.get('batch_size')}",
        f"optimizer   {short_name(cfg.optimizer.get('_target_'))}, weight decay {cfg.optimizer.get('weight_decay')}, "
        f"momentum {cfg.optimizer.get('momentum', cfg.optimizer.get('betas'))}",
        f"schedule    {short_name(scheduler.get('_target_'))}, peak LR {peak} ({lr_source})",
        f"device      {cfg.trainer.accelerator} x{cfg.trainer.devices}, precision {cfg.trainer.precision}, "
        f"threads {torch.get_num_threads()} ({threads_why})",
        f"run dir     {cfg.output_dir}",
    ):
        log.info(line)


def log_summary(cfg: DictConfig, status: str, metrics: dict, started: float, keep: KeepWarnings | None) -> None:
    shown = {k: v for k, v in metrics.items() if k.startswith(("val/", "test/")) or k == f"{cfg.monitor}_best"}
    checkpoints = sorted(glob.glob(os.path.join(cfg.output_dir, "checkpoints", "*.ckpt")))
    figures = sorted(glob.glob(os.path.join(cfg.output_dir, "**", "*.png"), recursive=True))
    log.info(f"{status} in {time.time() - started:.1f} s: " + (", ".join(f"{k} {v:.4f}" for k, v in shown.items())
                                                             or "no metrics"))
    log.info(f"checkpoints {', '.join(checkpoints) or 'none'}")
    if figures:
        log.info(f"figures     {', '.join(figures)}")
    log.info(f"TensorBoard .venv/bin/tensorboard --logdir {os.path.join(cfg.output_dir, 'tensorboard')}")
    for message in (keep.messages if keep else []):
        log.info(f"warning     {message}")


def fall_back_without_gpu(cfg: DictConfig) -> None:
    """A config that asks for a GPU (trainer=gpu/ddp) on a machine without one runs on the CPU instead, with a
    warning: fp32 instead of fp16 (bf16 runs on CPUs and is kept), no cudnn.benchmark, no compile (minutes of
    compiling on few cores). channels_last is kept: it is oneDNN's native conv layout on x86 CPUs too (same math,
    faster). Explicit CPU configs are left as they are."""
    if torch.cuda.is_available():
        return
    wants_gpu = cfg.trainer.get("accelerator") in ("gpu", "cuda")
    fallbacks = {
        "trainer.accelerator": (wants_gpu, "cpu"),
        "trainer.precision": (str(cfg.trainer.get("precision")).startswith("16"), "32-true"),  # fp16, not bf16
        "trainer.benchmark": (wants_gpu and bool(cfg.trainer.get("benchmark")), False),
        "speed.compile": (wants_gpu and bool(cfg.speed.get("compile")), False),
    }
    changed = [f"{key}={value}" for key, (fall_back, value) in fallbacks.items() if fall_back]
    for key, (fall_back, value) in fallbacks.items():
        if fall_back:
            OmegaConf.update(cfg, key, value)
    if changed:
        warnings.warn(f"No CUDA GPU found: falling back to {', '.join(changed)}", stacklevel=2)


def thread_count(setting, omp: str | None = None, affinity: int | None = None, cgroup: str | None = None,
                 n_jobs: int = 1, cpus_per_task: int | None = None, launcher: str = "") -> tuple[int, str]:
    """Torch's intra-op threads for this process, and why (pure: the machine is read by ``usable_threads``).

    ``setting``: ``speed.threads`` (an int >= 1 wins; null: work it out). Usable cores: the smallest of
    ``omp`` (OMP_NUM_THREADS), ``affinity`` (CPUs this process may run on) and ``cgroup`` (cgroup CPU limit as
    "quota period", v2 ``cpu.max`` style; "max" or a negative quota: no limit). Then shared among the sweep jobs that
    run at once: ``cpus_per_task`` (submitit) caps each job, else ``n_jobs`` (joblib's n_jobs; negative: cores + 1 +
    n_jobs jobs, so -1 is one per core) divides the cores. Never below 1."""
    if setting is not None:
        if isinstance(setting, bool) or not isinstance(setting, int) or setting < 1:
            raise ValueError(f"speed.threads must be null (the usable cores, shared among parallel sweep jobs) or an "
                             f"integer >= 1, got {setting!r}")
        return setting, "speed.threads"
    limits = {}
    if affinity is not None and affinity >= 1:
        limits["CPU affinity"] = affinity
    try:
        omp_threads = int(str(omp).split(",")[0])  # "4,2": nested levels, the first is ours
        if omp_threads >= 1:
            limits[f"OMP_NUM_THREADS={omp}"] = omp_threads
    except ValueError:
        pass
    try:
        quota, period = str(cgroup).split()[:2]
        if quota != "max" and float(quota) > 0 and float(period) > 0:
            limits[f"cgroup CPU limit {float(quota) / float(period):g}"] = max(1, int(float(quota) // float(period)))
    except ValueError:
        pass
    if not limits:
        return 1, "no core count found"
    source = min(limits, key=limits.get)
    cores = limits[source]
    why = f"{cores} cores, {source}"
    if cpus_per_task:
        threads = min(cores, int(cpus_per_task))
        return threads, f"{why}; {launcher or 'launcher'} cpus_per_task {cpus_per_task}"
    jobs = max(1, cores + 1 + n_jobs) if n_jobs < 0 else max(1, n_jobs)
    if jobs == 1:
        return cores, why
    return max(1, cores // jobs), f"{why} / {jobs} parallel jobs ({launcher or 'launcher'} n_jobs={n_jobs})"


def cgroup_cpu_limit() -> str | None:
    """This machine's cgroup CPU limit as "quota period" (v2 ``cpu.max``; v1 ``cfs_quota_us cfs_period_us``)."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            return f.read().strip()
    except OSError:
        pass
    for folder in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"):
        try:
            with open(f"{folder}/cpu.cfs_quota_us") as q, open(f"{folder}/cpu.cfs_period_us") as p:
                return f"{q.read().strip()} {p.read().strip()}"
        except OSError:
            continue
    return None


def parallel_jobs() -> dict:
    """How this job shares the machine with the other jobs of its sweep, from Hydra's launcher config: joblib's
    n_jobs, submitit's cpus_per_task. (submitit_local starts every job at once and Hydra does not tell a job how
    many there are: without cpus_per_task its jobs are not divided.)"""
    if not is_multirun():
        return {}
    launcher = HydraConfig.get().launcher
    target = str(launcher.get("_target_", ""))
    if "joblib" in target.lower():
        return {"n_jobs": int(launcher.get("n_jobs", -1)), "launcher": "joblib"}
    if "submitit" in target.lower():
        return {"cpus_per_task": launcher.get("cpus_per_task"), "launcher": "submitit"}
    return {}


def usable_threads(cfg: DictConfig) -> tuple[int, str]:
    """``thread_count`` on this machine: OMP_NUM_THREADS, CPU affinity, cgroup limit and the sweep's launcher."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return thread_count((cfg.get("speed") or {}).get("threads"), os.environ.get("OMP_NUM_THREADS"), affinity,
                        cgroup_cpu_limit(), **parallel_jobs())


def print_config(cfg: DictConfig) -> None:
    tree = Tree("config", guide_style="dim")
    for key, node in cfg.items():
        text = OmegaConf.to_yaml(node, resolve=True) if isinstance(node, DictConfig) else str(node)
        tree.add(f"[bold]{key}[/bold]").add(Syntax(text, "yaml", theme="ansi_dark"))
    rprint(tree)


def auto_keys(cfg: DictConfig) -> list[str]:
    scheduler = cfg.get("scheduler") or {}
    return [key for key in AUTO_KEYS if scheduler.get(key) == "auto"]


def check_schedule(cfg: DictConfig) -> None:
    """Build the schedule once with stand-ins for its "auto" keys, so a bad shape fails now, not after a
    minutes-long range test."""
    target = (cfg.get("scheduler") or {}).get("_target_")
    if target:
        takes = list(inspect.signature(get_method(target)).parameters)[2:]
        foreign = [key for key in cfg.scheduler if not key.startswith("_") and key not in takes]
        if foreign:
            experiment = HydraConfig.get().runtime.choices.get("experiment") if HydraConfig.initialized() else None
            origin = f"experiment={experiment} or an override" if experiment else "an override"
            raise ValueError(f"scheduler.{foreign[0]} does not apply to the {short_name(target)} schedule (it comes "
                             f"from {origin}); that schedule takes: {', '.join(k for k in takes if k != 'steps_per_epoch')}")
        stand_ins = {"max_lr": 1e9, "base_lr": 0.0}
        LRSchedule(instantiate(cfg.scheduler, **{key: stand_ins[key] for key in auto_keys(cfg)}))


def check_run_length(cfg: DictConfig) -> None:
    """Lightning accepts these and then trains nothing (or divides by zero): refuse them up front."""
    trainer = cfg.trainer
    steps, epochs = trainer.get("max_steps", -1), trainer.get("max_epochs")
    if steps is not None and steps != -1 and not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"trainer.max_steps must be -1 (no cap) or an integer >= 1, got {steps!r}")
    if epochs is not None and epochs != -1 and not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"trainer.max_epochs must be an integer >= 1 (or -1 with trainer.max_steps >= 1), got {epochs!r}")
    if epochs == -1 and (steps is None or steps == -1):
        raise ValueError("trainer.max_epochs=-1 needs trainer.max_steps >= 1: the run would never end")
    limit = trainer.get("limit_train_batches")
    if limit is not None and not (isinstance(limit, (int, float)) and limit > 0):
        raise ValueError(f"trainer.limit_train_batches must be null, a fraction in (0, 1] or a number of batches >= 1, "
                         f"got {limit!r}")
    accumulate = trainer.get("accumulate_grad_batches", 1)
    if not (isinstance(accumulate, int) and accumulate >= 1):
        raise ValueError(f"trainer.accumulate_grad_batches must be an integer >= 1, got {accumulate!r}")


def instantiate_group(cfg: DictConfig, group: str, **kwargs):
    """``instantiate(cfg.<group>)``, naming a key that the chosen option does not take (e.g. an experiment written
    for another data set) instead of a bare TypeError."""
    try:
        return instantiate(cfg[group], **kwargs)
    except InstantiationException as err:
        match = re.search(r"unexpected keyword argument '(\w+)'", str(err.__cause__ or err))
        if match is None:
            raise
        choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else {}
        experiment = choices.get("experiment")
        origin = f"experiment={experiment} or an override" if experiment else "an override"
        raise ValueError(f"{group}.{match.group(1)} does not apply to {group}={choices.get(group, short_name(cfg[group].get('_target_')))} "
                         f"(it comes from {origin}); remove it or choose another {group}") from None


def run_range_test(cfg: DictConfig, model: pl.LightningModule, datamodule: pl.LightningDataModule) -> RangeTestResult:
    """The range test as its own phase, on the run's trainer settings; the model comes back untouched."""
    trainer_kwargs = {k: v for k, v in OmegaConf.to_container(cfg.trainer, resolve=True).items() if k != "_target_"}
    result = find_lr(model, datamodule, instantiate(cfg.range_test), **trainer_kwargs)
    result.save(cfg.output_dir)
    result.print()
    return result


def resolve_auto_lrs(cfg: DictConfig, model: pl.LightningModule, datamodule: pl.LightningDataModule):
    """Write the LRs the schedule will use into the config, in place of "auto": from the checkpoint when resuming
    (the range test does not run again), else from a range test. Returns the range test's result, if one ran."""
    keys = auto_keys(cfg)
    if not keys:
        return None
    if cfg.ckpt_path:
        saved = saved_run_config(cfg.ckpt_path)["scheduler"]
        for key in keys:
            cfg.scheduler[key] = saved[key]
        return None
    result = run_range_test(cfg, model, datamodule)
    found = {"max_lr": result.lr, "base_lr": result.base_lr}
    for key in keys:
        if found[key] is None:
            raise ValueError(f"scheduler.{key}=auto needs range_test=accuracy (Smith's accuracy test reports base_lr); "
                             f"range_test={result.kind} reports only max_lr")
        cfg.scheduler[key] = float(found[key])
    return result


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    callbacks: list[pl.Callback] = [RunConfig(OmegaConf.to_container(cfg, resolve=True))]
    if (cfg.get("scheduler") or {}).get("_target_"):
        callbacks.append(LRSchedule(instantiate(cfg.scheduler), plot=cfg.plot_schedule))
    return callbacks + [instantiate(c) for c in cfg.callbacks.values() if c is not None]


def job_overrides() -> list[str]:
    """This job's command-line overrides (none outside a Hydra run, e.g. when a test calls run())."""
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def is_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def worst_value(cfg: DictConfig) -> float:
    """What a diverged or failed job returns to a sweeper: the worst possible value of the monitored metric."""
    return -math.inf if cfg.monitor_mode == "max" else math.inf


def short_name(target: str | None) -> str:
    return str(target).rsplit(".", 1)[-1] if target else "none"


def tensorboard_hparams(cfg: DictConfig, lr_source: str, status: str) -> dict:
    """What a researcher compares across runs, swept keys first: not every config leaf."""
    flat = {}

    def walk(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}/")
            else:
                flat[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)

    walk(OmegaConf.to_container(cfg, resolve=True))
    swept = [o.split("=", 1)[0].lstrip("+~").replace(".", "/") for o in job_overrides()]
    chosen = {key: flat[key] for key in swept if key in flat}
    scheduler = cfg.get("scheduler") or {}
    chosen.update({
        "network": cfg.model.backbone.name, "data": short_name(cfg.data.get("_target_")),
        "optimizer": short_name(cfg.optimizer.get("_target_")), "optimizer/lr": flat.get("optimizer/lr"),
        "optimizer/weight_decay": flat.get("optimizer/weight_decay"), "optimizer/momentum": flat.get("optimizer/momentum"),
        "schedule": short_name(scheduler.get("_target_")),
        **{f"scheduler/{k}": flat[f"scheduler/{k}"] for k in scheduler if not str(k).startswith("_")
           and f"scheduler/{k}" in flat},
        "scheduler/max_lr_source": lr_source, "data/batch_size": flat.get("data/batch_size"),
        "trainer/max_epochs": flat.get("trainer/max_epochs"), "trainer/max_steps": flat.get("trainer/max_steps"),
        "seed": cfg.seed, "status": status,
    })
    return {k: v for k, v in chosen.items() if v is not None}


def save_result(cfg: DictConfig, **fields) -> dict:
    """result.json in the run directory: what a sweep summary reads. Written when training starts (status
    "running") and rewritten with the outcome, so an interrupted job is still a row."""
    path = os.path.join(cfg.output_dir, "result.json")
    record = {}
    if os.path.exists(path):
        with open(path) as f:
            record = json.load(f)
    record.update(fields)
    os.makedirs(cfg.output_dir, exist_ok=True)
    with open(path + ".tmp", "w") as f:
        json.dump(record, f, indent=2, default=str)
    os.replace(path + ".tmp", path)  # never a half-written file
    return record


def log_run_hparams(trainer: pl.Trainer, cfg: DictConfig, lr_source: str, status: str, metrics: dict) -> None:
    hparams = tensorboard_hparams(cfg, lr_source, status)
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(hparams, metrics)
        else:
            logger.log_hyperparams(hparams)
        logger.save()


def continue_in_run_dir(cfg: DictConfig) -> None:
    """``ckpt_path=<run dir>/checkpoints/<name>.ckpt`` continues in that run's directory (and TensorBoard run), so a
    resumed run adds to its own logs instead of starting an overlapping second run."""
    if cfg.ckpt_path:
        folder = os.path.dirname(os.path.abspath(str(cfg.ckpt_path)))
        run_dir = os.path.dirname(folder)
        if os.path.basename(folder) == "checkpoints" and os.path.isdir(os.path.join(run_dir, ".hydra")):
            cfg.output_dir = run_dir


def run(cfg: DictConfig, keep: KeepWarnings | None = None) -> float | None:
    if cfg.task.name == "predict":  # prediction from a checkpoint alone: lightning_modules/predict.py
        return predict_from_config(cfg)
    started = time.time()
    if cfg.get("resume"):  # +resume=true: rerunning a sweep in its old hydra.sweep.dir
        action, detail = resume_decision(cfg.output_dir, overrides=job_overrides())
        if action == "skip":  # completed or diverged before: its result stands
            log.info(f"resume: {cfg.output_dir} already {detail.get('status')}; skipped")
            return detail.get("objective")
        if action == "resume":  # interrupted or failed after a checkpoint
            cfg.ckpt_path = detail
    continue_in_run_dir(cfg)
    fall_back_without_gpu(cfg)
    threads, threads_why = usable_threads(cfg)  # a bad speed.threads fails here, before any data is read
    torch.set_num_threads(threads)
    pl.seed_everything(cfg.seed, workers=True)

    check_run_length(cfg)
    if cfg.ckpt_path:
        read_checkpoint(cfg.ckpt_path)  # a missing, truncated or foreign file fails now, with its name
    datamodule = instantiate_group(cfg, "data")
    datamodule.prepare_data()  # missing or corrupt data fails here, before anything is built
    datamodule.setup("fit")

    model = instantiate_group(cfg, "model", heads=datamodule.heads, optimizer=instantiate_group(cfg, "optimizer"))

    if cfg.task.name == "lr_range_test":
        return run_range_test(cfg, model, datamodule).lr
    check_schedule(cfg)
    asked = list(auto_keys(cfg))
    range_test = resolve_auto_lrs(cfg, model, datamodule)
    lr_source = (f"range_test ({range_test.rule})" if range_test else "checkpoint" if asked else "config")
    os.makedirs(cfg.output_dir, exist_ok=True)
    OmegaConf.save(cfg, os.path.join(cfg.output_dir, "config.yaml"), resolve=True)  # what ran; .hydra/: what was asked
    if cfg.print_config:
        print_config(cfg)
    log_header(cfg, model, datamodule, lr_source, threads_why)
    max_lr = (cfg.get("scheduler") or {}).get("max_lr", cfg.optimizer.get("lr"))
    save_result(cfg, status="running", reason="", overrides=job_overrides(), monitor=cfg.monitor,
                monitor_mode=cfg.monitor_mode, lr={"max_lr": max_lr, "source": lr_source}, run_dir=cfg.output_dir)

    callbacks = build_callbacks(cfg)
    loggers = [instantiate(c) for c in cfg.logger.values() if c is not None]
    if range_test is not None:
        range_test.log_to(loggers)
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)

    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    except Diverged as err:  # a result, not a crash: no checkpoint from the broken weights, the sweep goes on
        last = os.path.join(cfg.output_dir, "checkpoints", "last.ckpt")
        log.warning(f"Diverged: {err}. Last good checkpoint: "
                    f"{last if os.path.exists(last) else 'none (it diverged in the first epoch)'}")
        log_run_hparams(trainer, cfg, lr_source, "diverged", {"hp_metric": math.nan})
        save_result(cfg, status="diverged", reason=str(err), metrics={}, objective=worst_value(cfg),
                    epochs=trainer.current_epoch, steps=err.step, wall_s=round(time.time() - started, 2),
                    checkpoint=last if os.path.exists(last) else None)
        log_summary(cfg, "diverged", {}, started, keep)
        return worst_value(cfg)
    except Interrupted as err:
        save_result(cfg, status="interrupted", reason=str(err), epochs=trainer.current_epoch, steps=err.step,
                    wall_s=round(time.time() - started, 2), checkpoint=err.checkpoint)
        log_summary(cfg, "interrupted", {}, started, keep)
        log.warning(f"Interrupted ({err}). Resume in the same run directory with the same overrides plus "
                    f"ckpt_path={err.checkpoint}")
        raise
    trainer.save_checkpoint(f"{cfg.output_dir}/checkpoints/last.ckpt")  # the final weights, even mid-epoch

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    best = next((cb.best_model_score for cb in trainer.checkpoint_callbacks if cb.monitor == cfg.monitor), None)
    if best is not None:
        metrics[f"{cfg.monitor}_best"] = float(best)
    if cfg.test:
        metrics.update({k: float(v) for k, v in trainer.test(model, datamodule=datamodule, verbose=False)[0].items()})
    summary = {f"final/{k}": v for k, v in metrics.items() if k in (cfg.monitor, f"{cfg.monitor}_best", "test/acc")}
    hp_metric = metrics.get("test/acc", metrics.get(cfg.monitor, math.nan))
    log_run_hparams(trainer, cfg, lr_source, "completed", {**summary, "hp_metric": hp_metric})
    save_result(cfg, status="completed", metrics=metrics, objective=metrics.get(cfg.monitor),
                epochs=trainer.current_epoch, steps=trainer.global_step, wall_s=round(time.time() - started, 2),
                checkpoint=os.path.join(cfg.output_dir, "checkpoints", "last.ckpt"))
    log_summary(cfg, "completed", metrics, started, keep)
    return metrics.get(cfg.monitor)


# The project's start-up errors: every check of a config key, file or checkpoint raises one of these with a message
# that names the key or path and what is allowed; train.py prints that message alone (no traceback wall).
START_UP_ERRORS = (ValueError, FileNotFoundError, InstantiationException)


def plain_message(err: BaseException) -> str:
    """The message of the error a config check raised (unwrapping Hydra's InstantiationException)."""
    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    return str(err)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    keep = quiet_console()
    try:
        return run(cfg, keep)
    except Interrupted:
        raise SystemExit(130) from None  # 128 + SIGINT, as shells report an interrupted command
    except Exception as err:
        if is_multirun():  # one broken job is a row of the sweep summary, not the end of the sweep
            save_result(cfg, status="failed", reason=f"{type(err).__name__}: {plain_message(err)}",
                        objective=worst_value(cfg), overrides=job_overrides(), run_dir=cfg.output_dir)
            log.exception("job failed; the sweep goes on")
            return worst_value(cfg)
        if isinstance(err, START_UP_ERRORS) and os.environ.get("HYDRA_FULL_ERROR") != "1":
            log.error(f"Error: {plain_message(err)}")
            raise SystemExit(2) from None
        raise

if __name__ == "__main__":
    main()

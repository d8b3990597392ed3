"""Train (or range-test) a classifier from a Hydra config.

    python train.py                                   # defaults: CIFAR-10, ResNet-9, one-cycle
    python train.py experiment=cifar10_resnet9        # Page's 24-epoch 94% recipe
    python train.py experiment=smoke                  # seconds on a CPU, synthetic data
    python train.py task=lr_range_test                # LR range test only
    python train.py task=eval ckpt_path=CKPT          # a checkpoint's validation and test metrics (same model=)
    python train.py scheduler.max_lr=auto             # range test, then one-cycle at the LR it found
    python train.py -m scheduler.max_lr=0.2,0.4,0.8 optimizer.weight_decay=5e-4,1e-3   # sweep

Reads top to bottom: seed; data; model; the LR range test when asked for (its result is written into the config,
so everything built afterwards, logged or saved sees the LR actually used); callbacks, loggers, trainer; fit; test.
What surrounds the story (console, machine, config checks, the Hydra job, hparams, result.json) is in callbacks/run/.
"""
from __future__ import annotations

import math
import os
import sys
import time
from functools import partial

import hydra
import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

from callbacks.divergence import Diverged
from callbacks.interrupt import Interrupted, SearchInterrupted, stop_at_once
from callbacks.range_test.accuracy import NoBounds
from callbacks.range_test.finder import RangeTestResult, find_lr
from callbacks.run.config_checks import (START_UP_ERRORS, check_above_floor, check_input_size, check_loggers,
                                         check_monitor, check_optimizer, check_run_length, check_schedule, check_seed,
                                         instantiate_group, logger_configs, lr_floor, plain_message)
from callbacks.run.command_line import main_with_plain_errors
from callbacks.run.console import (KeepWarnings, log, log_header, log_logger_paths, log_lr_found, log_train_command,
                                   lr_overrides, lr_plan, print_config, quiet_console)
from callbacks.run.ending import Ending
from callbacks.run.hydra_job import (continue_in_run_dir, how_to_resume, is_multirun, job_overrides,
                                     null_group_overrides, resume_sweep_job, scheduler_config)
from callbacks.run.intervals import ValidateLastStep, log_interval
from callbacks.run.machine import fall_back_without_gpu, speed_settings, usable_threads
from callbacks.run.result_file import read_result, worst_value, write_config, write_result
from callbacks.run_config import (RunConfig, check_same_classes, check_weights_fit, read_resumed,
                                  saved_run_config)
from callbacks.schedules.lr_schedule import LRSchedule
from callbacks.sweeps.resume import ResumeRefused
from lightning_modules.evaluate import evaluate_from_config
from lightning_modules.predict import predict_from_config

AUTO = "auto"  # a schedule LR the range test fills in (scheduler.max_lr=auto)
# The schedule keys that take AUTO, each with a stand-in that passes the schedule's own checks (check_schedule runs
# before the range test). conf/train.yaml's sweep check lists the same keys (tests/test_sweep_summary.py holds them equal).
AUTO_KEYS = {"max_lr": 1e9, "base_lr": 0.0}
# The speed keys that take AUTO (trainer=auto, conf/trainer/auto.yaml), each with the machine.SpeedSettings field
# that fills it.
SPEED_AUTO_KEYS = {"trainer.precision": "precision", "trainer.benchmark": "benchmark",
                   "speed.channels_last": "channels_last"}


def resolve_auto_speed(cfg: DictConfig) -> str | None:
    """Write this machine's speed settings (machine.speed_settings) into the config in place of AUTO, before
    anything is built; a value given on the command line stays. Returns what was picked and why (the header's line,
    also kept in speed.auto_reason); None when nothing was AUTO. A resumed run on the same machine gets the same."""
    asked = [key for key in SPEED_AUTO_KEYS if OmegaConf.select(cfg, key) == AUTO]
    if not asked:
        return None
    picked = speed_settings(cfg.trainer.get("accelerator", "auto"))
    for key in asked:
        OmegaConf.update(cfg, key, getattr(picked, SPEED_AUTO_KEYS[key]))
    given = "" if "trainer.precision" in asked else " (trainer.precision given)"
    parts = ([f"{cfg.trainer.precision}{given}"] + ["channels_last"] * bool(cfg.speed.get("channels_last"))
             + ["cudnn.benchmark"] * bool(cfg.trainer.get("benchmark")))
    why = f"trainer=auto: {' + '.join(parts)} ({picked.reason})"
    if "auto_reason" in cfg.speed:
        cfg.speed.auto_reason = why
    return why


def set_up_machine(cfg: DictConfig) -> tuple[str | None, str]:
    """No GPU: its settings fall back; trainer=auto: precision, channels_last and cudnn.benchmark for this machine
    (:func:`resolve_auto_speed`); torch's threads (a bad speed.threads fails here, before any data is read). Returns
    why the speed settings and the threads are what they are, for the header."""
    fall_back_without_gpu(cfg)
    speed_why = resolve_auto_speed(cfg)
    threads, threads_why = usable_threads(cfg)
    torch.set_num_threads(threads)
    return speed_why, threads_why


def auto_keys(cfg: DictConfig) -> list[str]:
    """The schedule keys set to AUTO (in any case: ``Auto`` is written back as AUTO); another word in one of them,
    or AUTO in ``optimizer.lr``, is a start-up error saying what takes AUTO."""
    schedule = scheduler_config(cfg)
    for key in AUTO_KEYS:
        if isinstance(schedule.get(key), str) and schedule[key] != AUTO:
            if schedule[key].strip().lower() != AUTO:
                raise ValueError(f"scheduler.{key} must be a number or {AUTO} (the LR range test finds it), got "
                                 f"{schedule[key]!r}")
            cfg.scheduler[key] = AUTO
    if str(cfg.optimizer.get("lr")).strip().lower() == AUTO:
        raise ValueError(f"optimizer.lr takes a number; {AUTO} goes in scheduler.max_lr (or base_lr), whose schedule "
                         f"sets the LR. With scheduler=none (a constant LR) run task=lr_range_test first: it ends "
                         f"with the command that trains at optimizer.lr=<the LR found>")
    return [key for key in AUTO_KEYS if schedule.get(key) == AUTO]


def runs_trials(cfg: DictConfig) -> bool:
    """Whether max_lr trials follow the sweep: range_test.trial_factors, a schedule with a max_lr, and no other
    LR auto (base_lr=auto: the accuracy test's answer)."""
    other_autos = [key for key in auto_keys(cfg) if key != "max_lr"]
    return bool(cfg.range_test.get("trial_factors")) and "max_lr" in scheduler_config(cfg) and not other_autos


def run_range_test(cfg: DictConfig, model: pl.LightningModule, datamodule: pl.LightningDataModule) -> RangeTestResult:
    """The range test as its own phase, on the run's trainer settings; the model comes back untouched. Its max_lr
    trials (range_test.trial_factors) train the configured schedule's shape at each candidate peak."""
    # the range test's own Trainer profiles nothing (debug=profiler's report is the training run's)
    trainer_kwargs = {k: v for k, v in OmegaConf.to_container(cfg.trainer, resolve=True).items()
                      if k not in ("_target_", "profiler")}
    # (max_lr=peak) -> the run's schedule; no trial at or below the peak's fixed floor (a cyclic base_lr)
    floor = lr_floor(cfg)
    trials = ({"trial_schedule": partial(trial_schedule, cfg), "trial_floor": floor and floor[1]}
              if runs_trials(cfg) else {})
    failure = ""
    try:
        with stop_at_once("LR search"):
            result = find_lr(model, datamodule, instantiate(cfg.range_test, **trials), **trainer_kwargs)
    except SearchInterrupted as err:
        reason = f"{err}. {how_to_resume(None)}"
        write_result(cfg.output_dir, status="interrupted", reason=reason, overrides=job_overrides(),
                     run_dir=cfg.output_dir)
        log.warning(f"Interrupted: {reason}")
        raise
    except NoBounds as err:  # saved all the same: the accuracy test's points, to read the bounds off by eye
        result, failure = err.result, f"{err} (its points: {cfg.output_dir}/accuracy_range_test.png)"
    if rank_zero_only.rank == 0:
        result.save(cfg.output_dir)  # DDP: every rank found the same; one writes the files and prints the tables
    if failure:
        write_result(cfg.output_dir, status="failed", reason=failure, overrides=job_overrides(), run_dir=cfg.output_dir)
        raise ValueError(failure)
    if rank_zero_only.rank == 0:
        result.print()
    return result


def no_search(source: str) -> dict:  # how the LRs were found when no search ran: ``source``, at no cost
    return {"source": source, "search_s": 0.0, "search_steps": 0}


def resolve_auto_lrs(cfg: DictConfig, keys: list[str], model: pl.LightningModule,
                     datamodule: pl.LightningDataModule) -> tuple[RangeTestResult | None, dict, str]:
    """Write the LRs the schedule will use into the config in place of AUTO (``keys``): from the checkpoint when
    resuming (the range test does not run again), else from a range test. Returns the range test's result (if one
    ran), how the LRs were found (``{source, search_s, search_steps}``: a resumed run's are the first run's, read from
    the checkpoint) and this run's ``lr_source`` (a resumed run's: ``checkpoint: <the first run's>``)."""
    if not keys:
        return None, no_search("config"), "config"
    if cfg.ckpt_path:
        saved, search = saved_run_config(cfg.ckpt_path)
        for key in keys:
            cfg.scheduler[key] = saved["scheduler"][key]
        if search is None:  # a checkpoint written before the search was saved in it
            return None, no_search("checkpoint"), "checkpoint"
        return None, search, f"checkpoint: {search['source']}"
    result = run_range_test(cfg, model, datamodule)
    search = {"source": result.source, "search_s": round(result.elapsed_s, 2), "search_steps": result.search_steps}
    if result.no_evidence:  # training at the sweep's last LR would be a guess: stop, say what to do, record it
        reason = (f"scheduler.max_lr={AUTO}: the LR search found no evidence for any max_lr ({result.no_evidence}; "
                  f"curve: {cfg.output_dir}/lr_range_test.png). Give scheduler.max_lr a number (or sweep a few with "
                  f"-m), or let the search see more: range_test.num_steps, range_test.trial_min_images, "
                  f"range_test.max_lr")
        write_result(cfg.output_dir, status="failed", reason=reason, overrides=job_overrides(), run_dir=cfg.output_dir,
                     lr={"max_lr": None, **search})
        raise ValueError(reason)
    found = {"max_lr": result.lr, "base_lr": result.base_lr}
    for key in keys:
        if found[key] is None:
            raise ValueError(f"scheduler.{key}={AUTO} needs range_test=accuracy (Smith's accuracy test reports "
                             f"base_lr); range_test={result.kind} reports only max_lr")
        cfg.scheduler[key] = float(found[key])
    if "max_lr" in keys:
        check_above_floor(cfg, cfg.scheduler.max_lr, "found")
    return result, search, result.source


def trial_schedule(cfg: DictConfig, max_lr: float):  # the run's schedule at a max_lr trial's peak
    check_above_floor(cfg, max_lr, "would try a trial at")
    return instantiate(cfg.scheduler, max_lr=max_lr)


def build_callbacks(cfg: DictConfig, lr_found: dict | None = None) -> list[pl.Callback]:
    """``lr_found``: how the LRs were found (resolve_auto_lrs), saved in checkpoints for a resumed run to say."""
    callbacks: list[pl.Callback] = [RunConfig(OmegaConf.to_container(cfg, resolve=True), lr_found),
                                    ValidateLastStep()]
    if scheduler_config(cfg).get("_target_"):
        callbacks.append(LRSchedule(instantiate(cfg.scheduler), plot=cfg.plot_schedule))
    callbacks += [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if not logger_configs(cfg):  # no logger: nothing to monitor the LR to (and Lightning's monitor refuses to start)
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.LearningRateMonitor)]
    if cfg.trainer.get("enable_progress_bar") is False:  # bars off: Lightning refuses a progress-bar callback then
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.ProgressBar)]
    return callbacks


def build_loggers(cfg: DictConfig) -> list:
    """The configured loggers; none for ``~logger`` / ``logger=null`` (result.json and figures are written anyway)."""
    return [instantiate(c) for c in logger_configs(cfg).values()]


def range_test_task(cfg: DictConfig, model: pl.LightningModule, datamodule: pl.LightningDataModule) -> float:
    """task=lr_range_test: the range test alone. Its files go to the run directory, its curve and figure also to
    the configured loggers (TensorBoard); with ~logger, to the files alone."""
    result = run_range_test(cfg, model, datamodule)
    loggers = build_loggers(cfg)
    result.log_to(loggers)
    log_lr_found({"max_lr": result.lr}, result.source, result)
    log_logger_paths(loggers)
    found = lr_overrides(scheduler_config(cfg), result.lr, result.base_lr)  # piecewise: its values, scaled
    log_train_command(job_overrides(), found)
    write_config(cfg.output_dir, cfg, result.source)  # what ran; the LRs found are in result.json
    write_result(cfg.output_dir, status="completed", reason="", overrides=job_overrides(), run_dir=cfg.output_dir,
                 monitor=cfg.monitor, monitor_mode=cfg.monitor_mode, metrics={}, objective=result.lr,
                 lr={"max_lr": result.lr, **({"base_lr": result.base_lr} if result.base_lr is not None else {}),
                     "source": result.source, "search_s": result.elapsed_s, "search_steps": result.search_steps},
                 found=found)  # the overrides to train with
    return result.lr


def fit(cfg: DictConfig, trainer: pl.Trainer, model, datamodule, ending: Ending) -> float | None:
    """Train. A divergence is a result (the worst value, for a sweeper to rank); Ctrl-C leaves a checkpoint."""
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    except Diverged as err:  # no checkpoint from the broken weights; the sweep goes on
        last = os.path.join(cfg.output_dir, "checkpoints", "last.ckpt")
        last = last if os.path.exists(last) else None
        log.warning(f"Diverged: {err}. Last good checkpoint: {last or 'none (it diverged in the first epoch)'}")
        ending.record(trainer, "diverged", {"hp_metric": math.nan}, reason=str(err), metrics={},
                      objective=worst_value(cfg.monitor_mode), steps=err.step, checkpoint=last)
        return worst_value(cfg.monitor_mode)
    except Interrupted as err:
        ending.record(trainer, "interrupted", None, reason=str(err), steps=err.step, checkpoint=err.checkpoint,
                      metrics=logged_metrics(trainer))  # the last logged: training's, and the last validation's
        log.warning(f"Interrupted ({err}). {how_to_resume(err.checkpoint)}")
        raise
    except Exception as err:
        ending.refused(trainer, err)
        raise
    if trainer.fast_dev_run:  # debug=fdr: Lightning keeps no checkpoints (nor logs) of a one-batch check
        return evaluate(cfg, trainer, model, datamodule, ending, checkpoint=None)
    trainer.save_checkpoint(f"{cfg.output_dir}/checkpoints/last.ckpt")  # the final weights, even mid-epoch
    return evaluate(cfg, trainer, model, datamodule, ending,
                    checkpoint=os.path.join(cfg.output_dir, "checkpoints", "last.ckpt"))


def metrics_already_recorded(cfg: DictConfig, trainer: pl.Trainer) -> dict:
    """Resuming a run that had already finished trains no step and validates nothing: the metrics its own ending
    recorded (result.json in the same run directory, at the same step) stand wherever this ending has none, so the
    resume does not erase them, nor the objective a sweeper reads."""
    earlier = read_result(cfg.output_dir, strict=False) if cfg.ckpt_path else None
    if not earlier or earlier.get("steps") != trainer.global_step:
        return {}
    return dict(earlier.get("metrics") or {})


def logged_metrics(trainer: pl.Trainer) -> dict:
    """The metrics logged so far; not LearningRateMonitor's lr-*, a curve's last logged point (TensorBoard has it)."""
    return {k: float(v) for k, v in trainer.callback_metrics.items() if not k.startswith("lr-")}


def evaluate(cfg: DictConfig, trainer: pl.Trainer, model, datamodule, ending: Ending,
             checkpoint: str | None) -> float | None:
    """The final (and best) metrics, the test split's when ``test=true``; returns the monitored metric. The val/
    metrics are the final weights': validated again where the fit's last validation came before its last step."""
    if any(cb.stale(trainer, datamodule) for cb in trainer.callbacks if isinstance(cb, ValidateLastStep)):
        trainer.validate(model, datamodule=datamodule, verbose=False)
    metrics = logged_metrics(trainer)
    best = next((cb.best_model_score for cb in trainer.checkpoint_callbacks if cb.monitor == cfg.monitor), None)
    if best is not None:
        metrics[f"{cfg.monitor}_best"] = float(best)
    if cfg.test:
        metrics.update({k: float(v) for k, v in trainer.test(model, datamodule=datamodule, verbose=False)[0].items()})
    metrics = {**metrics_already_recorded(cfg, trainer), **metrics}
    summary = {f"final/{k}": v for k, v in metrics.items() if k in (cfg.monitor, f"{cfg.monitor}_best", "test/acc")}
    hp_metric = metrics.get("test/acc", metrics.get(cfg.monitor, math.nan))
    ending.record(trainer, "completed", {**summary, "hp_metric": hp_metric}, metrics=metrics,
                  objective=metrics.get(cfg.monitor), steps=trainer.global_step, checkpoint=checkpoint)
    return metrics.get(cfg.monitor)


def run(cfg: DictConfig, keep: KeepWarnings | None = None) -> float | None:
    started = time.time()
    finished = resume_sweep_job(cfg) if cfg.get("resume") else None  # +resume=true: a sweep in its old sweep dir
    if finished is not None:  # completed or diverged before: its result stands
        log.info(f"resume: {cfg.output_dir} already {finished.get('status')}; skipped")
        return finished.get("objective")
    speed_why, threads_why = set_up_machine(cfg)
    if cfg.task.name == "predict":  # prediction from a checkpoint alone: lightning_modules/predict.py
        return predict_from_config(cfg)
    if cfg.task.name == "eval":  # a checkpoint's validation and test metrics: lightning_modules/evaluate.py
        return evaluate_from_config(cfg, keep)
    continue_in_run_dir(cfg)  # a resume continues in its own run directory
    check_seed(cfg)
    pl.seed_everything(cfg.seed, workers=True)

    check_run_length(cfg)
    check_loggers(cfg)  # logger=wandb without wandb installed: the pip command, not a traceback
    asked = auto_keys(cfg)  # the schedule LRs a range test will find (a misspelt auto fails here)
    checkpoint, resumed = read_resumed(cfg.ckpt_path, cfg.model.backbone, cfg.output_dir)  # fails now if bad
    datamodule = instantiate_group(cfg, "data")
    datamodule.prepare_data()  # missing or corrupt data fails here, before anything is built
    datamodule.setup("fit")
    cfg.trainer.log_every_n_steps = log_interval(cfg.trainer, datamodule)  # a short epoch still draws its curve

    model = instantiate_group(cfg, "model", heads=datamodule.heads, optimizer=instantiate_group(cfg, "optimizer"))
    if checkpoint is not None:
        check_weights_fit(cfg.ckpt_path, checkpoint, model)
        check_same_classes(cfg.ckpt_path, checkpoint, datamodule.checkpoint_metadata())  # its outputs' meaning
        del checkpoint  # Lightning reads the file again when it resumes

    optimizer = check_optimizer(cfg, model)  # torch checks lr, weight decay, betas only when it builds the optimizer
    check_monitor(cfg, model)
    check_input_size(cfg, model, datamodule)  # a network that pools a small image to nothing
    if cfg.task.name != "lr_range_test":
        check_schedule(cfg, stand_ins={key: AUTO_KEYS[key] for key in asked},  # before a minutes-long range test
                       optimizer=optimizer)
    # the header first, saying how an auto LR will be found: the range test takes a while
    log_header(cfg, model, datamodule, lr_plan(cfg, asked, runs_trials(cfg)), threads_why, speed_why)
    if cfg.task.name == "lr_range_test":
        return range_test_task(cfg, model, datamodule)
    range_test, lr_found, lr_source = resolve_auto_lrs(cfg, asked, model, datamodule)
    log_lr_found({key: cfg.scheduler[key] for key in asked}, lr_source, range_test)
    os.makedirs(cfg.output_dir, exist_ok=True)
    write_config(cfg.output_dir, cfg, lr_source)  # what ran, and how its LR was found
    if cfg.print_config:
        print_config(cfg)
    write_result(cfg.output_dir, status="running", reason="", overrides=job_overrides(), monitor=cfg.monitor,
                 monitor_mode=cfg.monitor_mode, run_dir=cfg.output_dir,
                 lr={"max_lr": scheduler_config(cfg).get("max_lr", cfg.optimizer.get("lr")),
                     **{key: cfg.scheduler[key] for key in asked}, **lr_found, "source": lr_source})

    callbacks = build_callbacks(cfg, lr_found if asked else None)
    loggers = build_loggers(cfg)
    if range_test is not None:
        range_test.log_to(loggers)
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    return fit(cfg, trainer, model, datamodule, Ending(cfg, lr_source, lr_found, started, keep, resumed))


def run_from_overrides(overrides: list[str], output_dir: str) -> float | None:
    """A whole run from Python (a notebook, a script), as ``python train.py <overrides>`` runs it, written to
    ``output_dir``. Returns what train.py returns: the monitored metric (``monitor``; the worst value if the run
    diverged), the range test's LR for ``task=lr_range_test``. Hydra's compose API builds the config from the same
    groups and overrides, but no Hydra job runs: ``output_dir`` stands in for Hydra's run directory (conf/train.yaml's
    ``${hydra:runtime.output_dir}`` is only set inside a job), and there is no ``.hydra/`` or train.log in it. A
    sweep (``-m``) needs the command line. Call it outside a Hydra app (Hydra's compose refuses a second init)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=os.path.join(os.path.dirname(os.path.abspath(__file__)), "conf"),
                               version_base="1.3"):
        cfg = compose(config_name="train", overrides=null_group_overrides(list(overrides)))
    cfg.output_dir = os.path.abspath(str(output_dir))
    return run(cfg)


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    keep = quiet_console()
    try:
        return run(cfg, keep)
    except (Interrupted, SearchInterrupted):
        raise SystemExit(130) from None  # 128 + SIGINT, as shells report an interrupted command
    except ResumeRefused as err:  # another run's folder: write nothing into it, and stop the sweep (exit 2)
        log.error(f"Error: {err}")
        raise SystemExit(2) from None
    except Exception as err:
        if is_multirun():  # one broken job is a row of the sweep summary, not the end of the sweep
            write_result(cfg.output_dir, status="failed", reason=f"{type(err).__name__}: {plain_message(err)}",
                         objective=worst_value(cfg.monitor_mode), overrides=job_overrides(), run_dir=cfg.output_dir)
            if isinstance(err, START_UP_ERRORS) and os.environ.get("HYDRA_FULL_ERROR") != "1":
                log.error(f"Error: {plain_message(err)} (job failed; the sweep goes on)")  # bad input: one line
            else:
                log.exception("job failed; the sweep goes on")
            return worst_value(cfg.monitor_mode)
        if isinstance(err, START_UP_ERRORS) and os.environ.get("HYDRA_FULL_ERROR") != "1":
            log.error(f"Error: {plain_message(err)}")
            raise SystemExit(2) from None
        raise


if __name__ == "__main__":
    sys.argv = null_group_overrides(sys.argv)  # logger=null -> ~logger: Hydra takes only the latter
    main_with_plain_errors(main, os.path.join(os.path.dirname(os.path.abspath(__file__)), "conf"), sys.argv[1:])

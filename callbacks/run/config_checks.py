"""Checks of a run's config before anything is built, each naming the key and what is allowed, and the errors
train.py shows as one plain message instead of a traceback."""
from __future__ import annotations

import importlib.util
import inspect
import re
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from callbacks.run.hydra_job import job_overrides, key_origin, runtime_choices, scheduler_config, short_name
from callbacks.schedules.lr_schedule import LRSchedule, check_momentum
from lightning_modules.networks import blank_forward

# The project's start-up errors: every check of a config key, file or checkpoint raises one of these with a message
# that names the key or path and what is allowed; train.py prints that message alone (no traceback wall).
START_UP_ERRORS = (ValueError, FileNotFoundError, InstantiationException, MissingMandatoryValue)


def plain_message(err: BaseException) -> str:
    """The message of the error a config check raised (unwrapping Hydra's InstantiationException); a key left at
    ``???`` (``data.csv_path`` of experiment=attributes) as what to type."""
    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    if isinstance(err, MissingMandatoryValue) and err.full_key:
        return f"{err.full_key} has no value and this run needs one: add {err.full_key}=... to the command line"
    return str(err)


def check_schedule(cfg: DictConfig, stand_ins: dict[str, Any], optimizer=None) -> None:
    """Build the schedule once, with ``stand_ins`` for the keys a later phase fills in (the range test's LRs), so a
    bad shape fails now, not after a minutes-long range test; and with ``optimizer`` (the run's, built), a momentum
    schedule for an optimizer without momentum (Adagrad under one-cycle) too."""
    target = scheduler_config(cfg).get("_target_")
    if target:
        takes = list(inspect.signature(get_method(target)).parameters)[2:]
        foreign = [key for key in cfg.scheduler if not key.startswith("_") and key not in takes]
        if foreign:
            raise ValueError(f"scheduler.{foreign[0]} does not apply to the {short_name(target)} schedule "
                             f"{key_origin()}; that schedule takes: "
                             f"{', '.join(k for k in takes if k != 'steps_per_epoch')}")
        schedule = LRSchedule(instantiate(cfg.scheduler, **stand_ins))
        if optimizer is not None and schedule.sets_momentum():
            check_momentum(schedule.name, [optimizer], first_step=not cfg.get("ckpt_path"))
    else:  # scheduler=none: the optimizer's own lr, constant; a schedule's key here would be silently ignored
        foreign = [key for key in scheduler_config(cfg) if not key.startswith("_") and key != "enabled"]
        if foreign:
            raise ValueError(f"scheduler.{foreign[0]} does not apply to scheduler=none {key_origin()}: it trains at "
                             f"the constant optimizer.lr; set that instead, drop the key (~scheduler.{foreign[0]}), "
                             "or choose a schedule (scheduler=one_cycle)")


def check_optimizer(cfg: DictConfig, model):
    """torch's optimizers check their numbers (a negative lr or weight decay, betas outside [0, 1)) only when built,
    in Lightning's configure_optimizers, with messages that name no key ("Invalid learning rate: -1"): build it once
    now and name the group and its keys. Returns the optimizer built (for :func:`check_schedule`)."""
    try:
        return model.configure_optimizers()
    except (ValueError, TypeError) as err:  # TypeError: a key the optimizer does not take (+optimizer.betas for SGD)
        option = runtime_choices().get("optimizer")
        group = f"optimizer={option}" if option else f"optimizer ({short_name(cfg.optimizer.get('_target_'))})"
        keys = ", ".join(f"optimizer.{k}={v}" for k, v in cfg.optimizer.items() if not k.startswith("_"))
        words = [k for k, v in cfg.optimizer.items() if not k.startswith("_") and isinstance(v, str)]
        if words:  # torch compares the value with 0 and says only "'<' not supported between 'str' and 'float'"
            raise ValueError(f"{group}: optimizer.{words[0]} takes a number, got {cfg.optimizer[words[0]]!r} "
                             f"(its keys: {keys})") from None
        raise ValueError(f"{group}: {err} (its keys: {keys})") from None


def check_monitor(cfg: DictConfig, model) -> None:
    """``monitor`` names a metric the model logs (its ``metric_names``) in validation, training or test (a recipe
    that returns its test accuracy to a sweeper, ``experiment=cifar10_fast``): a typo stopped the run with Lightning's
    error at the end of the first epoch, after any LR search."""
    names = getattr(model, "metric_names", None)
    allowed = [name for split in ("val", "train", "test", "test_no_tta")
               for name in names(split)] if callable(names) else []
    if allowed and cfg.monitor not in allowed:
        origin = "" if any(o.startswith("monitor=") for o in job_overrides()) else f" {key_origin()}"
        raise ValueError(f"monitor={cfg.monitor}{origin}: this model logs no such metric; it logs "
                         f"{', '.join(allowed)}")


def check_input_size(cfg: DictConfig, model, datamodule) -> None:
    """The network takes the data's image size: model=airbench at data.image_size=8 pools to nothing in its third
    group and stopped the run with torch's "Output size is too small" traceback at the first step (after any LR
    search). One forward pass of two blank images now, in eval mode (no weight, statistic or RNG changes), and where
    it fails, the smallest size that passes (probed up to 64 pixels) is named with the key; where none does, the
    fault is not the size and the run goes on to name it."""
    images = getattr(getattr(datamodule, "train_set", None), "images", None)
    if images is None or images.ndim != 4:
        return
    channels, size = int(images.shape[1]), int(images.shape[-1])

    def takes(side: int) -> bool:
        try:
            blank_forward(model, side, channels)
        except RuntimeError:
            return False
        return True

    if takes(size):
        return
    smallest = next((side for side in range(size + 1, 65) if takes(side)), None)
    if smallest is None:  # no size helps: another fault, which the run itself will name
        return
    option = runtime_choices().get("model") or short_name(cfg.model.get("_target_"))
    raise ValueError(f"data.image_size={size} is too small for model={option} (its pooling leaves no pixels): "
                     f"use data.image_size={smallest} or more, or another model")


SEED_MAX = 2**32 - 1  # numpy's seed range, which pl.seed_everything also enforces

# Loggers whose package is an optional install: the package to import (and pip install) for each Lightning class.
OPTIONAL_LOGGERS = {"WandbLogger": "wandb", "MLFlowLogger": "mlflow", "CometLogger": "comet_ml",
                    "NeptuneLogger": "neptune"}


def check_seed(cfg: DictConfig) -> None:
    """``seed=abc`` would fail deep in ``int()`` without naming the key."""
    seed = cfg.get("seed")
    if seed is not None and not (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= SEED_MAX):
        raise ValueError(f"seed must be an integer from 0 to {SEED_MAX} (or null: a random seed, printed at start), "
                         f"got {seed!r}")


def logger_configs(cfg: DictConfig) -> dict[str, Any]:
    """The configured loggers by name (none for ``~logger`` or ``logger=null``)."""
    return {name: c for name, c in (cfg.get("logger") or {}).items() if c is not None}


def check_loggers(cfg: DictConfig) -> None:
    """A logger whose package is not installed stops the run at start-up, naming the package and its pip command."""
    for name, c in logger_configs(cfg).items():
        package = OPTIONAL_LOGGERS.get(short_name(c.get("_target_")))
        if package and importlib.util.find_spec(package) is None:
            option = runtime_choices().get("logger") or f"logger.{name}"
            option = option if option.startswith("logger.") else f"logger={option}"
            raise ValueError(f"{option} needs the {package} package, which is not installed: pip install {package}")


def check_run_length(cfg: DictConfig) -> None:
    """Lightning accepts these and then trains nothing (or divides by zero): refuse them up front."""
    trainer = cfg.trainer
    steps, epochs = trainer.get("max_steps", -1), trainer.get("max_epochs")
    if steps is not None and steps != -1 and not (isinstance(steps, int) and steps >= 1):
        raise ValueError(f"trainer.max_steps must be -1 (no cap) or an integer >= 1, got {steps!r}")
    if epochs is not None and epochs != -1 and not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"trainer.max_epochs must be an integer >= 1 (or -1 with trainer.max_steps >= 1), "
                         f"got {epochs!r}")
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
        option = runtime_choices().get(group, short_name(cfg[group].get("_target_")))
        key = key_path(cfg[group], match.group(1)) or match.group(1)
        raise ValueError(f"{group}.{key} does not apply to {group}={option} "
                         f"{key_origin()}; remove it or choose another {group}") from None


def key_path(node: Any, key: str) -> str | None:
    """Where ``key`` sits in a config group: ``key`` itself at the top, else the dotted path through the first nested
    node that has it (``backbone.foo`` for ``+model.backbone.foo=1``); ``None`` when no node has it."""
    if key in node:
        return key
    for name, child in node.items():
        inner = key_path(child, key) if isinstance(child, DictConfig) else None
        if inner is not None:
            return f"{name}.{inner}"
    return None


# The schedule keys that max_lr must stay above (cyclic's base_lr, warm-up's cosine end), with what to do about one.
BELOW_MAX_LR = {"base_lr": "(Smith: a third to a quarter of max_lr), or find both with range_test=accuracy "
                           "scheduler.base_lr=auto", "eta_min": "(the cosine decay's final LR; 0 by default)"}


def lr_floor(cfg: DictConfig) -> tuple[str, float] | None:
    """The fixed BELOW_MAX_LR key above 0 (the larger if both are) and its value; the trials try no peak below it."""
    fixed = [(value, key) for key, value in scheduler_config(cfg).items() if key in BELOW_MAX_LR
             and isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0]
    if not fixed:
        return None
    value, key = max(fixed)
    return key, float(value)


def check_above_floor(cfg: DictConfig, max_lr: float, what: str) -> None:
    """A fixed base_lr (cyclic) or eta_min (warm-up) with max_lr=auto: a peak the search found (or a trial would
    try) at or below it cannot be trained; say which keys to change instead of the schedule's bare bound."""
    floor = lr_floor(cfg)
    if floor is not None and max_lr <= floor[1]:
        key, value = floor
        raise ValueError(f"scheduler.max_lr=auto {what} {max_lr:.4g}, not above scheduler.{key}={value:g}: lower "
                         f"scheduler.{key} {BELOW_MAX_LR[key]}")

"""Every option of every config group composes and instantiates; bad overrides get Hydra's clear message."""
import functools

import pytest
import pytorch_lightning as pl
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from conftest import CONF
from callbacks.run.machine import fall_back_without_gpu
from callbacks.schedules.lr_schedule import LRSchedule
from train import AUTO, AUTO_KEYS, build_callbacks, resolve_auto_speed

GROUPS = ["model", "data", "optimizer", "scheduler", "trainer", "callbacks", "logger", "task", "range_test", "experiment"]


def options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def data_files(name, tmp_path) -> list[str]:
    """Overrides that point the options reading your own images at small generated files."""
    from image_files import write_csv_dataset, write_folder_dataset

    if name in ("image_folder", "image_folder_resnet"):
        return [f"data.root={write_folder_dataset(tmp_path / 'folder', per_class=4)}", "data.decode_workers=0"]
    if name in ("csv", "attributes"):
        return [f"data.csv_path={write_csv_dataset(tmp_path / 'csv', n=12)}", "data.decode_workers=0"]
    return []


def test_every_group_has_options():
    for group in GROUPS:
        assert options(group), f"conf/{group} is empty"
    assert {"cifar10_resnet9", "cifar10_fast", "smoke"} <= set(options("experiment"))
    assert {"cpu", "gpu", "ddp"} <= set(options("trainer"))


@pytest.mark.parametrize("name", options("model"))
def test_model_options(compose_cfg, name):
    cfg = compose_cfg(f"model={name}")
    model = instantiate(cfg.model, heads={"label": 10, "kind": 2}, optimizer=instantiate(cfg.optimizer))
    model.eval()
    out = model(torch.randn(2, 3, 32, 32))
    assert out["label"].shape == (2, 10) and out["kind"].shape == (2, 2)
    assert isinstance(model.configure_optimizers(), torch.optim.Optimizer)


@pytest.mark.parametrize("name", options("data"))
def test_data_options(compose_cfg, name, tmp_path):
    dm = instantiate(compose_cfg(f"data={name}", *data_files(name, tmp_path)).data)
    assert isinstance(dm, pl.LightningDataModule) and dm.heads


@pytest.mark.parametrize("name", options("optimizer"))
def test_optimizer_options(compose_cfg, name):
    cfg = compose_cfg(f"optimizer={name}")
    factory = instantiate(cfg.optimizer)
    assert isinstance(factory, functools.partial)
    opt = factory([torch.nn.Parameter(torch.zeros(3))])
    assert type(opt).__name__.lower() == name.replace("nesterov", "sgd")
    if name == "nesterov":
        assert opt.param_groups[0]["nesterov"] is True
    if name == "rmsprop":  # one-cycle cycles its momentum as SGD's; auto treats it as SGD-like
        from callbacks.range_test.trials import adam_family
        from callbacks.schedules.lr_schedule import get_momentum, set_momentum

        set_momentum(opt.param_groups[0], 0.85)
        assert get_momentum(opt.param_groups[0]) == 0.85 and not adam_family([opt])


@pytest.mark.parametrize("name", options("scheduler"))
def test_scheduler_options(compose_cfg, name):
    cfg = compose_cfg(f"scheduler={name}")
    assert "total_steps" not in cfg.scheduler  # a scheduler config describes only the shape
    if cfg.scheduler.get("_target_"):
        schedule = instantiate(cfg.scheduler)
        assert isinstance(schedule, functools.partial)  # a pure schedule function, driven by LRSchedule
        assert isinstance(LRSchedule(schedule), pl.Callback)
    else:
        assert name == "none"


@pytest.mark.parametrize("name", options("trainer"))
def test_trainer_options(compose_cfg, name, recwarn):
    cfg = compose_cfg(f"trainer={name}")
    fall_back_without_gpu(cfg)
    assert (resolve_auto_speed(cfg) is not None) == (name == "auto")  # as train.py does, before the trainer exists
    trainer = instantiate(cfg.trainer, logger=False, enable_checkpointing=False)
    assert isinstance(trainer, pl.Trainer)
    if not torch.cuda.is_available() and name in ("gpu", "ddp"):
        assert cfg.trainer.accelerator == "cpu" and cfg.trainer.precision == "32-true"
        assert cfg.speed.compile is False and cfg.speed.channels_last is True  # NHWC is oneDNN's layout too
        assert any("No CUDA GPU found" in str(w.message) for w in recwarn)


def test_gpu_trainer_asks_for_the_speed_settings(compose_cfg):
    cfg = compose_cfg("trainer=gpu")
    assert cfg.trainer.precision == "16-mixed" and cfg.trainer.benchmark is True
    assert cfg.speed.channels_last is True
    assert compose_cfg("trainer=cpu").trainer.precision == "32-true"


@pytest.mark.parametrize("name", options("callbacks"))
def test_callbacks_options(compose_cfg, name):
    cfg = compose_cfg(f"callbacks={name}")
    callbacks = [instantiate(c) for c in cfg.callbacks.values()]
    assert callbacks and all(isinstance(c, pl.Callback) for c in callbacks)


@pytest.mark.parametrize("name", options("logger"))
def test_logger_options(compose_cfg, name):
    pytest.importorskip({"wandb": "wandb", "mlflow": "mlflow"}.get(name, "torch"))  # optional installs
    loggers = [instantiate(c) for c in compose_cfg(f"logger={name}").logger.values()]
    assert loggers and all(isinstance(lg, pl.loggers.Logger) for lg in loggers)


@pytest.mark.parametrize("name", options("range_test"))
def test_range_test_options(compose_cfg, name):
    assert isinstance(instantiate(compose_cfg(f"range_test={name}").range_test), pl.Callback)


def test_callbacks_hold_the_schedule_and_never_the_range_test(compose_cfg):
    names = [type(c).__name__ for c in build_callbacks(compose_cfg("scheduler.max_lr=0.3"))]
    assert not any(n.endswith("RangeTest") for n in names)  # the range test is its own phase, before these
    assert names.count("LRSchedule") == 1 and names.index("LRSchedule") < names.index("LearningRateMonitor")
    assert "LRSchedule" not in [type(c).__name__ for c in build_callbacks(compose_cfg("scheduler=none"))]


def test_progress_bars_off_drops_the_bar_callback_lightning_would_refuse(compose_cfg, tmp_path):
    """``trainer.enable_progress_bar=false`` (the README's way to turn the bars off) stopped every run at start-up:
    Lightning refuses a RichProgressBar callback with bars off."""
    bars = [type(c).__name__ for c in build_callbacks(compose_cfg()) if isinstance(c, pl.callbacks.ProgressBar)]
    assert bars == ["RichProgressBar"]
    cfg = compose_cfg("trainer.enable_progress_bar=false")
    callbacks = build_callbacks(cfg)
    assert not any(isinstance(c, pl.callbacks.ProgressBar) for c in callbacks)
    trainer = pl.Trainer(enable_progress_bar=False, callbacks=callbacks, logger=False,
                         default_root_dir=str(tmp_path))
    assert trainer.progress_bar_callback is None


@pytest.mark.parametrize("name", options("experiment"))
def test_experiment_options(compose_cfg, name, tmp_path):
    cfg = compose_cfg(f"experiment={name}", *data_files(name, tmp_path))
    OmegaConf.resolve(cfg)
    dm = instantiate(cfg.data)
    model = instantiate(cfg.model, heads=dm.heads, optimizer=instantiate(cfg.optimizer))
    assert model.num_parameters() > 0
    for key in AUTO_KEYS:  # train.py writes the range test's result here before building callbacks
        if (cfg.get("scheduler") or {}).get(key) == AUTO:
            cfg.scheduler[key] = 0.1 if key == "max_lr" else 0.01
    assert all(isinstance(c, pl.Callback) for c in build_callbacks(cfg))


def test_resnet9_recipe_reads_like_the_paper(compose_cfg):
    cfg = compose_cfg("experiment=cifar10_resnet9")
    assert cfg.data.batch_size == 512 and cfg.data.cutout == 8 and cfg.data.crop_padding == 4
    assert cfg.optimizer.nesterov and cfg.optimizer.momentum == 0.9 and cfg.optimizer.weight_decay == 5e-4
    assert list(cfg.scheduler.knots) == [0, 5, 24] and list(cfg.scheduler["values"]) == [0.0, 0.4, 0.0]
    assert cfg.scheduler.unit == "epoch" and cfg.trainer.max_epochs == 24
    assert cfg.trainer.precision == "16-mixed" and cfg.speed.channels_last


def test_unknown_option_and_key_are_refused_with_the_name():
    from conftest import compose_config

    with pytest.raises(ConfigCompositionException, match="model/nonet"):
        compose_config(["model=nonet"])
    with pytest.raises(ConfigCompositionException, match="data.bogus"):
        compose_config(["data.bogus=1"])


def test_the_hparams_table_takes_swept_keys_but_not_how_a_run_was_started(monkeypatch):
    """A job resumed with +resume=true (or a run with ckpt_path=...) got a column its sweep's other jobs lack."""
    from callbacks.run import hparams
    from conftest import compose_config, smoke_overrides

    cfg = compose_config(smoke_overrides("scheduler.max_lr=0.1", "+resume=true", "ckpt_path=x.ckpt",
                                         "data.cutout=4"), output_dir="o")
    monkeypatch.setattr(hparams, "job_overrides", lambda: ["scheduler.max_lr=0.1", "+resume=true", "ckpt_path=x.ckpt",
                                                          "data.cutout=4"])
    table = hparams.tensorboard_hparams(cfg, "config", "completed")
    assert list(table)[:2] == ["scheduler/max_lr", "data/cutout"] and table["data/cutout"] == 4
    assert "resume" not in table and "ckpt_path" not in table

"""The run's resolved config travels in every checkpoint, so a resumed run knows what it was started with
(e.g. the LR a range test found for ``scheduler.max_lr=auto``) without running anything again."""
from __future__ import annotations

from typing import Any, Mapping

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from callbacks.run.result_file import run_records
from lightning_modules.networks import network_name

CHECKPOINT_KEY = "run_config"
#: how the run's LRs were found (``source``, ``search_s``, ``search_steps``), so that a resumed auto run still says it
LR_KEY = "run_lr"


class RunConfig(Callback):
    """Writes ``config`` (a plain, resolved dict) to ``checkpoint["run_config"]`` and ``lr`` (how its LRs were found:
    ``{source, search_s, search_steps}``) to ``checkpoint["run_lr"]`` at every save."""

    def __init__(self, config: dict[str, Any], lr: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.config, self.lr = config, lr

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = self.config
        if self.lr is not None:
            checkpoint[LR_KEY] = self.lr


def read_checkpoint(ckpt_path: str) -> dict[str, Any]:
    """A checkpoint's contents, or a clear error naming ``ckpt_path`` when the file is missing, truncated or not a
    checkpoint at all (checked before anything is built)."""
    try:
        checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"ckpt_path: no such file {ckpt_path}") from None
    except Exception as err:  # truncated, not a torch file, or holding objects that are not plain data
        first_line = (str(err).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"ckpt_path: {ckpt_path} is not a readable checkpoint (truncated, or not written by "
                         f"torch/Lightning: {type(err).__name__}: {first_line})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"ckpt_path: {ckpt_path} is not a Lightning checkpoint (no state_dict in it)")
    return checkpoint


def saved_run_config(ckpt_path: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The config a checkpoint was written with (for ``auto`` LRs on resume), and how its LRs were found (``None``
    from a checkpoint written before that was saved)."""
    checkpoint = read_checkpoint(ckpt_path)
    if CHECKPOINT_KEY not in checkpoint:
        raise ValueError(f"ckpt_path: {ckpt_path} holds no run config (it was not written by train.py); give the "
                         f"learning rates as numbers instead of 'auto' to resume from it")
    return checkpoint[CHECKPOINT_KEY], checkpoint.get(LR_KEY)


def check_same_network(ckpt_path: str, checkpoint: dict[str, Any], backbone: Mapping[str, Any],
                       resuming: bool = True) -> None:
    """Resuming a checkpoint of another network (``model=resnet18`` with a ``small`` checkpoint; with
    ``model=custom``, another module) would fail in ``load_state_dict`` with a wall of missing keys: name both
    networks instead, before anything is built."""
    saved = ((checkpoint.get(CHECKPOINT_KEY) or {}).get("model") or {}).get("backbone") or {}
    if saved.get("name") is None or network_name(saved) == network_name(backbone):
        return
    option = f"model={saved['name']}"
    if saved["name"] == "custom":  # the module and its arguments, as the checkpoint keeps them
        module = saved.get("module") or {}
        option += f" model.backbone.module._target_={module.get('_target_')}" + "".join(
            f" +model.backbone.module.{k}={v}" for k, v in module.items() if not str(k).startswith("_"))
    how = (f"resume with {option} (the checkpoint's), or leave out ckpt_path to start afresh" if resuming else
           f"add {option} (the checkpoint's network) to the command")
    raise ValueError(f"ckpt_path: {ckpt_path} holds a '{network_name(saved)}' network, the config builds "
                     f"'{network_name(backbone)}'; {how}")


def check_weights_fit(ckpt_path: str, checkpoint: dict[str, Any], model: torch.nn.Module) -> None:
    """The same network with other sizes (another width, number of classes or heads; or a checkpoint without a run
    config): name the first weight whose shape differs instead of load_state_dict's traceback."""
    saved = checkpoint["state_dict"]
    for key, value in model.state_dict().items():
        if key in saved and hasattr(saved[key], "shape") and tuple(saved[key].shape) != tuple(value.shape):
            raise ValueError(f"ckpt_path: {ckpt_path} does not fit the configured model: {key} has shape "
                             f"{tuple(saved[key].shape)} in the checkpoint, {tuple(value.shape)} in the config "
                             f"(another width, head or number of classes); resume with the checkpoint's settings")


def check_same_classes(ckpt_path: str, checkpoint: dict[str, Any], data: dict[str, Any]) -> None:
    """Evaluating or resuming a checkpoint: ``data`` (the datamodule's ``checkpoint_metadata()``) must have the
    checkpoint's heads, class names in the same order (the model's outputs are those classes: a class folder renamed
    or added before a resume renumbered the others, and training went on with scrambled labels, warned only as
    "the data differs"), and image size. A checkpoint without data metadata passes."""
    saved = checkpoint.get("data") or {}
    vocabularies = saved.get("vocabularies")
    if vocabularies and set(vocabularies) != set(data["vocabularies"]):
        raise ValueError(f"ckpt_path: {ckpt_path} was trained on other attributes: its heads are "
                         f"{', '.join(vocabularies)}, the configured data's are {', '.join(data['vocabularies'])} "
                         f"(one output per head and class); use data with the checkpoint's heads and class names")
    if vocabularies and dict(vocabularies) != dict(data["vocabularies"]):
        head = next((h for h in {**vocabularies, **data["vocabularies"]}
                     if vocabularies.get(h) != data["vocabularies"].get(h)), None)
        raise ValueError(f"ckpt_path: {ckpt_path} was trained on other classes: head {head!r} has "
                         f"{vocabularies.get(head)} in the checkpoint, {data['vocabularies'].get(head)} in the "
                         f"configured data (the model's outputs are the checkpoint's classes, in that order); use "
                         f"data with the checkpoint's heads and class names")
    if saved.get("image_size") and saved["image_size"] != data["image_size"]:
        raise ValueError(f"data.image_size: {ckpt_path} was trained on {saved['image_size']}-pixel images, the "
                         f"configured data gives {data['image_size']}; set data.image_size={saved['image_size']}")


def read_resumed(ckpt_path: str | None, backbone: Mapping[str, Any],
                 run_dir: str) -> tuple[dict[str, Any] | None, tuple[int, dict] | None]:
    """With ``ckpt_path``: the checkpoint, read and checked against the configured network now (a missing,
    truncated or foreign file fails before anything is built), and what is resumed: its step and the records the run
    in ``run_dir`` holds so far (:func:`callbacks.run.result_file.run_records`). ``(None, None)`` without one."""
    if not ckpt_path:
        return None, None
    checkpoint = read_checkpoint(ckpt_path)
    check_same_network(ckpt_path, checkpoint, backbone)
    return checkpoint, (int(checkpoint.get("global_step", 0)), run_records(run_dir))

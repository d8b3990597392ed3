"""The cifar10_fast recipe as a minimal hand-written PyTorch training loop, without Lightning's Trainer: the floor
that train.py's per-step time is compared with (benchmarks/overhead.py), and the loop benchmarks/cpu_options.py and
benchmarks/peer_speed.py time.

    python benchmarks/reference_loop.py --steps 20                      # airbench, batch 1024, synthetic images
    python benchmarks/reference_loop.py --model small --steps 50
    python benchmarks/reference_loop.py --quick                         # 3 steps, batch 64: seconds
    python benchmarks/reference_loop.py --override trainer.precision=bf16-mixed speed.channels_last=true

Everything the recipe specifies comes from the project, imported, composed from the same Hydra config train.py
reads (``experiment=cifar10_fast trainer=cpu`` plus ``--override``; ``trainer=cpu`` is fp32 with channels_last, the
default of ``speed.channels_last`` since 6321c06: ``--override speed.channels_last=false`` for NCHW):

* network, heads, label smoothing, channels_last / torch.compile: ``instantiate(cfg.model)`` -- the Classifier's
  ``setup``, ``logits`` and ``loss_from_logits`` are called as plain methods (the LightningModule is an
  ``nn.Module``; no Trainer, no hooks, no logging); the airbench whitening init is ``backbone.data_init`` and the
  per-epoch switch ``backbone.set_epoch``, called where Lightning's hooks would call them;
* optimizer and parameter groups (norm LR scale): ``Classifier.configure_optimizers`` -> ``parameter_groups``;
* schedule: the pure function ``instantiate(cfg.scheduler)`` (``callbacks.schedules.shapes.piecewise``), applied per step
  with ``lr_scale`` as ``callbacks.schedules.lr_schedule.LRSchedule`` does (momentum via its ``set_momentum``);
* Lookahead: the project's pure functions ``callbacks.lookahead.lookahead_decay`` (the decay schedule) and
  ``lookahead_pull`` (the update ``avg.lerp_(w, 1 - d); w.copy_(avg)`` over tensor lists, as the callback does);
* data: the datamodule's uint8 training tensor, its ``normalize`` and ``datamodules.augment.batch_augment`` with the
  datamodule's crop / flip / cutout settings (``alternating_flip`` with its per-image bits for
  ``data.flip=alternating``); a random permutation per epoch.
* precision: ``trainer.precision`` as Lightning applies it (``16-mixed``: fp16 autocast + GradScaler on CUDA;
  ``bf16-mixed``: bf16 autocast on the device).

Synthetic images by default: step time does not depend on pixel values. Seconds per optimizer step = the median
of the times between consecutive step ends after ``--warmup`` steps (no device sync inside the loop; one at the
end).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.report import add_common_options, finish, steady_median, table  # noqa: E402

BASE_OVERRIDES = ["experiment=cifar10_fast", "trainer=cpu"]


def data_overrides(batch_size: int | None, steps: int, quick: bool) -> list[str]:
    """Synthetic images, enough for all steps inside one epoch (no validation inside the timed window)."""
    batch = batch_size or (64 if quick else 1024)
    return ["data=synthetic", f"data.batch_size={batch}", f"data.num_train={batch * (steps + 2)}",
            f"data.num_val={batch}"]


def compose(overrides: list[str]):
    from hydra import compose as hydra_compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=overrides)


def precision_context(precision: str, device: str):
    import torch

    if precision.startswith("16"):
        return torch.autocast(device, dtype=torch.float16)
    if precision.startswith("bf16") and precision.endswith("mixed"):
        return torch.autocast(device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_steps(cfg, steps: int) -> list[float]:
    """Run ``steps`` optimizer steps of the recipe in ``cfg``; returns the time of each step (seconds)."""
    import torch
    from hydra.utils import instantiate

    from callbacks.lookahead import lookahead_decay, lookahead_pull
    from callbacks.run.machine import fall_back_without_gpu
    from callbacks.schedules.lr_schedule import set_momentum
    from datamodules.augment import alternating_flip, batch_augment

    fall_back_without_gpu(cfg)  # as train.py: without CUDA a GPU config runs on the CPU, fp16 becomes fp32 (any
    # config), bf16-mixed is kept
    if (cfg.get("speed") or {}).get("threads"):
        torch.set_num_threads(int(cfg.speed.threads))
    torch.manual_seed(cfg.seed)
    device = "cuda" if torch.cuda.is_available() and cfg.trainer.accelerator in ("gpu", "cuda", "auto") else "cpu"
    dm = instantiate(cfg.data)
    dm.prepare_data()
    dm.setup("fit")
    model = instantiate(cfg.model, heads=dm.heads, optimizer=instantiate(cfg.optimizer))
    model.setup("fit")  # channels_last, torch.compile (as the Trainer's setup hook)
    model.to(device).train()
    head = model.head_names[0]
    if hasattr(model.backbone, "data_init"):
        model.backbone.data_init(dm.init_images().to(device))  # airbench's whitening from the data (on_fit_start)
    optimizer = model.configure_optimizers()
    schedule = instantiate(cfg.scheduler)
    steps_per_epoch = dm.steps_per_epoch()
    lookahead = (cfg.get("callbacks") or {}).get("lookahead")
    scaler = torch.amp.GradScaler(device, enabled=str(cfg.trainer.precision).startswith("16"))
    autocast = str(cfg.trainer.precision)
    images, labels = dm.train_set.images, dm.train_set.labels
    order = torch.Generator().manual_seed(cfg.seed)
    augment_rng = torch.Generator(device=device).manual_seed(cfg.seed)

    def floats():
        return {k: v for k, v in model.state_dict().items() if v.is_floating_point()}

    average = {k: v.detach().clone() for k, v in floats().items()} if lookahead else None
    times, last = [], time.perf_counter()
    for step in range(steps):
        epoch, index = divmod(step, steps_per_epoch)
        if index == 0:
            perm = torch.randperm(len(images), generator=order)
            if hasattr(model.backbone, "set_epoch"):
                model.backbone.set_epoch(epoch)
        idx = perm[index * dm.batch_size:(index + 1) * dm.batch_size]
        batch = images[idx]
        if dm.train_set.flipped_first is not None:  # data.flip=alternating
            batch = alternating_flip(batch, dm.train_set.flipped_first[idx], epoch)
        x = dm.normalize(batch.to(device, non_blocking=True))
        y = labels[idx].to(device, non_blocking=True)
        x = batch_augment(x, dm.crop_padding, dm.flip == "random", dm.cutout, augment_rng, mean=dm.mean, std=dm.std,
                          **dm.batched_ops)
        lr, momentum = schedule(step, steps, steps_per_epoch=steps_per_epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
            if momentum is not None:
                set_momentum(group, momentum)
        with precision_context(autocast, device):
            loss = model.loss_from_logits(model.logits(x), {head: y})
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        done = step + 1
        if lookahead and (done % lookahead.every == 0 or done == steps):
            decay = 1.0 if done == steps else lookahead_decay(done, steps, lookahead.decay)
            lookahead_pull(list(average.values()), list(floats().values()), decay)
        now = time.perf_counter()
        times.append(now - last)
        last = now
    if device == "cuda":
        torch.cuda.synchronize()
        times[-1] += time.perf_counter() - last
    if not torch.isfinite(loss.detach()).item():
        raise RuntimeError(f"the loss is not finite after {steps} steps")
    return times


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_options(p)
    p.add_argument("--model", default="airbench", help="model config: airbench (the recipe's), small, resnet9")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (default 20; 3 with --quick)")
    p.add_argument("--warmup", type=int, default=None, help="steps left out of the median (default 5; 1 --quick)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the recipe's 1024 (64 with --quick)")
    p.add_argument("--override", nargs="*", default=[], help="more Hydra overrides (after the defaults)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--json", type=Path, help="also write the per-step times here (what overhead.py reads)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (3 if args.quick else 20)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 5)
    if steps <= warmup:
        sys.exit(f"--steps ({steps}) must be larger than --warmup ({warmup})")
    cfg = compose([*BASE_OVERRIDES, f"model={args.model}", *data_overrides(args.batch_size, steps, args.quick),
                   *args.override])
    times = train_steps(cfg, steps)
    per_step = steady_median(times, warmup)
    if args.json:
        args.json.write_text(json.dumps({"intervals": times[1:], "warmup": warmup}))
    text = table(["loop", "network", "batch", "precision", "steps", "s/step (median)", "images/s"],
                 [["reference", cfg.model.backbone.name, cfg.data.batch_size, cfg.trainer.precision, steps, per_step,
                   cfg.data.batch_size / per_step]])
    finish(args, "Reference loop (no Lightning)", text)


if __name__ == "__main__":
    main()

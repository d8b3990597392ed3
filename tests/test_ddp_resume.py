"""Mid-epoch resume under 2-process CPU DDP: each rank trains its own shard with its own augmentation, and a run
resumed from a mid-epoch step checkpoint ends with the same weights, bit for bit, as an uninterrupted one."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DDP_SCRIPT = """
import hashlib, json, os, sys
from functools import partial
sys.path.insert(0, {root!r})
import torch
torch.set_num_threads(1)
import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint
from datamodules.synthetic import SyntheticDataModule
from lightning_modules.classifier import Classifier
from lightning_modules.networks import build_network


class Record(pl.Callback):
    def __init__(self):
        self.labels, self.images = [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.labels.append(batch[1].tolist())
        self.images.append(hashlib.sha1(batch[0].numpy().tobytes()).hexdigest())


def fit(root, ckpt_path=None):
    pl.seed_everything(0, verbose=False)
    dm = SyntheticDataModule(num_train=128, num_val=32, image_size=16, batch_size=16, crop_padding=2, cutout=4)
    model = Classifier(build_network("small", width=4), dm.heads,
                       optimizer=partial(torch.optim.SGD, lr=0.05, momentum=0.9, nesterov=True))
    record = Record()
    steps = ModelCheckpoint(dirpath=os.path.join(root, "steps"), every_n_train_steps=1, save_top_k=-1,
                            filename="{{step}}")
    trainer = pl.Trainer(strategy="ddp", accelerator="cpu", devices=2, max_epochs=2, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         limit_val_batches=0, deterministic=True, default_root_dir=root, callbacks=[steps, record])
    trainer.fit(model, datamodule=dm, ckpt_path=ckpt_path)
    return trainer, model, record


if __name__ == "__main__":
    out = sys.argv[1]
    trainer, full, seen = fit(os.path.join(out, "a"))
    _, resumed, seen_resumed = fit(os.path.join(out, "b"), os.path.join(out, "a", "steps", "step=5.ckpt"))
    b = resumed.state_dict()
    with open(os.path.join(out, f"rank{{trainer.global_rank}}.json"), "w") as f:
        json.dump({{"labels": seen.labels, "images": seen.images, "resumed_labels": seen_resumed.labels,
                   "resumed_images": seen_resumed.images,
                   "same_weights": [k for k, v in full.state_dict().items() if not torch.equal(v, b[k])] == [],
                   "moved": float(sum((v.float() - b[k].float()).abs().sum() for k, v in full.state_dict().items())),
                   "parameters": [p.detach().flatten().tolist() for p in full.parameters()],
                   "sampler": type(trainer.train_dataloader.sampler).__name__,
                   "shards": [trainer.train_dataloader.sampler.rank_indices(e) for e in (0, 1)]}}, f)
"""


def test_ddp_mid_epoch_resume_gives_the_same_weights(tmp_path):
    script = tmp_path / "ddp_resume.py"
    script.write_text(DDP_SCRIPT.format(root=str(ROOT)))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    for r in (r0, r1):
        assert len(r["labels"]) == 8  # 128 images, 2 ranks, batches of 16: 4 steps a rank per epoch, 2 epochs
        # the resumed run (step 5: mid-epoch 1) trained on exactly the batches the full run trained on next,
        # augmented alike
        assert r["resumed_labels"] == r["labels"][5:]
        assert r["resumed_images"] == r["images"][5:]
        assert r["same_weights"]
    # Lightning kept the datamodule's sampler (no DistributedSamplerWrapper), and each rank trained its own shard:
    # together the two ranks see every image once an epoch, in a new order each epoch
    assert r0["sampler"] == r1["sampler"] == "EpochBatchSampler"
    for epoch in (0, 1):
        assert sorted(r0["shards"][epoch] + r1["shards"][epoch]) == list(range(128))
    assert r0["shards"][0] != r0["shards"][1]
    # different images and a different augmentation draw on each rank: no batch is the same on both
    assert r0["labels"] != r1["labels"] and not set(r0["images"]) & set(r1["images"])
    assert r0["parameters"] == r1["parameters"]  # gradients were averaged: the ranks agree

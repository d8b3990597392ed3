"""Smith's (2015, sec. 3.3) accuracy range test as a Lightning callback that leaves nothing behind.

L. N. Smith, "Cyclical Learning Rates for Training Neural Networks" (arXiv:1506.01186), sec. 3.3: "run your model
for several epochs while letting the learning rate increase linearly between low and high LR values ... note the
learning rate value when the accuracy starts to increase and when the accuracy slows, becomes ragged, or starts to
fall". Usually run through :func:`callbacks.range_test.finder.find_lr`; the machinery is in :mod:`callbacks.range_test.engine`.
"""
from __future__ import annotations

import math
from contextlib import closing
from typing import Any, Dict, List, Optional, Tuple

import pytorch_lightning as pl

from callbacks.range_test.base import RangeTestCallback
from callbacks.range_test.progress import progress_task
from callbacks.range_test.result import RangeTestResult
from callbacks.range_test.smoothing import divergence_index, running_average
from callbacks.range_test.suggestions import accuracy_test_bounds, binomial_stderr
from callbacks.range_test.engine import (
    BatchStream,
    first_loader,
    optimizer_step_at,
    safe_len,
    seed_rngs,
    sweep_lrs,
    val_loader,
    validation_scores,
)

__all__ = ["AccuracyRangeTest", "NoBounds"]


class NoBounds(ValueError):
    """The accuracy test found no base_lr/max_lr; the message says what it saw, and ``result`` holds its curve and
    accuracy points (no suggestions, ``lr`` NaN), for the files that let one read the bounds off by eye."""

    def __init__(self, message: str, result: RangeTestResult):
        super().__init__(message)
        self.result = result


def what_it_saw(evals: List[Dict[str, Any]], lrs: List[float]) -> str:
    """An accuracy test that found no bounds, in two sentences: up to 12 of its accuracy points by LR, and the LR each
    step of the ramp adds. The default ramp (to 1.0 in 4 epochs) on a small set (13 steps an epoch) adds 0.02 a step
    and passes the LRs where a small net learns (0.005-0.04) in two steps: there a lower range_test.max_lr helps."""
    every = max(1, math.ceil(len(evals) / 12))
    points = ", ".join(f"{e['lr']:.3g}: {e['acc']:.2f}" for e in evals[::every])
    step = (lrs[-1] - lrs[0]) / max(len(lrs) - 1, 1)
    return (f"Validation accuracy by LR ({len(evals)} points of {evals[0]['images']} images): {points}. Each step of "
            f"the ramp adds {step:.3g} to the LR: where a network learns only over a few such steps, a lower "
            f"range_test.max_lr or a longer ramp (range_test.num_steps) measures those LRs more finely")


class AccuracyRangeTest(RangeTestCallback):
    """Smith's accuracy range test.

    The LR rises linearly from ``min_lr`` to ``max_lr`` over ``num_epochs`` epochs' worth of optimizer steps (or
    ``num_steps``); before the first step, every ``eval_every`` steps and at the last step, validation accuracy is
    measured on the first ``eval_batches`` validation batches (eval mode, no training augmentation, counts summed
    over DDP ranks). :func:`callbacks.range_test.suggestions.accuracy_test_bounds` turns the points into ``base_lr`` and
    ``max_lr`` (``result.base_lr``, ``result.lr``), treating accuracies within one binomial standard error of each
    other as ties. Accuracy comes from ``pl_module.accuracy_counts(batch) -> (correct, total)`` if present, else
    from ``argmax(pl_module(x)) == y``.
    """

    needs_validation = True

    def __init__(self, min_lr: float = 0.0, max_lr: float = 1.0, num_epochs: float = 4.0,
                 num_steps: Optional[int] = None, eval_every: Optional[int] = None, eval_batches: int = 4,
                 diverge_factor: Optional[float] = None, smooth_beta: float = 0.98, bandwidth: Optional[float] = 0.0,
                 seed: Optional[int] = 0) -> None:
        super().__init__(min_lr, max_lr, num_steps, "linear", diverge_factor, smooth_beta, seed)
        if not (isinstance(num_epochs, (int, float)) and not isinstance(num_epochs, bool) and num_epochs > 0):
            raise ValueError(f"range_test.num_epochs must be > 0, got {num_epochs!r}")
        if eval_every is not None and (not isinstance(eval_every, int) or eval_every < 1):
            raise ValueError(f"range_test.eval_every must be an integer >= 1 (or null), got {eval_every!r}")
        if not isinstance(eval_batches, int) or isinstance(eval_batches, bool) or eval_batches < 1:
            raise ValueError(f"range_test.eval_batches must be an integer >= 1, got {eval_batches!r}")
        if bandwidth is not None and not (isinstance(bandwidth, (int, float)) and bandwidth >= 0):
            raise ValueError(f"range_test.bandwidth must be >= 0 (or null), got {bandwidth!r}")
        self.num_epochs, self.eval_every, self.eval_batches = float(num_epochs), eval_every, eval_batches
        self.bandwidth = bandwidth

    def _total_steps(self, trainer: "pl.Trainer") -> int:
        if self.num_steps is not None:
            return self.num_steps
        n = safe_len(first_loader(trainer.train_dataloader))
        if n is None:
            raise ValueError("range_test.num_steps is required when the train dataloader has no length")
        if isinstance(trainer.limit_train_batches, int):
            n = min(n, trainer.limit_train_batches)
        per_epoch = max(n // max(int(trainer.accumulate_grad_batches), 1), 1)
        total = int(round(self.num_epochs * per_epoch))
        if total < 10:
            raise ValueError(f"the accuracy test would have only {total} steps (< 10): raise range_test.num_epochs "
                             "or set range_test.num_steps")
        return total

    def _accuracy(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", loader: Any) -> Tuple[float, int]:
        """(accuracy, images evaluated over all ranks) on the first ``eval_batches`` validation batches."""
        _, acc, images = validation_scores(trainer, pl_module, loader, self.eval_batches, with_loss=False)
        return acc, images

    def _sweep(self, trainer: "pl.Trainer", pl_module: "pl.LightningModule", snapshot: Any) -> Dict[str, Any]:
        total = self._total_steps(trainer)
        lrs = sweep_lrs(self.min_lr, self.max_lr, total, "linear")
        every = self.eval_every or max(1, total // 40)
        if self.seed is not None:
            seed_rngs(self.seed)
        accum = max(int(trainer.accumulate_grad_batches), 1)
        validation = val_loader(trainer)
        stream = BatchStream(trainer, pl_module, first_loader(trainer.train_dataloader), "train")
        losses: List[float] = []
        evals: List[Dict[str, Any]] = []
        stop: Optional[int] = None

        def measure(step: int, lr: float) -> None:
            acc, images = self._accuracy(trainer, pl_module, validation)
            evals.append({"step": step, "lr": lr, "acc": acc, "images": images})

        with closing(stream):
            # before the progress display (a log line would break it); a ramp of num_epochs epochs repeats the
            # data by design: only a num_steps longer than the data is warned of
            stream.warn_if_short(total * accum if self.num_steps is not None else 0)
            with progress_task(trainer, "accuracy range test", total, self.smooth_beta) as task:
                measure(-1, float(lrs[0]))  # before any step
                for k, lr in enumerate(lrs):
                    mean, _ = optimizer_step_at(trainer, pl_module, stream, float(lr), k)
                    losses.append(mean)
                    task.step(float(lr), mean, acc=evals[-1]["acc"])
                    if k == 0 and not math.isfinite(mean):
                        raise RuntimeError(f"accuracy range test: the loss is {mean} at the very first step "
                                           f"(lr={lr:.3g}); lower range_test.min_lr")
                    if not math.isfinite(mean) or (self.diverge_factor is not None and divergence_index(
                            losses, self.smooth_beta, self.diverge_factor) is not None):
                        stop = k
                        break
                    if (k + 1) % every == 0 or k == total - 1:
                        measure(k, float(lr))
        return {"lrs": [float(x) for x in lrs[: len(losses)]], "losses": losses, "evals": evals,
                "eval_every": every, "stop_index": stop, "num_steps": total}

    def _analyse(self, raw: Dict[str, Any], elapsed_s: float) -> RangeTestResult:
        evals = raw["evals"]
        images = min(e["images"] for e in evals)
        if images < 1:
            raise ValueError("the accuracy range test evaluated no validation images (empty validation loader?)")
        for e in evals:
            e["stderr"] = binomial_stderr(e["acc"], e["images"])
        # points within one binomial standard error of the best accuracy count as ties (see accuracy_test_bounds)
        failure = ""
        try:
            bounds = accuracy_test_bounds([e["lr"] for e in evals], [e["acc"] for e in evals],
                                          bandwidth=self.bandwidth, num_images=images)
        except ValueError as err:  # no bounds: say what the test saw, so they can be read off by eye or the test rerun
            bounds, failure = {}, f"{err}. {what_it_saw(evals, raw['lrs'])}"
        stop = raw["stop_index"]
        n = len(raw["losses"])
        if stop is None:
            status = f"ran all {n} steps"
        elif not math.isfinite(raw["losses"][stop]):
            status = f"stopped at step {stop} (lr {raw['lrs'][stop]:.3g}): the loss became {raw['losses'][stop]}"
        else:
            status = (f"stopped at step {stop} (lr {raw['lrs'][stop]:.3g}): the running-average loss exceeded "
                      f"{self.diverge_factor:g}x its minimum")
        status += f"; {len(evals)} accuracy points of {images} images each" + (
            f" (1 s.e. at the peak: {bounds['peak_stderr']:.3f})" if bounds else "; no bounds found")
        settings = {k: getattr(self, k) for k in ("min_lr", "max_lr", "num_epochs", "num_steps", "eval_every",
                                                  "eval_batches", "diverge_factor", "smooth_beta", "bandwidth",
                                                  "seed")}
        settings.update(num_steps_run=raw["num_steps"], eval_every_run=raw["eval_every"])
        result = RangeTestResult(
            kind="accuracy", lrs=raw["lrs"], losses=raw["losses"],
            smoothed=[float(x) for x in running_average(raw["losses"], self.smooth_beta)],
            suggestions={k: bounds[k] for k in ("base_lr", "max_lr", "peak_lr") if k in bounds}, rule="accuracy_test",
            lr=bounds.get("max_lr", math.nan), base_lr=bounds.get("base_lr"), status=status, elapsed_s=elapsed_s,
            stop_index=stop, settings=settings, evals=evals, start_acc=bounds.get("start_acc"),
            peak_acc=bounds.get("peak_acc"), eval_images=images, search_steps=n)
        if failure:
            raise NoBounds(failure, result)
        return result

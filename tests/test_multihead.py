"""Several heads on one backbone: weighted loss, per-head metrics, confusion matrices, checkpoint metadata."""
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from pytorch_lightning.loggers import TensorBoardLogger

from conftest import compose_config
from datamodules.csv_images import CSVImageDataModule
from image_files import write_csv_dataset
from lightning_modules.classifier import Classifier
from lightning_modules.networks import build_network
from lightning_modules.predict import load_predictor
from test_classifier import RecordingLogger, make_trainer, sgd


def macro_f1(pred: torch.Tensor, target: torch.Tensor, k: int) -> float:
    scores = []
    for c in range(k):
        tp = float(((pred == c) & (target == c)).sum())
        fp, fn = float(((pred == c) & (target != c)).sum()), float(((pred != c) & (target == c)).sum())
        if tp + fp + fn > 0:  # torchmetrics leaves classes absent from both out of the mean
            scores.append(2 * tp / (2 * tp + fp + fn))
    return sum(scores) / len(scores)


@pytest.fixture
def fitted(tmp_path):
    torch.manual_seed(0)
    dm = CSVImageDataModule(csv_path=str(write_csv_dataset(tmp_path / "data", n=30)), batch_size=6, image_size=12,
                            val_fraction=0.3, decode_workers=0)
    dm.setup("fit")
    model = Classifier(build_network("small", width=4), dm.heads, optimizer=sgd())
    recorder, tensorboard = RecordingLogger(), TensorBoardLogger(str(tmp_path), name="tb", version="")
    trainer = make_trainer(tmp_path, logger=[recorder, tensorboard], max_epochs=2, log_every_n_steps=1)
    trainer.fit(model, datamodule=dm)
    return SimpleNamespace(dm=dm, model=model, trainer=trainer, recorder=recorder, tb=tensorboard, root=tmp_path)


def test_every_per_head_metric_is_logged_and_correct(fitted):
    names = fitted.recorder.names
    for head in ("colour", "size_class"):
        assert {f"train/{head}/acc", f"val/{head}/acc", f"val/{head}/f1_macro"} <= names
    assert {"val/acc_mean", "val/loss", "train/loss"} <= names
    for _, r in fitted.recorder.records:
        if "val/acc_mean" in r:
            assert float(r["val/acc_mean"]) == pytest.approx((float(r["val/colour/acc"]) +
                                                               float(r["val/size_class/acc"])) / 2, abs=1e-6)
    # the last validation ran on the final weights: compare with an independent evaluation
    dm, model = fitted.dm, fitted.model.eval()
    with torch.no_grad():
        logits = model(dm.normalize(dm.val_set.images))
    m = fitted.trainer.callback_metrics
    for head, k in dm.heads.items():
        pred, target = logits[head].argmax(1), dm.val_set.labels[head]
        assert float(m[f"val/{head}/acc"]) == pytest.approx(float((pred == target).float().mean()), abs=1e-6)
        assert float(m[f"val/{head}/f1_macro"]) == pytest.approx(macro_f1(pred, target, k), abs=1e-6)


def test_confusion_matrices_go_to_the_run_folder_and_tensorboard(fitted):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for head in ("colour", "size_class"):
        png = fitted.root / f"confusion_{head}.png"
        assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    events = EventAccumulator(fitted.tb.log_dir, size_guidance={"images": 0})
    events.Reload()
    assert {"confusion/colour", "confusion/size_class"} <= set(events.Tags()["images"])
    cm = fitted.model.confusion["colour"].compute()
    assert int(cm.sum()) == len(fitted.dm.val_set)  # one validation epoch's images, not accumulated over epochs


def test_vocabularies_and_backbone_round_trip_through_a_checkpoint(fitted):
    path = fitted.root / "model.ckpt"
    fitted.trainer.save_checkpoint(str(path))
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    assert ckpt["data"]["vocabularies"] == {"colour": ["blue", "green", "red"], "size_class": ["1", "2"]}
    assert ckpt["backbone"] == {"name": "small", "width": 4}
    assert ckpt["data"]["image_size"] == 12 and ckpt["data"]["mean"] == pytest.approx(fitted.dm.mean.tolist())
    model, data = load_predictor(str(path))
    x = fitted.dm.normalize(fitted.dm.val_set.images)
    with torch.no_grad():
        ref = fitted.model.eval()(x)
        out = model(x)
    for head in ref:
        torch.testing.assert_close(out[head], ref[head])


def test_loss_is_the_weighted_sum_with_balanced_class_weights():
    model = Classifier(build_network("small", width=4), {"a": 3, "b": 2}, loss_weights={"a": 2.0, "b": 0.5},
                       class_weights={"a": "balanced", "b": [1.0, 3.0]})
    model._trainer = SimpleNamespace(datamodule=SimpleNamespace(class_counts={"a": [2, 4, 6], "b": [5, 7]}))
    model.setup("fit")
    torch.testing.assert_close(model.class_weights["a"], torch.tensor([2.0, 1.0, 2 / 3]))
    logits = {"a": torch.randn(10, 3), "b": torch.randn(10, 2)}
    targets = {"a": torch.randint(3, (10,)), "b": torch.randint(2, (10,))}
    expected = (2.0 * F.cross_entropy(logits["a"], targets["a"], weight=torch.tensor([2.0, 1.0, 2 / 3]))
                + 0.5 * F.cross_entropy(logits["b"], targets["b"], weight=torch.tensor([1.0, 3.0])))
    torch.testing.assert_close(model.loss_from_logits(logits, targets), expected)


@pytest.mark.parametrize("kwargs,message", [
    ({"loss_weights": {"c": 1.0}}, "model.loss_weights"),
    ({"class_weights": {"a": "inverse"}}, "model.class_weights.a"),
    ({"class_weights": {"b": [1.0]}}, "model.class_weights.b: need 2 weights"),
    ({"class_weights": {"z": "balanced"}}, "model.class_weights: 'z' is not a head"),
])
def test_bad_weights_name_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Classifier(build_network("small", width=4), {"a": 3, "b": 2}, **kwargs)


def test_balanced_weights_need_class_counts():
    model = Classifier(build_network("small", width=4), {"a": 3}, class_weights="balanced")
    model._trainer = SimpleNamespace(datamodule=None)
    with pytest.raises(ValueError, match="model.class_weights.a=balanced"):
        model.setup("fit")


@pytest.mark.parametrize("name,kwargs", [("resnet9", {"width": 4}), ("resnet18", {"width": 4}), ("small", {}),
                                         ("airbench", {"widths": [8, 8, 8]})])
@pytest.mark.parametrize("size", [32, 64, 224])
def test_networks_accept_any_input_size(name, kwargs, size):
    net = build_network(name, **kwargs).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 3, size, size)).shape == (1, net.feature_dim)


def test_recipes_hold_out_validation_and_monitor_the_mean_accuracy():
    attributes = compose_config(["experiment=attributes", "data.csv_path=x.csv"])
    assert attributes.monitor == "val/acc" and attributes.data.val_fraction > 0  # the mean over heads
    assert attributes.data._target_.endswith("CSVImageDataModule") and attributes.scheduler.max_lr == "auto"
    folder = compose_config(["experiment=image_folder_resnet", "data.root=x"])
    assert folder.data.val_fraction > 0 and folder.data._target_.endswith("ImageFolderDataModule")
    assert folder.model.backbone.name == "resnet9" and folder.scheduler.max_lr == "auto"


def test_the_attributes_recipe_on_a_csv_with_one_label_column_monitors_its_accuracy(tmp_path):
    """experiment=attributes monitored val/acc_mean; on a CSV with one label column it trained an epoch and then
    stopped: ModelCheckpoint "could not find the monitored key" (one head logs no mean). It monitors val/acc, the
    mean over heads with several, the head's accuracy with one."""
    import json

    from conftest import CPU_OVERRIDES, run_in_process

    csv = write_csv_dataset(tmp_path / "data", n=30)
    objective, _ = run_in_process(["experiment=attributes", f"data.csv_path={csv}", "data.label_columns=[colour]",
                                   "model=small", "data.image_size=12", "data.batch_size=6", "data.decode_workers=0",
                                   "data.val_fraction=0.3", "data.test_fraction=0", "scheduler.max_lr=0.05",
                                   "trainer.max_epochs=2", "test=false", *CPU_OVERRIDES], tmp_path / "run")
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "completed" and result["monitor"] == "val/acc"
    assert objective == pytest.approx(result["metrics"]["val/acc"]) and "val/acc_mean" not in result["metrics"]
    assert list((tmp_path / "run" / "checkpoints").glob("best-epoch*.ckpt"))

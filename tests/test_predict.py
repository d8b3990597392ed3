"""Prediction from a checkpoint alone: predictions.csv with class names and probabilities."""
import csv
import logging
import shutil

import pytest
import pytorch_lightning as pl
import torch

from conftest import CPU_OVERRIDES, run_in_process
from datamodules.image_folder import ImageFolderDataModule
from image_files import COLORS, class_image, write_csv, write_folder_dataset, write_image
from lightning_modules.classifier import Classifier
from lightning_modules.networks import build_network
from lightning_modules.predict import load_predictor, predict_to_csv
from test_classifier import make_trainer, sgd


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A checkpoint of a small net trained on coloured class folders; the training data is deleted after."""
    root = tmp_path_factory.mktemp("predict")
    data = write_folder_dataset(root / "data", per_class=8)
    torch.manual_seed(0)
    dm = ImageFolderDataModule(root=str(data), batch_size=6, image_size=16, val_fraction=0.25, decode_workers=0)
    dm.setup("fit")
    model = Classifier(build_network("small", width=8), dm.heads, optimizer=sgd(lr=0.1))
    trainer = make_trainer(root, max_epochs=20)
    trainer.fit(model, datamodule=dm)
    path = root / "model.ckpt"
    trainer.save_checkpoint(str(path))
    shutil.rmtree(data)  # prediction must not need the training data
    return path


def test_predicts_class_names_for_a_folder(checkpoint, tmp_path):
    for name, color in COLORS.items():
        write_image(tmp_path / "new" / f"{name}.png", class_image(color, size=(40, 30), seed=99))
    write_image(tmp_path / "new" / "sub" / "grey.jpg", class_image((90, 90, 90)), mode="L")
    (tmp_path / "new" / "readme.txt").write_text("not an image")
    with pytest.warns(UserWarning, match=r"data.predict_dir: ignoring 1 file\(s\) that are not images .*'readme.txt'"):
        out = predict_to_csv(str(checkpoint), str(tmp_path / "new"), str(tmp_path / "out" / "predictions.csv"),
                             decode_workers=0)
    rows = read_rows(out)
    assert list(rows[0]) == ["path", "label", "label_prob"]
    by_path = {r["path"]: r for r in rows}
    assert set(by_path) == {"blue.png", "green.png", "red.png", "sub/grey.jpg"}
    for name in COLORS:  # the colours are easy: the trained net names them
        assert by_path[f"{name}.png"]["label"] == name
    assert all(r["label"] in COLORS and 0.0 < float(r["label_prob"]) <= 1.0 for r in rows)
    # the probability is the softmax maximum of the model on the image preprocessed as in training
    model, data = load_predictor(str(checkpoint))
    from datamodules.image_cache import decode_image

    x = torch.from_numpy(decode_image(str(tmp_path / "new" / "red.png"), 16)).float()[None] / 255
    x = (x - torch.tensor(data["mean"]).view(1, 3, 1, 1)) / torch.tensor(data["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        p = model(x)["label"].softmax(1).max()
    assert float(by_path["red.png"]["label_prob"]) == pytest.approx(float(p), abs=1e-5)


def test_predicts_from_a_csv_of_paths_and_reports_bad_files(checkpoint, tmp_path):
    write_image(tmp_path / "a.png", class_image(COLORS["green"]))
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    path = write_csv(tmp_path / "list.csv", [{"image": "a.png"}, {"image": "bad.jpg"}, {"image": "gone.png"}])
    with pytest.raises(ValueError, match="2 file\\(s\\): bad.jpg .*gone.png \\(missing\\).*skip_bad_images"):
        predict_to_csv(str(checkpoint), str(path), str(tmp_path / "p.csv"), decode_workers=0)
    with pytest.warns(UserWarning, match="skipping 2 file"):
        out = predict_to_csv(str(checkpoint), str(path), str(tmp_path / "p.csv"), decode_workers=0,
                             skip_bad_images=True)
    rows = read_rows(out)
    assert [r["path"] for r in rows] == ["a.png"] and rows[0]["label"] == "green"
    escape = write_csv(tmp_path / "sub" / "esc.csv", [{"image": "../a.png"}])
    with pytest.raises(ValueError, match="data.allow_outside_paths=true"):
        predict_to_csv(str(checkpoint), str(escape), str(tmp_path / "q.csv"), decode_workers=0)
    # paths relative to another folder, as a training CSV with data.image_root has them
    elsewhere = write_csv(tmp_path / "lists" / "rel.csv", [{"image": "a.png"}])
    out = predict_to_csv(str(checkpoint), str(elsewhere), str(tmp_path / "r.csv"), decode_workers=0,
                         image_root=str(tmp_path))
    assert [(r["path"], r["label"]) for r in read_rows(out)] == [("a.png", "green")]


def test_inputs_that_are_missing_or_not_a_list_are_named_for_what_they_are(checkpoint, tmp_path):
    """A mistyped folder said "is neither a folder nor a CSV file", as if it existed."""
    with pytest.raises(FileNotFoundError, match=r"data.predict_dir / data.predict_csv: .*gone does not exist"):
        predict_to_csv(str(checkpoint), str(tmp_path / "gone"), str(tmp_path / "p.csv"), decode_workers=0)
    (tmp_path / "notes.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"notes.json is neither a folder nor a CSV file"):
        predict_to_csv(str(checkpoint), str(tmp_path / "notes.json"), str(tmp_path / "p.csv"), decode_workers=0)


def test_checkpoint_without_vocabularies_is_refused(tmp_path):
    model = Classifier(build_network("small", width=4), {"label": 3})  # e.g. a CIFAR-10 run's checkpoint
    path = tmp_path / "plain.ckpt"
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                "backbone": {"name": "small", "width": 4}}, path)
    with pytest.raises(ValueError, match="has no vocabularies"):
        load_predictor(str(path))


def test_train_then_predict_through_train_py(tmp_path, caplog):
    """The user's path: python train.py data=csv ..., then task=predict with the checkpoint and a folder (both
    in-process, train.run_from_overrides: the same config and run(); how train.py's main() exits on a start-up
    error is tested in test_train_start_up_errors.py and test_run_options.py)."""
    data = tmp_path / "data"
    rows = []
    for i in range(24):
        colour = list(COLORS)[i % 3]
        write_image(data / "images" / f"{i:02d}.png", class_image(COLORS[colour], seed=i))
        rows.append({"image": f"images/{i:02d}.png", "colour": colour, "shade": "ab"[i % 2]})
    write_csv(data / "labels.csv", rows)
    run = tmp_path / "run"
    run_in_process(["model=small", "data=csv", f"data.csv_path={data / 'labels.csv'}", "data.batch_size=6",
                    "data.decode_workers=0", "data.image_size=16", "data.val_fraction=0.25", "monitor=val/acc_mean",
                    "scheduler.max_lr=0.1", "trainer.max_epochs=1", "test=false", *CPU_OVERRIDES], run)
    ckpt = run / "checkpoints" / "last.ckpt"
    assert ckpt.is_file() and (run / "confusion_colour.png").is_file() and (run / "confusion_shade.png").is_file()
    out_dir = tmp_path / "pred"
    with caplog.at_level(logging.INFO):
        run_in_process(["task=predict", f"ckpt_path={ckpt}", f"data.predict_dir={data / 'images'}",
                        "data.decode_workers=0"], out_dir)
    assert f"predicted   24 images from {data / 'images'} with {ckpt}: {out_dir / 'predictions.csv'}" in caplog.text
    rows = read_rows(out_dir / "predictions.csv")
    assert len(rows) == 24 and list(rows[0]) == ["path", "colour", "colour_prob", "shade", "shade_prob"]
    assert {r["colour"] for r in rows} <= set(COLORS) and {r["shade"] for r in rows} <= {"a", "b"}
    with pytest.raises(Exception, match="data.predict_dir"):
        run_in_process(["task=predict", f"ckpt_path={ckpt}"], out_dir)


def write_new_images(folder):
    """A few images the net has not seen: the three colours and two in between."""
    for name, color in COLORS.items():
        write_image(folder / f"{name}.png", class_image(color, size=(24, 20), seed=5))
    write_image(folder / "purple.png", class_image((140, 40, 140), seed=6))
    write_image(folder / "grey.jpg", class_image((100, 100, 100), seed=7))
    return folder


def by_hand(checkpoint, folder, tta: bool) -> dict:
    """{file: (class, probability)} from the model applied here to the decoded, normalised images (flip-averaged
    logits with ``tta``), without Lightning."""
    from datamodules.image_cache import decode_image

    model, data = load_predictor(str(checkpoint))
    out = {}
    for path in sorted(folder.iterdir()):
        x = torch.from_numpy(decode_image(str(path), data["image_size"])).float()[None] / 255
        x = (x - torch.tensor(data["mean"]).view(1, 3, 1, 1)) / torch.tensor(data["std"]).view(1, 3, 1, 1)
        with torch.no_grad():
            logits = model(x)["label"]
            if tta:
                logits = 0.5 * logits + 0.5 * model(x.flip(3))["label"]
        p, idx = logits.softmax(1).max(1)
        out[path.name] = (data["vocabularies"]["label"][int(idx)], float(p))
    return out


class BackboneCalls(pl.Callback):
    """Records the dtype of every backbone output during trainer.predict."""

    def __init__(self):
        self.dtypes = []

    def on_predict_start(self, trainer, pl_module):
        pl_module.backbone.register_forward_hook(lambda module, args, out: self.dtypes.append(out.dtype))


@pytest.mark.parametrize("tta", [False, True])
def test_predictions_go_through_trainer_predict_and_match_the_model_by_hand(checkpoint, tmp_path, tta):
    folder = write_new_images(tmp_path / "new")
    calls = BackboneCalls()
    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, callbacks=[calls])
    out = predict_to_csv(str(checkpoint), str(folder), str(tmp_path / "p.csv"), batch_size=2, decode_workers=0,
                         tta=tta, trainer=trainer)
    rows = {r["path"]: r for r in read_rows(out)}
    expected = by_hand(checkpoint, folder, tta)
    assert set(rows) == set(expected)
    for name, (label, prob) in expected.items():
        assert rows[name]["label"] == label and float(rows[name]["label_prob"]) == pytest.approx(prob, abs=2e-6)
    assert len(calls.dtypes) == 3 * (2 if tta else 1)  # 5 images in batches of 2; a flipped view each with TTA


def test_prediction_runs_at_the_trainers_precision(checkpoint, tmp_path):
    folder = write_new_images(tmp_path / "new")
    calls = BackboneCalls()
    trainer = pl.Trainer(accelerator="cpu", devices=1, precision="bf16-mixed", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, callbacks=[calls])
    out = predict_to_csv(str(checkpoint), str(folder), str(tmp_path / "p.csv"), decode_workers=0, trainer=trainer)
    assert calls.dtypes == [torch.bfloat16]  # one batch, under bf16 autocast
    rows = read_rows(out)
    fp32 = by_hand(checkpoint, folder, tta=False)
    assert max(abs(float(r["label_prob"]) - fp32[r["path"]][1]) for r in rows) < 0.05


def test_task_predict_with_tta_through_train_py_run(checkpoint, tmp_path):
    """task=predict tta=true from the config: train.py's run dispatches it, predictions.csv holds the TTA result."""
    from conftest import compose_config
    from train import run

    folder = write_new_images(tmp_path / "new")
    cfg = compose_config(["task=predict", f"ckpt_path={checkpoint}", f"data.predict_dir={folder}", "tta=true",
                          "data.decode_workers=0", *CPU_OVERRIDES], output_dir=tmp_path / "run")
    run(cfg)
    rows = {r["path"]: r for r in read_rows(tmp_path / "run" / "predictions.csv")}
    for name, (label, prob) in by_hand(checkpoint, folder, tta=True).items():
        assert rows[name]["label"] == label and float(rows[name]["label_prob"]) == pytest.approx(prob, abs=2e-6)


@pytest.mark.parametrize("task", ["predict", "eval"])
def test_a_task_trainer_with_progress_bars_off_is_built(task, tmp_path):
    """``trainer.enable_progress_bar=false`` (the README's way to turn the bars off) stopped task=predict and
    task=eval with Lightning's refusal of the configured RichProgressBar; training already dropped it."""
    from conftest import compose_config
    from callbacks.run.task_trainer import task_trainer

    on = task_trainer(compose_config([f"task={task}", "trainer=cpu"], output_dir=tmp_path))
    assert type(on.progress_bar_callback).__name__ == "RichProgressBar"
    off = task_trainer(compose_config([f"task={task}", "trainer=cpu", "trainer.enable_progress_bar=false"],
                                      output_dir=tmp_path))
    assert off.progress_bar_callback is None

"""task=eval: a checkpoint's validation and test metrics, recorded like a training run's (lightning_modules/evaluate.py).

One small net is trained once, through train.py, on coloured class folders; every test evaluates its last.ckpt."""
import glob
import os
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from callbacks.run.config_checks import START_UP_ERRORS
from callbacks.run.result_file import read_result
from conftest import CPU_OVERRIDES, compose_config, run_in_process, run_train_forked
from datamodules.image_cache import decode_image
from image_files import COLORS, class_image, write_csv, write_image
from lightning_modules.predict import load_predictor
from train import run

SIZE = 16


def write_split_folders(root, per_split: dict, seed: int, shade: int = 0):
    """root/<split>/<class>/<i>.png: ``per_split`` {split: images per class (or {class: images})}; ``shade`` shifts
    every pixel (another brightness: other channel statistics)."""
    for split, counts in per_split.items():
        counts = counts if isinstance(counts, dict) else dict.fromkeys(COLORS, counts)
        for name, n in counts.items():
            colour = [min(255, c + shade) for c in COLORS[name]]
            for i in range(n):
                write_image(root / split / name / f"{i:02d}.png", class_image(colour, seed=seed + 100 * i))
    return root


def data_overrides(root):
    return ["model=small", "data=image_folder", f"data.root={root}", f"data.image_size={SIZE}", "data.batch_size=8",
            "data.decode_workers=0", *CPU_OVERRIDES]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A training run (in-process: only what it leaves is read) and a task=eval of its last.ckpt with the same
    config (train.py's command line, in a forked process, conftest.run_train_forked: its console lines are checked)."""
    root = tmp_path_factory.mktemp("eval")
    data = write_split_folders(root / "data", {"train": 8, "val": 4, "test": 4}, seed=0)
    run_in_process([*data_overrides(data), "scheduler.max_lr=0.1", "trainer.max_epochs=2"], root / "train")
    ckpt = root / "train" / "checkpoints" / "last.ckpt"
    evaluated = run_train_forked(["task=eval", f"ckpt_path={ckpt}", *data_overrides(data),
                                  f"hydra.run.dir={root / 'eval'}"], cwd=root)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    return SimpleNamespace(root=root, data=data, ckpt=ckpt, training=read_result(root / "train"),
                           eval_dir=root / "eval", eval=read_result(root / "eval"), stderr=evaluated.stderr)


def by_hand(ckpt, folder, tta: bool = False, stats=None) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of the checkpoint's model on every image below ``folder`` (its class is the
    name of its folder) computed here: decoded at the checkpoint's size, numbered by the checkpoint's classes,
    normalised with ``stats`` (default the checkpoint's), flip-averaged logits when ``tta``."""
    model, data = load_predictor(str(ckpt))
    classes = data["vocabularies"]["label"]
    paths = sorted(glob.glob(str(folder / "**" / "*.png"), recursive=True))
    x = torch.stack([torch.from_numpy(decode_image(p, SIZE)) for p in paths]).float() / 255
    mean, std = stats or (data["mean"], data["std"])
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    y = torch.tensor([classes.index(os.path.basename(os.path.dirname(p))) for p in paths])
    with torch.no_grad():
        logits = model(x)["label"]
        if tta:
            logits = 0.5 * logits + 0.5 * model(x.flip(3))["label"]
    return float((logits.argmax(1) == y).float().mean()), float(F.cross_entropy(logits, y))


def test_eval_reproduces_the_test_metrics_the_training_run_recorded(trained):
    """The training run tested its final weights, the same weights as last.ckpt: task=eval must give its numbers."""
    assert trained.training["checkpoint"] == str(trained.ckpt)
    result, recorded = trained.eval, trained.training["metrics"]
    assert result["status"] == "completed" and result["task"] == "eval" and result["tta"] is False
    assert result["checkpoint"] == str(trained.ckpt) and result["steps"] == trained.training["steps"]
    for key in ("val/acc", "val/loss", "val/f1_macro", "test/acc", "test/loss", "test/f1_macro"):
        assert result["metrics"][key] == pytest.approx(recorded[key], abs=1e-6), key
    assert result["objective"] == result["metrics"]["val/acc"] and result["eval_on"] == "held_out"
    assert (result["metrics"]["test/acc"], result["metrics"]["test/loss"]) == pytest.approx(
        by_hand(trained.ckpt, trained.data / "test"), abs=1e-5)
    assert any(line.endswith("the validation and test splits (eval_on=held_out; eval_on=all: every image of other "
                             "data)") for line in trained.stderr.splitlines())
    for png in ("confusion_label.png", "confusion_test_label.png"):
        assert (trained.eval_dir / png).read_bytes()[:4] == b"\x89PNG"
    events = EventAccumulator(str(trained.eval_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    assert {"val/acc", "test/acc", "test/loss"} <= set(events.Tags()["scalars"])
    assert {"confusion/label", "confusion/test/label"} <= set(events.Tags()["images"])
    assert any(line.startswith("completed in ") and "test/acc" in line for line in trained.stderr.splitlines())
    assert not (trained.eval_dir / "checkpoints").exists() and read_result(trained.root / "train") == trained.training


@pytest.mark.parametrize("length", [["trainer.max_steps=4", "trainer.max_epochs=-1"],   # stops mid-epoch 2
                                    ["trainer.max_epochs=3", "trainer.check_val_every_n_epoch=2"]])  # epoch 3 unvalidated
def test_a_run_records_the_validation_metrics_of_its_final_weights(trained, tmp_path, length):
    """Lightning validates neither at a stop mid-epoch nor in an epoch check_val_every_n_epoch skips: the run's val/
    metrics (and the objective a sweeper ranks) were those of earlier weights; now they are last.ckpt's, by hand."""
    run_in_process([*data_overrides(trained.data), "scheduler.max_lr=0.1", *length], tmp_path)
    result = read_result(tmp_path)
    acc, loss = by_hand(tmp_path / "checkpoints" / "last.ckpt", trained.data / "val")
    assert result["status"] == "completed" and result["steps"] == (4 if "trainer.max_steps=4" in length else 9)
    assert (result["metrics"]["val/acc"], result["metrics"]["val/loss"]) == pytest.approx((acc, loss), abs=1e-5)
    assert result["objective"] == result["metrics"]["val/acc"]


def test_tta_true_is_recorded_and_averages_the_flipped_views(trained, tmp_path):
    cfg = compose_config(["task=eval", f"ckpt_path={trained.ckpt}", *data_overrides(trained.data), "tta=true"],
                         output_dir=tmp_path)
    run(cfg)
    result = read_result(tmp_path)
    assert (result["tta"], result["tta_level"]) == (True, 1) and (trained.eval["tta"], trained.eval["tta_level"]) == (
        False, 0)
    metrics = result["metrics"]
    assert metrics["test_no_tta/acc"] == pytest.approx(trained.eval["metrics"]["test/acc"], abs=1e-6)
    acc, loss = by_hand(trained.ckpt, trained.data / "test", tta=True)
    assert metrics["test/acc"] == pytest.approx(acc, abs=1e-6) and metrics["test/loss"] == pytest.approx(loss, abs=1e-5)
    assert metrics["test/loss"] != pytest.approx(trained.eval["metrics"]["test/loss"], abs=1e-6)
    assert metrics["val/loss"] == pytest.approx(by_hand(trained.ckpt, trained.data / "val", tta=True)[1], abs=1e-5)


def test_eval_on_other_data_evaluates_every_image_normalised_as_trained(trained, tmp_path):
    """Other data than the checkpoint's (another data.root): every image of it is evaluated (19 here; its seeded
    val/test split held 2 of the 10 training-folder images and the 9 test ones), as the test split; with
    eval_on=held_out its test split alone."""
    other = write_split_folders(tmp_path / "other", {"train": {"red": 6, "green": 2, "blue": 2}, "test": 3},
                                seed=7, shade=30)
    cfg = compose_config(["task=eval", f"ckpt_path={trained.ckpt}", *data_overrides(other)], output_dir=tmp_path / "run")
    run(cfg)
    result = read_result(tmp_path / "run")
    metrics = result["metrics"]
    acc, loss = by_hand(trained.ckpt, other)
    assert result["eval_on"] == "all" and not any(key.startswith("val/") for key in metrics)
    assert metrics["test/acc"] == pytest.approx(acc, abs=1e-6) and metrics["test/loss"] == pytest.approx(loss, abs=1e-5)
    assert result["objective"] == metrics["test/acc"]
    run(compose_config(["task=eval", f"ckpt_path={trained.ckpt}", *data_overrides(other), "eval_on=held_out"],
                       output_dir=tmp_path / "held_out"))
    held_out = read_result(tmp_path / "held_out")
    acc, loss = by_hand(trained.ckpt, other / "test")
    assert held_out["eval_on"] == "held_out" and "val/acc" in held_out["metrics"]
    assert held_out["metrics"]["test/loss"] == pytest.approx(loss, abs=1e-5) != metrics["test/loss"]
    # the other folder's own training statistics would give another loss: the checkpoint's were used
    from datamodules.image_folder import ImageFolderDataModule

    own = ImageFolderDataModule(root=str(other), image_size=SIZE, decode_workers=0, batch_size=4)
    own.setup("fit")
    assert by_hand(trained.ckpt, other / "test", stats=(own.mean.tolist(), own.std.tolist()))[1] != pytest.approx(
        loss, abs=1e-4)


def test_eval_takes_a_batch_larger_than_the_training_split(trained, tmp_path):
    """Nothing trains: a batch size above the 24 training images (refused for training with drop_last) evaluates
    with the same numbers."""
    cfg = compose_config(["task=eval", f"ckpt_path={trained.ckpt}", *data_overrides(trained.data),
                          "data.batch_size=64"], output_dir=tmp_path)
    run(cfg)
    metrics = read_result(tmp_path)["metrics"]
    for key in ("val/acc", "val/loss", "test/acc", "test/loss"):
        assert metrics[key] == pytest.approx(trained.eval["metrics"][key], abs=1e-5), key
    from datamodules.image_folder import ImageFolderDataModule

    for stage, refused in (("validate", False), ("fit", True)):  # training with it is refused, naming the key
        data = ImageFolderDataModule(root=str(trained.data), image_size=SIZE, decode_workers=0, batch_size=64)
        if refused:
            with pytest.raises(ValueError, match=r"data.batch_size=64 is larger than the 24 training images"):
                data.setup(stage)
        else:
            data.setup(stage)


@pytest.mark.parametrize("layout", ["test_only", "class_folders", "csv"])
def test_eval_on_a_subset_of_the_classes_in_any_layout_numbers_them_as_trained(trained, tmp_path, layout):
    """New labelled images of two of the three classes: a test/ folder alone, ROOT/<class>/ folders, or a CSV with a
    'label' column (and an empty 'note' column, which the model has no head for: ignored). Every image is evaluated,
    each labelled by the checkpoint's class numbers (blue is 0 there, 1 among the data's own two), against the model's
    predictions computed here; the absent class is warned."""
    new = write_split_folders(tmp_path / "new", {"test": {"red": 3, "blue": 2}}, seed=11)
    root, data = new, data_overrides(new)
    if layout == "class_folders":
        root = new / "test"
        data = data_overrides(root)
    elif layout == "csv":
        rows = [{"file": p.relative_to(new).as_posix(), "note": "", "label": p.parent.name}  # note: no head's
                for p in sorted(new.rglob("*.png"))]
        csv_path = write_csv(new / "labels.csv", rows)
        data = ["data=csv", f"data.csv_path={csv_path}",
                *(o for o in data_overrides(new) if not o.startswith(("data=", "data.root=")))]
    with pytest.warns(UserWarning, match=r"the test split has no images of class\(es\) \['green'\]"):
        run(compose_config(["task=eval", f"ckpt_path={trained.ckpt}", *data], output_dir=tmp_path / "run"))
    result = read_result(tmp_path / "run")
    acc, loss = by_hand(trained.ckpt, root)
    assert result["eval_on"] == "all" and result["metrics"]["test/loss"] == pytest.approx(loss, abs=1e-5)
    assert result["metrics"]["test/acc"] == pytest.approx(acc, abs=1e-6)


def test_eval_refuses_other_classes_and_a_missing_ckpt_path(trained, tmp_path):
    other = write_split_folders(tmp_path / "other", {"train": {"red": 6, "blue": 6}}, seed=3)
    (other / "train" / "red").rename(other / "train" / "purple")
    with pytest.raises(ValueError, match=r"data.root: class\(es\) \['purple'\] of attribute 'label' are not among "
                                         r"the checkpoint's \['blue', 'green', 'red'\]"):
        run(compose_config(["task=eval", f"ckpt_path={trained.ckpt}", *data_overrides(other)], output_dir=tmp_path))
    csv_path = write_csv(tmp_path / "other.csv", [{"file": "a.png", "colour": "red"}])
    csv_data = ["data=csv", f"data.csv_path={csv_path}",
                *(o for o in data_overrides(other) if not o.startswith(("data=", "data.root=")))]
    with pytest.raises(ValueError, match=r"data.csv_path: the checkpoint's attribute\(s\) \['label'\] are not columns "
                                         r"of .*other.csv; its columns are \['file', 'colour'\]"):
        run(compose_config(["task=eval", f"ckpt_path={trained.ckpt}", *csv_data], output_dir=tmp_path))
    with pytest.raises(ValueError, match=r"eval_on: unknown value 'every'; choose one of \['auto', 'held_out'"):
        run(compose_config(["task=eval", f"ckpt_path={trained.ckpt}", *data_overrides(other), "eval_on=every"],
                           output_dir=tmp_path))
    with pytest.raises(ValueError, match="^ckpt_path: task=eval needs ckpt_path=") as err:
        run(compose_config(["task=eval", *data_overrides(trained.data)], output_dir=tmp_path))
    assert isinstance(err.value, START_UP_ERRORS)  # train.py's main() prints it alone and exits with 2


def test_a_checkpoint_of_another_network_exits_with_2_naming_the_key(trained, tmp_path):
    result = run_train_forked(["task=eval", f"ckpt_path={trained.ckpt}", *data_overrides(trained.data),
                               "model=resnet9", f"hydra.run.dir={tmp_path}"], cwd=tmp_path)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "ckpt_path" in errors[0] and "'small' network" in errors[0], result.stderr[-2000:]
    assert errors[0].endswith("add model=small (the checkpoint's network) to the command")  # not resume's words
    assert "Traceback" not in result.stderr


def test_eval_tells_the_training_data_by_where_the_training_run_read_it(trained, tmp_path, monkeypatch):
    """The checkpoint records the training data's absolute path (data.source): the same folder given another way (a
    relative path from elsewhere, a symlink) is the training data, evaluated held out. A checkpoint without it falls
    back to its run config's path (relative to this working directory), and to held out when it cannot tell."""
    from callbacks.run_config import read_checkpoint
    from lightning_modules.evaluate import evaluates_every_image

    checkpoint = read_checkpoint(str(trained.ckpt))
    assert checkpoint["data"]["source"] == os.path.realpath(trained.data)
    link = tmp_path / "link"
    link.symlink_to(trained.data)
    monkeypatch.chdir(trained.data.parent)

    def every_image(root, saved) -> bool:
        return evaluates_every_image(compose_config(["task=eval", *data_overrides(root)], output_dir=tmp_path),
                                     saved, has_stats=True)

    assert not every_image("data", checkpoint) and not every_image(link, checkpoint)
    assert every_image(tmp_path, checkpoint)
    old = {**checkpoint, "data": {k: v for k, v in checkpoint["data"].items() if k != "source"}}
    assert not every_image("data", old) and every_image(tmp_path, old)
    assert not every_image(tmp_path, {**old, "run_config": {}})  # no run config: cannot tell, held out


def test_eval_decodes_own_images_as_the_checkpoint_was_trained(trained, tmp_path):
    """Another image size or resize mode in the config (forgotten, or the data group's default) would evaluate other
    pixels than the model learned from (a wrong size stopped it; a wrong resize mode went unsaid): the checkpoint's
    are used, with a warning naming what was overruled, and the metrics are the plain evaluation's."""
    with pytest.warns(UserWarning, match=r"as the checkpoint's model was trained .*: data.image_size=24 \(trained: 16\), "
                                         r"data.resize_mode=resize \(trained: crop\)"):
        run(compose_config(["task=eval", f"ckpt_path={trained.ckpt}", *data_overrides(trained.data),
                            "data.image_size=24", "data.resize_mode=resize"], output_dir=tmp_path))
    metrics = read_result(tmp_path)["metrics"]
    for key in ("val/acc", "val/loss", "test/acc", "test/loss"):
        assert metrics[key] == pytest.approx(trained.eval["metrics"][key], abs=1e-5), key


def test_eval_on_the_training_data_holds_out_what_the_training_run_held_out(trained, tmp_path):
    """A run split its own images with its seed and fractions (or a CSV's data.split_column); task=eval with the
    data group's defaults split them afresh: training images were scored as held-out ones, silently (found with a
    CSV trained with data.split_column=fold). The checkpoint's split is used, with a warning naming what was
    overruled, and the metrics are those the training run recorded for the same weights and images."""
    flat = tmp_path / "flat"
    for name in COLORS:
        for i in range(12):
            write_image(flat / name / f"{i:02d}.png", class_image(COLORS[name], seed=7 + 31 * i))
    split = ["seed=3", "data.val_fraction=0.25", "data.test_fraction=0.25"]
    run_in_process([*data_overrides(flat), "scheduler.max_lr=0.1", "trainer.max_epochs=2", *split], tmp_path / "run")
    recorded = read_result(tmp_path / "run")["metrics"]
    with pytest.warns(UserWarning, match=r"data.val_fraction=0.1 \(trained: 0.25\), data.test_fraction=0.0 "
                                         r"\(trained: 0.25\), data.seed=0 \(trained: 3\)"):
        run(compose_config(["task=eval", f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}",
                            *data_overrides(flat)], output_dir=tmp_path / "eval"))
    metrics = read_result(tmp_path / "eval")["metrics"]
    for key in ("val/loss", "test/loss", "val/acc", "test/acc"):
        assert metrics[key] == pytest.approx(recorded[key], abs=1e-5), key

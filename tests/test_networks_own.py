"""Your own network (model=custom, lightning_modules.networks.OwnNetwork): any torch module given by its config,
trained, evaluated and used for prediction from its checkpoint, and the errors a wrong module gets."""
import json

import pytest
import torch

from conftest import CPU_OVERRIDES, run_in_process
from image_files import write_folder_dataset
from lightning_modules.networks import build_network

CONV = {"_target_": "torch.nn.Conv2d", "in_channels": 3, "out_channels": 5, "kernel_size": 3, "stride": 2}


def test_the_feature_size_is_read_off_the_module_without_changing_it():
    net = build_network("custom", module=CONV, probe_size=17)
    assert net.feature_dim == 5 * 8 * 8  # (17 - 3) // 2 + 1 = 8 pixels a side, flattened
    assert net.make_head(3)(net(torch.zeros(4, 3, 17, 17))).shape == (4, 3)
    assert net.build_args == {"name": "custom", "module": CONV, "probe_size": 17}  # plain: a checkpoint keeps it
    resnet = build_network("custom", module={"_target_": "torchvision.models.resnet18", "num_classes": 16})
    assert resnet.feature_dim == 16 and resnet.training  # the probe ran in eval mode and put training back
    bn = resnet.features[0].bn1
    assert torch.equal(bn.running_mean, torch.zeros(64)) and int(bn.num_batches_tracked) == 0  # no statistic moved


@pytest.mark.parametrize("module, message", [
    ({"in_channels": 3}, "give the module's class or function as _target_"),
    ({"_target_": "torchvision.models.resnet1000"}, "cannot build torchvision.models.resnet1000"),
    ({"_target_": "torch.zeros", "size": [2]}, "torch.zeros returned a Tensor, not a torch module"),
    ({**CONV, "in_channels": 1}, "fails on two blank 3x32x32 images"),
    ({"_target_": "torch.nn.Flatten", "start_dim": 0, "end_dim": 1}, "one row of features per image"),  # 6 rows
])
def test_a_module_that_cannot_serve_is_named_with_its_key(module, message):
    with pytest.raises(ValueError, match="model.backbone.module") as info:
        build_network("custom", module=module)
    assert message in str(info.value)


def test_a_module_that_cannot_be_imported_says_why(tmp_path, monkeypatch):
    """Hydra's "Error locating target" hid the user's ImportError, even with HYDRA_FULL_ERROR=1."""
    (tmp_path / "brokenmod.py").write_text("import nosuchdependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ValueError) as info:
        build_network("custom", module={"_target_": "brokenmod.Net"})
    assert ("cannot build brokenmod.Net: importing it failed: ModuleNotFoundError: No module named "
            "'nosuchdependency'") in str(info.value) and "PYTHONPATH" not in str(info.value)
    with pytest.raises(ValueError) as info:
        build_network("custom", module={"_target_": "notonthepath.Net"})
    assert "No module named 'notonthepath'; is the folder holding notonthepath on PYTHONPATH" in str(info.value)
    with pytest.raises(ValueError, match=r"cannot build torch.nn.Conv2d: .*missing .*required"):
        build_network("custom", module={"_target_": "torch.nn.Conv2d"})


def test_train_then_eval_and_predict_from_the_checkpoint_alone(tmp_path):
    data = write_folder_dataset(tmp_path / "data", per_class=8)
    module = ["model=custom", "model.backbone.module._target_=torch.nn.Conv2d",  # the README's way: no key to drop
              *(f"+model.backbone.module.{k}={v}" for k, v in CONV.items() if k != "_target_")]
    common = [*module, "data=image_folder", f"data.root={data}", "data.batch_size=6", "data.image_size=16",
              "data.decode_workers=0", "data.val_fraction=0.25", *CPU_OVERRIDES]
    run = tmp_path / "run"
    _, said = run_in_process([*common, "scheduler.max_lr=0.05", "trainer.max_epochs=2", "test=false"], run)
    assert "custom (torch.nn.Conv2d)" in said  # the header names the module
    trained = json.loads((run / "result.json").read_text())
    ckpt = run / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=False)["backbone"]["module"] == CONV
    _, _ = run_in_process([*common, "task=eval", f"ckpt_path={ckpt}"], tmp_path / "eval")
    evaluated = json.loads((tmp_path / "eval" / "result.json").read_text())
    assert evaluated["metrics"]["val/loss"] == pytest.approx(trained["metrics"]["val/loss"], rel=1e-6)
    run_in_process(["task=predict", f"ckpt_path={ckpt}", f"data.predict_dir={data / 'train' / 'red'}",
                    "data.decode_workers=0"], tmp_path / "pred")  # no model=: the checkpoint rebuilds the module
    lines = (tmp_path / "pred" / "predictions.csv").read_text().splitlines()
    assert lines[0] == "path,label,label_prob" and len(lines) - 1 == len(list((data / "train" / "red").iterdir()))



def test_resuming_another_modules_checkpoint_names_both_modules():
    from callbacks.run_config import CHECKPOINT_KEY, check_same_network

    def checkpoint(backbone):
        return {CHECKPOINT_KEY: {"model": {"backbone": backbone}}}

    conv = {"name": "custom", "module": CONV, "probe_size": 32}
    resnet = {"name": "custom", "module": {"_target_": "torchvision.models.resnet18", "num_classes": 512}}
    check_same_network("run.ckpt", checkpoint(conv), {**conv, "probe_size": 64})  # the same module: goes on
    with pytest.raises(ValueError) as info:
        check_same_network("run.ckpt", checkpoint(conv), resnet)
    args = "".join(f" +model.backbone.module.{k}={v}" for k, v in CONV.items() if k != "_target_")
    assert ("holds a 'custom (torch.nn.Conv2d)' network, the config builds 'custom (torchvision.models.resnet18)'; "
            f"resume with model=custom model.backbone.module._target_=torch.nn.Conv2d{args} (the checkpoint's)"
            ) in str(info.value)  # its arguments too: without them the weights would not fit
    with pytest.raises(ValueError, match="holds a 'small' network, the config builds 'custom"):
        check_same_network("run.ckpt", checkpoint({"name": "small"}), resnet)

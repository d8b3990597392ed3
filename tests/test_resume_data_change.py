"""A resume on data that changed since its checkpoint (images added, removed or relabelled): the run goes on, and
says so, because it no longer continues the run it resumes (nor replays its data order). It was silent."""
import shutil
import warnings

from conftest import CPU_OVERRIDES, run_in_process
from datamodules.synthetic import SyntheticDataModule
from image_files import write_folder_dataset


def changed_warnings(state, dm) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dm.load_state_dict(state)
    return [str(w.message) for w in caught if "the data differs" in str(w.message)]


def synthetic(**kwargs):
    dm = SyntheticDataModule(**{"num_train": 64, "num_val": 16, "image_size": 8, "batch_size": 8, **kwargs})
    dm.setup("fit")
    return dm


def test_the_data_modules_state_says_what_the_data_was_and_a_resume_compares():
    state = synthetic().state_dict()
    assert set(state["fingerprint"]) == {"train", "val", "test", "digest"}
    assert not changed_warnings(state, synthetic())  # the same data: silent (as the range test's restore is)
    assert not changed_warnings({}, synthetic())  # a checkpoint written before the data was saved in it
    redrawn = changed_warnings(state, synthetic(seed=1))  # the same sizes, other images and labels
    assert len(redrawn) == 1 and "same split sizes, other images or labels" in redrawn[0]
    assert "train 64 -> 72 images" in changed_warnings(state, synthetic(num_train=72))[0]


def test_resuming_an_image_folder_run_after_images_were_added_says_so(tmp_path):
    root = write_folder_dataset(tmp_path / "data", per_class=6, splits=("train", "val"))
    args = ["experiment=image_folder_resnet", f"data.root={root}", "model=small", "data.image_size=12",
            "data.batch_size=4", "data.decode_workers=0", "data.val_fraction=0", "data.test_fraction=0",
            "scheduler.max_lr=0.05", "trainer.max_epochs=2", "test=false", *CPU_OVERRIDES]
    run_dir = tmp_path / "run"
    run_in_process(args, run_dir)
    checkpoint = run_dir / "checkpoints" / "epoch1.ckpt"
    shutil.copy(run_dir / "checkpoints" / "last.ckpt", checkpoint)
    _, same = run_in_process([*args, f"ckpt_path={checkpoint}"], run_dir)
    assert "the data differs" not in same
    first = sorted((root / "train" / "red").iterdir())[0]  # one more image: the epoch keeps its 4 batches of 4
    shutil.copy(first, first.with_name(f"extra{first.suffix}"))
    _, text = run_in_process([*args, f"ckpt_path={checkpoint}"], run_dir)
    assert "the data differs from the checkpoint's (train 18 -> 19 images)" in text, text[-2000:]


def test_resuming_after_a_class_folder_was_renamed_is_refused_naming_both_class_lists(tmp_path):
    """A class folder renamed (or added) before a resume numbers the classes afresh: the model's outputs meant the
    checkpoint's classes, and training went on with scrambled labels, warned only as "the data differs". Now the
    resume stops at start-up, naming the head and both class lists, and the run's result stays."""
    import pytest

    from conftest import compose_config
    from train import run

    root = write_folder_dataset(tmp_path / "data", per_class=6, splits=("train", "val"))
    args = ["model=small", "data=image_folder", f"data.root={root}", "data.image_size=12", "data.batch_size=4",
            "data.decode_workers=0", "scheduler.max_lr=0.05", "trainer.max_epochs=1", "test=false", *CPU_OVERRIDES]
    run_dir = tmp_path / "run"
    run_in_process(args, run_dir)
    result = (run_dir / "result.json").read_text()
    for split in ("train", "val"):
        (root / split / "red").rename(root / split / "scarlet")  # blue, green, red -> blue, green, scarlet: same order
        (root / split / "blue").rename(root / split / "teal")  # -> green, scarlet, teal: every index moves
    with pytest.raises(ValueError, match=r"head 'label' has \['blue', 'green', 'red'\] in the checkpoint, "
                                         r"\['green', 'scarlet', 'teal'\] in the configured data"):
        run(compose_config([*args, f"ckpt_path={run_dir / 'checkpoints' / 'last.ckpt'}"], output_dir=run_dir))
    assert (run_dir / "result.json").read_text() == result


def test_a_checkpoint_of_other_attributes_is_refused_naming_both_sets_of_heads():
    """A 3-attribute CSV checkpoint evaluated or resumed on an image folder (one head, ``label``): the message names
    both sets of heads, not one head's classes as None on one side."""
    import pytest

    from callbacks.run_config import check_same_classes

    checkpoint = {"data": {"vocabularies": {"object": ["cat", "dog"], "kind": ["animal"], "brightness": ["dark"]},
                           "image_size": 32}}
    folder = {"vocabularies": {"label": ["cat", "dog"]}, "image_size": 32}
    with pytest.raises(ValueError, match=r"other attributes: its heads are object, kind, brightness, the configured "
                                         r"data's are label") as refused:
        check_same_classes("a.ckpt", checkpoint, folder)
    assert "None" not in str(refused.value)
    check_same_classes("a.ckpt", checkpoint, {**folder, "vocabularies": checkpoint["data"]["vocabularies"]})  # passes

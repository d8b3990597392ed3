"""The closing list of warnings (callbacks/run/console.py, KeepWarnings): each warning's text, whole, as the run
captured it through logging (Python's format and Lightning's, which leaves the category out)."""
import logging
import warnings

import pytorch_lightning as pl

from callbacks.run.console import KeepWarnings

CHECKPOINT_TEXT = ("`ModelCheckpoint(monitor='val/acc')` could not find the monitored key in the returned metrics: "
                   "['train/loss']. HINT: Did you call `log('val/acc', value)` in the `LightningModule`?")


def kept(line: str) -> list[str]:
    keep = KeepWarnings()
    keep.emit(logging.LogRecord("py.warnings", logging.WARNING, __file__, 1, "%s", (line,), None))
    return keep.messages


def test_a_lightning_warning_keeps_its_text_whole_and_a_python_one_loses_only_its_place_and_category():
    lightning_file = f"{pl.__path__[0]}/callbacks/model_checkpoint.py"
    as_lightning = warnings.formatwarning(CHECKPOINT_TEXT, UserWarning, lightning_file, 588)  # Lightning's format
    assert "UserWarning" not in as_lightning  # the format that lost the first half of the text before
    assert kept(as_lightning) == [CHECKPOINT_TEXT]
    as_python = warnings.formatwarning("data.root: the val split has no images", UserWarning, "/x/file_images.py", 9,
                                       line="")
    assert kept(as_python) == ["data.root: the val split has no images"]
    assert kept("a note: that names no place") == ["a note: that names no place"]

"""callbacks.figures: save_figure writes a pyplot-free Figure (folders made), log_figure reaches only TensorBoard
loggers (that importing the module configures nothing: tests/test_packaging.py)."""
from __future__ import annotations

from matplotlib.figure import Figure
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from callbacks.figures import log_figure, save_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_save_figure_makes_folders_and_writes_png(tmp_path):
    fig = Figure()
    fig.add_subplot(1, 1, 1).plot([0, 1], [1, 0])
    path = save_figure(fig, str(tmp_path / "a" / "b" / "fig.png"))
    assert open(path, "rb").read(8) == PNG_MAGIC


def test_log_figure_only_to_tensorboard_loggers(tmp_path):
    tb = TensorBoardLogger(str(tmp_path), name="tb")
    fig = Figure()
    fig.add_subplot(1, 1, 1).plot([0, 1], [1, 0])
    assert log_figure([CSVLogger(str(tmp_path)), tb], "sched/plot", fig, step=3) == 1
    assert log_figure([CSVLogger(str(tmp_path))], "sched/plot", fig) == 0
    acc = EventAccumulator(tb.log_dir, size_guidance={"images": 0})
    acc.Reload()
    assert "sched/plot" in acc.Tags()["images"] and acc.Images("sched/plot")[0].step == 3

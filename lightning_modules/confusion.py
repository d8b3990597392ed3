"""Confusion-matrix figures: class names on the axes, counts in the cells, rows normalised by colour."""
from __future__ import annotations

import functools
import os
import warnings

import torch

LAST_RESORT = "Last Resort"  # matplotlib's font of boxes for every code point: never a fallback that draws text


@functools.lru_cache(maxsize=1)
def _font_charmaps() -> tuple[tuple[str, frozenset[int]], ...]:
    """(family, code points) of every font matplotlib knows, matplotlib's default font first (read once: ~0.3 s)."""
    from matplotlib import font_manager, rcParams
    from matplotlib.ft2font import FT2Font

    default = font_manager.findfont(font_manager.FontProperties(family=rcParams["font.family"]))
    fonts = [(None, default)] + [(f.name, f.fname) for f in font_manager.fontManager.ttflist
                                 if not f.name.startswith(LAST_RESORT) and f.fname != default]
    maps = []
    for name, path in fonts:
        try:
            maps.append((name or font_manager.FontProperties(fname=path).get_name(),
                         frozenset(FT2Font(path).get_charmap())))
        except (OSError, RuntimeError, ValueError):  # a font file FreeType cannot read: not a candidate
            continue
    return tuple(maps)


def font_families(texts: list[str]) -> tuple[list[str], str]:
    """The font families to draw ``texts`` with (matplotlib falls back along the list glyph by glyph): matplotlib's
    default, then installed fonts that have the characters it lacks (CJK class names: a Noto CJK font, say); and
    the characters no installed font has ("" when there are none). The default alone costs nothing to find."""
    wanted = {ord(c) for text in texts for c in text if not c.isspace()}
    maps = _font_charmaps() if any(ord(c) > 0x24F for text in texts for c in text) else ()
    if not maps:
        return [], ""
    families, missing = [maps[0][0]], wanted - maps[0][1]
    for name, charmap in maps[1:]:
        if missing & charmap and name not in families:
            families.append(name)
            missing -= charmap
    return (families if len(families) > 1 else []), "".join(sorted(chr(c) for c in missing))


def confusion_figure(matrix: torch.Tensor, class_names: list[str], title: str, fonts: list[str] | None = None):
    """A matplotlib figure of ``matrix`` (rows: true class, columns: predicted class); ``fonts``: the font families
    for the names and title (:func:`font_families`' first answer; None: found here)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(class_names)
    counts = matrix.to(torch.int64).numpy()
    rates = counts / counts.sum(axis=1, keepdims=True).clip(min=1)
    side = max(4.0, 0.45 * k + 2)
    fig = Figure(figsize=(side, side))
    FigureCanvasAgg(fig)  # pyplot-free: a notebook's backend is left as it is
    ax = fig.subplots()
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fonts = font_families([*class_names, title])[0] if fonts is None else fonts
    font = {"fontfamily": fonts} if fonts else {}
    ax.set_xticks(range(k), class_names, rotation=90, **font)
    ax.set_yticks(range(k), class_names, **font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, **font)
    if k <= 30:
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    fig.tight_layout()
    return fig


SPLIT_NAMES = {"val": "validation", "test": "test"}


def log_confusion_matrix(trainer, head: str, matrix: torch.Tensor, class_names: list[str] | None,
                         split: str = "val") -> str:
    """Write ``<run dir>/confusion_<head>.png`` (validation) or ``confusion_test_<head>.png`` and add the figure to
    every TensorBoard logger (``confusion/<head>``, ``confusion/test/<head>``); returns the path."""
    from pytorch_lightning.loggers import TensorBoardLogger

    names = list(class_names) if class_names else [str(i) for i in range(matrix.shape[0])]
    title = f"{SPLIT_NAMES[split]} confusion matrix: {head}"
    scope = "" if split == "val" else f"{split}_"
    os.makedirs(trainer.default_root_dir, exist_ok=True)
    path = os.path.join(trainer.default_root_dir, f"confusion_{scope}{head}.png")
    fonts, unknown = font_families([*names, title])
    if unknown:  # one plain warning instead of matplotlib's one per glyph and figure
        warnings.warn(f"confusion matrix of {head!r}: no installed font draws {unknown[:20]!r} (its class or head "
                      f"names), drawn as boxes in {os.path.basename(path)}; install a font that has them (e.g. Noto "
                      f"Sans CJK: apt install fonts-noto-cjk) and remove matplotlib's font cache "
                      f"(~/.cache/matplotlib/fontlist-*.json) to have it read", UserWarning, stacklevel=2)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig = confusion_figure(matrix, names, title, fonts)
        fig.savefig(path, dpi=100)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                tag = f"confusion/{head}" if split == "val" else f"confusion/{split}/{head}"
                logger.experiment.add_figure(tag, fig, global_step=trainer.global_step)
    return path

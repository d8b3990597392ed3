"""Class names the default font cannot draw (CJK folder names, say) in the confusion figures: an installed font that
has the characters is used for them; where none has, one plain warning says so (matplotlib drew boxes and warned
once per glyph and figure). matplotlib's own fonts are the oracle: STIXGeneral has 'ᶁ' (U+1D81), DejaVu Sans not."""
import io
import warnings
from types import SimpleNamespace

import torch
from matplotlib.ft2font import FT2Font
from matplotlib import font_manager

from lightning_modules.confusion import confusion_figure, font_families, log_confusion_matrix

STIX_ONLY = "\u1d81"  # LATIN SMALL LETTER D WITH PALATAL HOOK
NO_FONT = "\U0010fffd"  # the last private-use code point: no font draws it


def glyph_warnings(names: list[str]) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        confusion_figure(torch.eye(len(names)), names, "validation confusion matrix: label").savefig(io.BytesIO())
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def test_the_oracle_holds_matplotlib_fonts_split_on_the_character():
    def has(family):
        return ord(STIX_ONLY) in FT2Font(font_manager.findfont(family, fallback_to_default=False)).get_charmap()
    assert has("STIXGeneral") and not has("DejaVu Sans")


def test_a_class_name_the_default_font_lacks_is_drawn_with_a_font_that_has_it():
    families, unknown = font_families([f"a{STIX_ONLY}", "b"])
    assert families[0] == "DejaVu Sans" and "STIXGeneral" in families and unknown == ""
    assert glyph_warnings([f"a{STIX_ONLY}", "b"]) == []


def test_plain_names_need_no_font_search():
    assert font_families(["cat", "dog", "Ünïcödé"]) == ([], "")


def test_characters_no_font_has_get_one_warning_naming_them(tmp_path):
    trainer = SimpleNamespace(default_root_dir=str(tmp_path), loggers=[], global_step=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = log_confusion_matrix(trainer, "kind", torch.eye(2), [f"x{NO_FONT}", "y"])
    messages = [str(w.message) for w in caught]
    assert sum("no installed font draws" in m and repr(NO_FONT) in m and "confusion_kind.png" in m
               for m in messages) == 1, messages
    assert not any("missing from font" in m for m in messages), messages
    assert (tmp_path / "confusion_kind.png").exists() and path.endswith("confusion_kind.png")

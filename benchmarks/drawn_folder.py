"""Where a drawn image set is written (drawn_shapes, drawn_gratings, drawn_digits, mixed_photos): a folder this
project drew before, with the same arguments, is kept as it is; with other arguments it is cleared first, so that no
file of the old set stays among the new ones (a rerun with another seed or file format mix left both); a folder that
holds anything else is refused, never cleared; a drawing cut short is cleared and drawn again."""
from __future__ import annotations

import shutil
from pathlib import Path

MARKER = ".drawn"  # what drew the folder, and with which arguments


def prepare(root: Path, parts: list[str], arguments: str, marker: str = MARKER) -> bool:
    """Make ``root`` ready for a set drawn with ``arguments`` into its subfolders ``parts``. Returns False when the
    set is there already (the marker says these arguments), True when it is to be drawn (the marker is written by
    :func:`done`; ``marker``: its file name). Raises SystemExit naming ``root`` when a part holds files that no
    drawing of this project left."""
    root = Path(root)
    marker = root / marker
    drawn_before = marker.exists()
    if drawn_before and marker.read_text() == arguments:
        return False
    taken = [p for p in parts if (root / p).exists() and any((root / p).iterdir())]
    if taken and not drawn_before:
        raise SystemExit(f"{root}: {', '.join(taken)} already hold files that this script did not draw; give an "
                         "empty or new folder")
    for p in parts:
        shutil.rmtree(root / p, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    marker.write_text(f"incomplete: {arguments}")  # a drawing cut short is this project's, to clear next time
    return True


def done(root: Path, arguments: str, marker: str = MARKER) -> None:
    """Mark ``root`` as drawn with ``arguments`` (after every file is written)."""
    (Path(root) / marker).write_text(arguments)

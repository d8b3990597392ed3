"""benchmarks/drawn_shapes.py, the drawn image sets of issue 20's held-out checks: seeded (the same arguments give
the same files), and --plain (an easy set) is a set of its own, never a stale copy of the textured one."""
import hashlib
import sys

from PIL import Image

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import drawn_shapes  # noqa: E402


def digest(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name != ".complete"}


def test_the_same_arguments_give_the_same_files_and_plain_is_its_own_set(tmp_path):
    a = digest(drawn_shapes.write_set(tmp_path / "a", per_class=3, classes=3, seed=7))
    b = digest(drawn_shapes.write_set(tmp_path / "b", per_class=3, classes=3, seed=7))
    assert a == b and len(a) == 3 * (3 + 1)  # 3 training and 1 test image per class
    plain = digest(drawn_shapes.write_set(tmp_path / "a", per_class=3, classes=3, seed=7, plain=True))
    fresh = digest(drawn_shapes.write_set(tmp_path / "c", per_class=3, classes=3, seed=7, plain=True))
    assert plain == fresh and plain != a  # redrawn over the textured set, none of whose files stayed


def test_a_plain_image_is_one_shape_in_its_class_colour_on_a_flat_background():
    import numpy as np

    rng = np.random.default_rng(0)
    for shape in drawn_shapes.SHAPES[:3]:
        image = np.asarray(drawn_shapes.draw(shape, 48, rng, plain=True))
        corners = {tuple(image[y, x]) for y in (0, -1) for x in (0, -1)}
        colours = {tuple(c) for c in image.reshape(-1, 3)}
        assert len(corners) == 1  # flat background
        assert tuple(drawn_shapes.CLASS_COLOURS[drawn_shapes.SHAPES.index(shape)]) in colours
    textured = np.asarray(drawn_shapes.draw("circle", 48, np.random.default_rng(0)))
    assert len({tuple(c) for c in textured.reshape(-1, 3)}) > 50  # the default: a textured background
    assert isinstance(drawn_shapes.draw("square", 24, rng, plain=True), Image.Image)


def test_a_folder_of_other_files_is_refused_and_left_as_it_was(tmp_path):
    import drawn_folder
    import pytest

    mine = tmp_path / "train" / "cats" / "kitty.jpg"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"a user's photo")
    with pytest.raises(SystemExit, match=r"train already hold files that this script did not draw"):
        drawn_shapes.write_set(tmp_path, per_class=2, classes=2, seed=0)
    assert mine.read_bytes() == b"a user's photo"


def test_gratings_and_digits_redrawn_with_other_arguments_keep_no_old_file(tmp_path):
    import drawn_digits
    import drawn_gratings

    drawn_gratings.write(tmp_path / "g", per_class=6, classes=2, noise=0.1, seed=0)
    first = digest(tmp_path / "g")
    drawn_gratings.write(tmp_path / "g", per_class=6, classes=2, noise=0.1, seed=0)  # the same: kept as it was
    assert digest(tmp_path / "g") == first
    drawn_gratings.write(tmp_path / "g", per_class=6, classes=2, noise=0.1, seed=1)
    drawn_gratings.write(tmp_path / "fresh", per_class=6, classes=2, noise=0.1, seed=1)
    assert digest(tmp_path / "g") == digest(tmp_path / "fresh") != first  # png/jpg of the old seed gone
    drawn_digits.write_set(tmp_path / "d", per_class=3, seed=0)
    drawn_digits.write_set(tmp_path / "d", per_class=1, seed=0)
    assert sorted(p.name for p in (tmp_path / "d" / "7").iterdir()) == ["0.png"]


def test_a_drawing_cut_short_is_cleared_and_drawn_again(tmp_path, monkeypatch):
    import pytest

    calls = []

    def draw_then_fail(shape, size, rng, plain=False):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(shape)
        return real(shape, size, rng, plain)

    real = drawn_shapes.draw
    monkeypatch.setattr(drawn_shapes, "draw", draw_then_fail)
    with pytest.raises(KeyboardInterrupt):
        drawn_shapes.write_set(tmp_path / "s", per_class=3, classes=2, seed=5)
    monkeypatch.setattr(drawn_shapes, "draw", real)
    again = digest(drawn_shapes.write_set(tmp_path / "s", per_class=3, classes=2, seed=5))  # not refused
    assert again == digest(drawn_shapes.write_set(tmp_path / "fresh", per_class=3, classes=2, seed=5))

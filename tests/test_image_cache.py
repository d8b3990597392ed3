"""Decoding any format/mode to RGB at a fixed size, reporting bad files, and the decode-once cache."""
import numpy as np
import pytest
from PIL import features

import datamodules.image_cache as image_cache
from datamodules.image_cache import decode_all, decode_image, describe_bad, load_or_decode
from image_files import class_image, write_image


def bands(width=96, height=32) -> np.ndarray:
    """Three vertical bands: red | green | blue."""
    x = np.zeros((height, width, 3), np.uint8)
    third = width // 3
    x[:, :third] = (255, 0, 0)
    x[:, third:2 * third] = (0, 255, 0)
    x[:, 2 * third:] = (0, 0, 255)
    return x


def test_crop_keeps_the_aspect_and_centre_resize_stretches(tmp_path):
    path = write_image(tmp_path / "wide.png", bands())
    crop = decode_image(str(path), 16, "crop")
    stretch = decode_image(str(path), 16, "resize")
    assert crop.shape == stretch.shape == (3, 16, 16) and crop.dtype == np.uint8
    assert (crop[1] > 200).all() and (crop[0] < 30).all()  # the centre square is the green band
    assert stretch[0, :, 0].min() > 200 and stretch[2, :, -1].min() > 200  # stretched: red left, blue right


@pytest.mark.parametrize("suffix,mode", [("jpg", "RGB"), ("png", "L"), ("png", "RGBA"), ("png", "P"), ("bmp", "RGB"),
                                         ("webp", "RGB")])
def test_formats_and_modes_become_rgb(tmp_path, suffix, mode):
    if suffix == "webp" and not features.check("webp"):
        pytest.skip("Pillow built without WebP")
    pixels = class_image((200, 40, 40), size=(40, 24))
    out = decode_image(str(write_image(tmp_path / f"im.{suffix}", pixels, mode)), 12)
    assert out.shape == (3, 12, 12)
    mean = out.reshape(3, -1).mean(1)
    if mode == "L":  # grey: three equal channels
        assert np.array_equal(out[0], out[1]) and np.array_equal(out[1], out[2])
    else:
        assert mean[0] > 150 and mean[1] < 90 and mean[2] < 90


@pytest.mark.parametrize("suffix", ["png", "tif"])
def test_sixteen_bit_grey_spans_the_same_range_as_its_eight_bit_copy(tmp_path, suffix):
    """A 16-bit scan (microscopy, medical) used to come out white wherever a pixel was above 255 of 65535."""
    from PIL import Image

    ramp = np.tile(np.linspace(0, 65535, 64), (64, 1)).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / f"deep.{suffix}")
    assert Image.open(tmp_path / f"deep.{suffix}").mode.startswith("I")
    Image.fromarray((ramp // 257).astype(np.uint8)).save(tmp_path / "flat.png")  # the oracle: 8 bits by hand
    deep, flat = decode_image(str(tmp_path / f"deep.{suffix}"), 16), decode_image(str(tmp_path / "flat.png"), 16)
    assert np.abs(deep.astype(int) - flat.astype(int)).max() <= 1
    assert deep[0, 0, 0] < 10 and deep[0, 0, -1] > 245 and 100 < deep[0, 0, 8] < 155  # a ramp, not a white wall


def test_gif_and_tiff_files_are_images_and_float_images_are_refused_with_what_to_do(tmp_path):
    from PIL import Image

    assert all(image_cache.is_image_file(f"a{ext}") for ext in (".tif", ".TIFF", ".gif"))
    write_image(tmp_path / "frame.gif", class_image((200, 40, 40), size=(20, 20)), "P")
    assert decode_image(str(tmp_path / "frame.gif"), 8).reshape(3, -1).mean(1)[0] > 150
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(tmp_path / "float.tif")
    images, bad = decode_all([str(tmp_path / "float.tif")], 8, workers=0)
    assert "32-bit float images are not supported" in bad[0] and "8- or 16-bit" in bad[0]


def test_transparent_pixels_become_white(tmp_path):
    from PIL import Image

    Image.new("RGBA", (10, 10), (0, 0, 0, 0)).save(tmp_path / "clear.png")
    assert (decode_image(str(tmp_path / "clear.png"), 8) == 255).all()


def test_bad_files_are_reported_with_a_reason(tmp_path):
    good = write_image(tmp_path / "good.png", class_image((0, 0, 200)))
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    paths = [str(good), str(corrupt), str(tmp_path / "missing.png")]
    images, bad = decode_all(paths, 8, workers=0)
    assert set(bad) == {1, 2} and bad[2] == "missing" and bad[1].startswith("does not decode")
    assert images[0].mean() > 0 and (images[1:] == 0).all()
    text = describe_bad(paths, bad)
    assert text.startswith("2 file(s)") and "corrupt.jpg" in text and "missing.png (missing)" in text
    many = describe_bad([f"f{i}" for i in range(13)], {i: "missing" for i in range(13)})
    assert "f9 (missing)" in many and "f10" not in many and "and 3 more" in many


def test_several_processes_decode_the_same_pixels(tmp_path):
    paths = [str(write_image(tmp_path / f"{i}.jpg", class_image((i * 20, 100, 50), seed=i))) for i in range(9)]
    one, _ = decode_all(paths, 16, workers=0)
    two, _ = decode_all(paths, 16, workers=2)
    assert np.array_equal(one, two)


def test_cache_is_reused_and_rebuilt_when_a_file_changes(tmp_path, monkeypatch):
    paths = [str(write_image(tmp_path / f"{i}.png", class_image((50, 50, 50 + 40 * i), seed=i))) for i in range(3)]
    cache_dir = str(tmp_path / "cache")
    first = load_or_decode(paths, 8, cache="memory", cache_dir=cache_dir, workers=0)
    assert first.key is not None and not first.bad

    def no_decode(*args, **kwargs):
        raise AssertionError("decoded again although the cache matches")

    monkeypatch.setattr(image_cache, "decode_all", no_decode)
    again = load_or_decode(paths, 8, cache="mmap", cache_dir=cache_dir, workers=0)
    assert again.key == first.key and np.array_equal(np.asarray(again.images), first.images)
    assert isinstance(again.images, np.memmap)  # mmap: the cache file is mapped, not read
    monkeypatch.undo()
    write_image(tmp_path / "1.png", class_image((250, 250, 0), seed=1))  # the file changes
    changed = load_or_decode(paths, 8, cache="memory", cache_dir=cache_dir, workers=0)
    assert changed.key != first.key
    assert changed.images[1, 0].mean() > 200 and first.images[1, 0].mean() < 100
    assert np.array_equal(changed.images[[0, 2]], first.images[[0, 2]])
    other_size = load_or_decode(paths, 12, cache="memory", cache_dir=cache_dir, workers=0)
    assert other_size.key != changed.key and other_size.images.shape == (3, 3, 12, 12)


def test_bad_cache_and_resize_settings_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="data.cache.*memory"):
        load_or_decode([], 8, cache="disk")
    with pytest.raises(ValueError, match="data.resize_mode"):
        decode_all([], 8, "pad")

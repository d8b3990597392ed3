import pytest
import torch
import torch.nn.functional as F

from datamodules.augment import alternating_flip, batch_augment, cutout, random_crop, random_flip


def batch(n=16, c=3, h=32, w=32, seed=0):
    return torch.randn(n, c, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("padding", [2, 4])
def test_crop_is_a_subwindow_of_the_reflect_padded_image(padding):
    x = batch()
    out = random_crop(x, padding, torch.Generator().manual_seed(1))
    padded = F.pad(x, (padding,) * 4, mode="reflect")
    offsets = set()
    for i in range(len(x)):
        matches = [(dy, dx) for dy in range(2 * padding + 1) for dx in range(2 * padding + 1)
                   if torch.equal(out[i], padded[i, :, dy:dy + 32, dx:dx + 32])]
        assert matches, f"image {i} is not a window of its padded image"
        offsets.add(matches[0])
    assert len(offsets) > 3, "crops should land at varied offsets"


def test_crop_offsets_cover_the_whole_range():
    x = torch.arange(32.0).view(1, 1, 1, 32).expand(400, 1, 32, 32).contiguous()
    out = random_crop(x, 4, torch.Generator().manual_seed(0))
    padded = F.pad(x, (4,) * 4, mode="reflect")
    # the first column of each crop tells the horizontal offset
    first = out[:, 0, 0, 0]
    seen = {int(dx) for dx in range(9) for v in first.unique() if v == padded[0, 0, 0, dx]}
    assert seen == set(range(9))


def test_flip_mirrors_exactly_or_leaves_alone():
    x = batch(n=64)
    out = random_flip(x, generator=torch.Generator().manual_seed(0))
    flipped = [torch.equal(out[i], x[i].flip(2)) for i in range(64)]
    same = [torch.equal(out[i], x[i]) for i in range(64)]
    assert all(f or s for f, s in zip(flipped, same))
    assert 10 < sum(flipped) < 54


def test_alternating_flip_shows_each_view_once_in_every_two_epochs():
    x = batch(n=8)
    first = torch.tensor([True, False, True, True, False, False, True, False])
    views = [alternating_flip(x, first, epoch) for epoch in range(4)]
    for epoch, out in enumerate(views):
        expected_flipped = first if epoch % 2 == 0 else ~first  # even epochs as the first, odd ones the others
        for i in range(8):
            assert torch.equal(out[i], x[i].flip(2) if expected_flipped[i] else x[i]), (epoch, i)
    assert torch.equal(views[2], views[0]) and torch.equal(views[3], views[1])
    # uint8 images too (the datamodule flips them before normalising), and the input is left alone
    u = (x.abs() * 50).to(torch.uint8)
    kept = u.clone()
    assert torch.equal(alternating_flip(u, first, 1)[1], u[1].flip(2)) and torch.equal(u, kept)


def test_cutout_fills_exactly_one_square_inside_the_image():
    x = batch(n=32) + 10.0  # no natural zeros
    out = cutout(x, 8, fill=0.0, generator=torch.Generator().manual_seed(0))
    for i in range(len(x)):
        mask = (out[i] == 0).all(0)  # same square in every channel
        assert (out[i] == 0).sum() == 3 * 64
        ys, xs = mask.nonzero(as_tuple=True)
        assert ys.max() - ys.min() == 7 and xs.max() - xs.min() == 7  # one contiguous 8x8 square, kept inside
        assert torch.equal(out[i][:, ~mask], x[i][:, ~mask])


def test_cutout_rejects_a_square_larger_than_the_image():
    with pytest.raises(ValueError, match="cutout"):
        cutout(batch(h=4, w=4), 8)


def test_batch_augment_preserves_dtype_shape_device_and_is_seeded():
    for dtype in (torch.float32, torch.float64, torch.float16):
        x = batch().to(dtype)
        a = batch_augment(x, 4, True, 8, torch.Generator().manual_seed(3))
        b = batch_augment(x, 4, True, 8, torch.Generator().manual_seed(3))
        assert a.dtype == dtype and a.shape == x.shape and a.device == x.device
        assert torch.equal(a, b)
        assert not torch.equal(a, x)


def test_batch_augment_preserves_channels_last():
    x = batch().contiguous(memory_format=torch.channels_last)
    out = batch_augment(x, 4, True, 8)
    assert out.shape == x.shape and out.is_contiguous(memory_format=torch.channels_last)
    assert batch_augment(batch(), 4, True, 8).is_contiguous()


def test_keyed_augmentation_is_reproducible_and_differs_across_ranks():
    from datamodules.tensor_images import batch_key

    def augment(key):
        return batch_augment(x, 4, True, 8, torch.Generator().manual_seed(key))

    x = batch(n=32) + 10.0  # no natural zeros: the cut-out square shows as zeros
    same = augment(batch_key(0, 3, 5, rank=0))
    assert torch.equal(same, augment(batch_key(0, 3, 5, rank=0)))
    other = augment(batch_key(0, 3, 5, rank=1))
    # the ranks draw their own crops, flips and cut-outs: the cut-out squares land elsewhere in most images
    moved = sum(not torch.equal((same[i] == 0).all(0), (other[i] == 0).all(0)) for i in range(32))
    assert moved > 24

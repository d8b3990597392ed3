"""The epoch batch sampler (datamodules/tensor_images.py): each epoch's batches a pure function of (seed, epoch), keys
per batch and rank, disjoint DDP shards, a resumable start; and the eval loaders' sharding under DDP."""
import pytest
import torch
from torch.utils.data import DistributedSampler

from datamodules.batches import TensorImageDataset, identity_collate, make_eval_loader
from datamodules.tensor_images import EpochBatchSampler, batch_key

def _keys(batches):
    return [b.key for b in batches]


def _flat(batches):
    return [i for b in batches for i in b.indices]


def test_epoch_batch_sampler_is_a_pure_function_of_seed_and_epoch():
    data = range(100)
    a, b = EpochBatchSampler(data, 16, seed=3, drop_last=False), EpochBatchSampler(data, 16, seed=3, drop_last=False)
    first = list(a)
    assert len(first) == len(a) == 7 and sorted(_flat(first)) == list(range(100))
    assert [len(r.indices) for r in first] == [16] * 6 + [4]
    assert first == list(b)
    assert _keys(first) == [batch_key(3, 0, i) for i in range(7)] and len(set(_keys(first))) == 7
    a.set_epoch(1)
    second = list(a)
    assert _flat(second) != _flat(first) and sorted(_flat(second)) == list(range(100))
    assert not set(_keys(second)) & set(_keys(first))
    assert _flat(EpochBatchSampler(data, 16, seed=4, drop_last=False)) != _flat(first)
    dropping = EpochBatchSampler(data, 16, seed=3, drop_last=True)
    assert len(dropping) == 6 and list(dropping) == first[:6]


def test_batch_key_depends_on_every_coordinate():
    base = batch_key(0, 0, 0, 0)
    assert batch_key(0, 0, 0, 0) == base and 0 <= base < 2 ** 63
    assert len({base, batch_key(1, 0, 0, 0), batch_key(0, 1, 0, 0), batch_key(0, 0, 1, 0), batch_key(0, 0, 0, 1)}) == 5


@pytest.mark.parametrize("n, drop_last", [(96, True), (101, True), (101, False)])
def test_ranks_get_disjoint_equal_shards_and_their_own_keys(n, drop_last):
    ranks = [EpochBatchSampler(range(n), 8, seed=0, drop_last=drop_last, num_replicas=2, rank=r) for r in (0, 1)]
    for s in ranks:
        s.set_epoch(2)
    r0, r1 = (list(s) for s in ranks)
    assert len(r0) == len(r1) == len(ranks[0])  # every rank steps the same number of times
    if drop_last:
        assert not set(_flat(r0)) & set(_flat(r1))
        assert len(_flat(r0)) == len(_flat(r1)) == (n // 2) // 8 * 8
    else:  # padded by wrapping round: everything is seen, one index twice
        assert set(_flat(r0)) | set(_flat(r1)) == set(range(n)) and len(_flat(r0) + _flat(r1)) == n + 1
    assert _keys(r0) == [batch_key(0, 2, i, 0) for i in range(len(r0))]
    assert _keys(r1) == [batch_key(0, 2, i, 1) for i in range(len(r1))]
    # one process sees the whole epoch's permutation, in the same order as the two ranks interleaved
    single = EpochBatchSampler(range(n), 8, seed=0, drop_last=drop_last)
    assert _flat(r0) == single.rank_indices(2)[0::2][:len(_flat(r0))]


@pytest.mark.parametrize("n, replicas", [(101, 2), (7, 3), (2, 3)])
def test_an_eval_loader_under_ddp_sees_every_image_once(n, replicas):
    """Lightning's DistributedSampler would pad a split of 101 images on 2 ranks to 102 (one image counted twice in
    val/test accuracy); the eval loaders shard it as it is. A split smaller than the ranks keeps Lightning's."""
    data = TensorImageDataset(torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1), torch.arange(n))
    seen = []
    for rank in range(replicas):
        loader = make_eval_loader(data, 4, {"num_replicas": replicas, "rank": rank}, collate_fn=identity_collate)
        if n < replicas:
            assert not isinstance(loader.sampler, DistributedSampler)  # Lightning replaces it (and pads)
            return
        assert isinstance(loader.sampler, DistributedSampler)  # so Lightning keeps it
        seen += [int(i) for _, labels in loader for i in labels]
    assert sorted(seen) == list(range(n))
    one = make_eval_loader(data, 4, {}, collate_fn=identity_collate)
    assert [int(i) for _, labels in one for i in labels] == list(range(n))  # one process: in order, no sampler


def test_sampler_start_is_read_by_every_iterator_and_reset_by_a_new_epoch():
    s = EpochBatchSampler(range(64), 8, seed=1)
    full = list(s)
    s.start = 3
    assert list(s) == full[3:]
    assert list(s) == full[3:]  # not consumed: a second iterator starts at the same place
    s.set_epoch(0)
    assert list(s) == full[3:]  # same epoch: the position stands
    s.set_epoch(1)
    assert s.start == 0 and len(list(s)) == 8

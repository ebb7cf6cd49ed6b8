"""minift.batching: seeded samplers cover every index once, buckets cut padding, oversampling balances,
class weights match scikit-learn, padding and collation."""
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minift.batching import (
    PAD_VALUES, balanced_class_weights, collate, epoch_batches, length_bucketed_batches, oversampled_indices, pad_batch,
    padded_batches,
    random_batches, undersampled_indices,
)


# ---------------------------------------------------------------------------------------------- samplers


@settings(max_examples=80, deadline=None)
@given(lengths=st.lists(st.integers(1, 512), max_size=400), batch_size=st.integers(1, 33),
       seed=st.integers(0, 2**32 - 1), epoch=st.integers(0, 100), chunk=st.integers(1, 5))
def test_samplers_cover_every_index_once_and_are_deterministic(lengths, batch_size, seed, epoch, chunk):
    n = len(lengths)
    for batches in (random_batches(n, batch_size, seed, epoch),
                    length_bucketed_batches(lengths, batch_size, seed, epoch, chunk_batches=chunk)):
        assert sorted(i for b in batches for i in b) == list(range(n))
        assert all(1 <= len(b) <= batch_size for b in batches)
        assert sum(len(b) < batch_size for b in batches) <= 1
    assert random_batches(n, batch_size, seed, epoch) == random_batches(n, batch_size, seed, epoch)
    assert length_bucketed_batches(lengths, batch_size, seed, epoch, chunk) == length_bucketed_batches(
        lengths, batch_size, seed, epoch, chunk)
    for b in length_bucketed_batches(lengths, batch_size, seed, epoch, chunk):
        assert [lengths[i] for i in b] == sorted(lengths[i] for i in b)


def test_epochs_reshuffle_and_buckets_cut_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 300, size=3200).tolist()
    assert random_batches(3200, 32, 0, 0) != random_batches(3200, 32, 0, 1)
    assert length_bucketed_batches(lengths, 32, 0, 0) != length_bucketed_batches(lengths, 32, 0, 1)

    def padding(batches):
        return sum(max(lengths[i] for i in b) * len(b) - sum(lengths[i] for i in b) for b in batches)

    assert padding(length_bucketed_batches(lengths, 32, 0, 0)) < 0.1 * padding(random_batches(3200, 32, 0, 0))


@settings(max_examples=80, deadline=None)
@given(labels=st.lists(st.sampled_from([0, 1, 2, "x"]), min_size=1, max_size=150),
       seed=st.integers(0, 2**32 - 1), epoch=st.integers(0, 9))
def test_over_and_undersampling_balance_classes(labels, seed, epoch):
    counts = Counter(labels)
    for sample, size in ((oversampled_indices, max), (undersampled_indices, min)):
        order = sample(labels, seed, epoch)
        drawn = Counter(labels[i] for i in order)
        assert set(drawn.values()) == {size(counts.values())} and drawn.keys() == counts.keys()
        assert order == sample(labels, seed, epoch)
    assert set(oversampled_indices(labels, seed, epoch)) == set(range(len(labels)))  # nothing is dropped
    order = undersampled_indices(labels, seed, epoch)
    assert len(set(order)) == len(order)  # nothing is repeated, and the smallest class is kept whole
    assert set(order) >= {i for i, label in enumerate(labels) if counts[label] == min(counts.values())}


def test_undersampling_draws_afresh_each_epoch_and_shuffles():
    labels = [0] * 900 + [1] * 100
    epochs = [undersampled_indices(labels, 0, e) for e in range(200)]
    assert epochs[0] != epochs[1]
    assert [labels[i] for i in epochs[0]] != sorted(labels[i] for i in epochs[0])  # classes mixed
    # each majority row is drawn in an epoch with probability 100 / 900: about 22 of 200 epochs, binomially
    times = Counter(i for order in epochs for i in order if labels[i] == 0)
    assert len(times) == 900  # every majority row had its turn
    assert max(times.values()) < 200 / 9 + 6 * np.sqrt(200 * (1 / 9) * (8 / 9))
    assert undersampled_indices([], 0, 0) == []


def test_balanced_class_weights_match_sklearn():
    from sklearn.utils.class_weight import compute_class_weight

    rng = np.random.default_rng(1)
    for num_classes in (2, 3, 7):
        labels = rng.integers(0, num_classes, size=500).tolist() + list(range(num_classes))
        ours = balanced_class_weights(labels, num_classes)
        ref = compute_class_weight("balanced", classes=np.arange(num_classes), y=np.array(labels))
        assert ours.dtype == torch.float32
        np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-6)
    assert balanced_class_weights([0, 0, 0, 2], 3).tolist() == pytest.approx([4 / 9, 0.0, 4 / 3])


# ---------------------------------------------------------------------------------------------- padding


@settings(max_examples=80, deadline=None)
@given(seqs=st.lists(st.lists(st.integers(1, 30000), max_size=20), min_size=1, max_size=10), pad=st.integers(0, 5))
def test_pad_batch_pads_to_the_longest_and_masks(seqs, pad):
    ids, mask = pad_batch(seqs, pad_id=pad)
    width = max(map(len, seqs))
    assert ids.shape == mask.shape == (len(seqs), width) and ids.dtype == mask.dtype == torch.long
    for row, m, s in zip(ids.tolist(), mask.tolist(), seqs):
        assert row[: len(s)] == s and row[len(s):] == [pad] * (width - len(s))
        assert m == [1] * len(s) + [0] * (width - len(s))


def test_collate_pads_each_key_with_its_value_and_stacks_scalars():
    features = [
        {"input_ids": [101, 7, 102], "token_type_ids": [0, 0, 0], "labels": [-100, 3, -100], "score": 0.5,
         "hot": [1.0, 0.0]},
        {"input_ids": [101, 102], "token_type_ids": [0, 0], "labels": [-100, -100], "score": 2.0, "hot": [0.0, 1.0]},
    ]
    batch = collate(features)
    assert batch["input_ids"].tolist() == [[101, 7, 102], [101, 102, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[-100, 3, -100], [-100, -100, -100]]  # the loss's ignore_index
    assert PAD_VALUES["labels"] == -100 and PAD_VALUES["input_ids"] == 0
    assert batch["score"].dtype == torch.float32 and batch["score"].tolist() == [0.5, 2.0]
    assert batch["hot"].dtype == torch.float32 and batch["hot"].tolist() == [[1, 0], [0, 1]]
    assert batch["input_ids"].dtype == torch.long
    custom = collate([{"input_ids": [5], "attention_mask": [1]}, {"input_ids": [], "attention_mask": []}],
                     pad_values={"input_ids": 9})
    assert custom["input_ids"].tolist() == [[5], [9]] and custom["attention_mask"].tolist() == [[1], [0]]
    with pytest.raises(ValueError, match="no pad value for the feature 'spans'"):
        collate([{"spans": [1, 2]}, {"spans": [1]}])


def test_collate_stacks_tensor_features():
    """Multi-hot label vectors (tensors) are stacked into (B, C), ids padded beside them."""
    batch = collate([{"input_ids": [5, 6], "labels": torch.tensor([1.0, 0.0])},
                     {"input_ids": [7], "labels": torch.tensor([0.0, 1.0])}])
    assert batch["labels"].shape == (2, 2) and batch["labels"][1, 1] == 1
    assert batch["input_ids"].tolist() == [[5, 6], [7, 0]]


def test_epoch_batches_orders():
    lengths = [5, 1, 9, 3, 7, 2, 8]
    assert epoch_batches(lengths, 3) == [[0, 1, 2], [3, 4, 5], [6]]  # evaluation: file order
    shuffled = epoch_batches(lengths, 3, seed=1, epoch=0, shuffle=True)
    assert shuffled == random_batches(len(lengths), 3, 1, 0)
    bucketed = epoch_batches(lengths, 3, seed=1, epoch=0, shuffle=True, bucket=True)
    assert bucketed == length_bucketed_batches(lengths, 3, 1, 0)
    assert sorted(i for b in bucketed for i in b) == list(range(len(lengths)))


def test_padded_batches_keep_only_the_model_keys():
    features = [{"input_ids": [4, 5, 6], "offsets": "kept aside"}, {"input_ids": [7]}, {"input_ids": [8, 9]}]
    batches = list(padded_batches(features, 2, pad_id=1, keys=("input_ids",)))
    assert [b["input_ids"].tolist() for b in batches] == [[[4, 5, 6], [7, 1, 1]], [[8, 9]]]
    assert all("offsets" not in b for b in batches)
    assert batches[0]["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    shuffled = list(padded_batches(features, 2, pad_id=1, seed=3, shuffle=True, keys=("input_ids",)))
    assert sorted(len(b["input_ids"]) for b in shuffled) == [1, 2]

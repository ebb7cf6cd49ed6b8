"""From examples to batches: seeded batch samplers, class balancing and dynamic padding.

A training epoch is a list of batches, each a list of example indices; a batch of features is then padded
into tensors. Everything is deterministic given (seed, epoch), so a run resumed at epoch e sees the same
batches as the run it resumes.

    random_batches           a permutation of 0..n-1 cut into batches of `batch_size`
    length_bucketed_batches  similar lengths together, so a batch pads to little more than its own tokens
    epoch_batches            one of the two above (training), or file order (evaluation)
    oversampled_indices      each smaller class repeated at random until every class has n_max examples
    undersampled_indices     n_min examples drawn from each class, afresh each epoch
    balanced_class_weights   w_c = n / (C * n_c), a loss weight per class instead of resampling
    pad_batch, collate       right-pad lists to the longest in the batch (not to a global max_length)

References: length-bucketed batches, AllenNLP's BucketIterator and Hugging Face's `group_by_length`;
random over- and undersampling, imbalanced-learn's RandomOverSampler and RandomUnderSampler; "balanced" class
weights, scikit-learn's compute_class_weight (King & Zeng 2001); labels padded with -100, the `ignore_index` of
the losses (PyTorch's cross_entropy and minift/losses.py).
"""
import numpy as np
import torch

from minift.splits import by_class


# --- Batch samplers: lists of indices, deterministic given (seed, epoch) -------------------------
def _rng(seed, epoch):
    return np.random.default_rng([seed, epoch])


def _cut(order, batch_size):
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def random_batches(n, batch_size, seed, epoch):
    """A random permutation of 0..n-1 cut into batches (the last one may be shorter)."""
    return _cut(_rng(seed, epoch).permutation(n).tolist(), batch_size)


def length_bucketed_batches(lengths, batch_size, seed, epoch, chunk_batches=50):
    """Batches of similar lengths: shuffle, sort each chunk of chunk_batches * batch_size indices by
    length, cut the chunks into batches, then shuffle the order of the batches."""
    rng = _rng(seed, epoch)
    order, chunk = rng.permutation(len(lengths)).tolist(), chunk_batches * batch_size
    batches = []
    for start in range(0, len(order), chunk):
        batches += _cut(sorted(order[start:start + chunk], key=lambda i: lengths[i]), batch_size)
    return [batches[i] for i in rng.permutation(len(batches))]


def epoch_batches(lengths, batch_size, seed=0, epoch=0, shuffle=False, bucket=False):
    """The batches of one pass over examples of the given token lengths: in file order (evaluation), shuffled
    (training), or shuffled and length-bucketed (`bucket`)."""
    if shuffle and bucket:
        return length_bucketed_batches(lengths, batch_size, seed, epoch)
    if shuffle:
        return random_batches(len(lengths), batch_size, seed, epoch)
    return _cut(list(range(len(lengths))), batch_size)


def oversampled_indices(labels, seed, epoch):
    """Every index once, plus repeats drawn at random (with replacement) from each smaller class until every
    class has as many as the largest one, all shuffled: one epoch's order, to be cut into batches in turn."""
    rng, classes = _rng(seed, epoch), by_class(labels)
    most = max(map(len, classes.values()), default=0)
    out = []
    for idx in classes.values():
        out += idx + rng.choice(idx, most - len(idx), replace=True).tolist()
    return [out[i] for i in rng.permutation(len(out))]


def undersampled_indices(labels, seed, epoch):
    """From each class, as many indices as the smallest class has, drawn at random without replacement and
    afresh each epoch (so over the epochs every row of a large class gets its turn), all shuffled."""
    rng, classes = _rng(seed, epoch), by_class(labels)
    fewest = min(map(len, classes.values()), default=0)
    out = []
    for idx in classes.values():
        out += rng.choice(idx, fewest, replace=False).tolist()
    return [out[i] for i in rng.permutation(len(out))]


def balanced_class_weights(labels, num_classes):
    """Weight n / (C * n_c) per class id c (n examples, C classes, n_c of class c); 0 for absent classes."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes).astype(np.float64)
    weights = np.divide(len(labels), num_classes * counts, out=np.zeros(num_classes), where=counts > 0)
    return torch.tensor(weights, dtype=torch.float32)


# --- Padding -------------------------------------------------------------------------------------
PAD_VALUES = {"input_ids": 0, "token_type_ids": 0, "attention_mask": 0, "labels": -100}


def _pad(sequences, value):
    """Right-pad lists to the longest one; a tensor (B, T), long for ints, float if any value is a float."""
    width = max(map(len, sequences), default=0)
    rows = [list(s) + [value] * (width - len(s)) for s in sequences]
    return torch.tensor(rows, dtype=None if width else torch.long).reshape(len(rows), width)


def pad_batch(sequences, pad_id=0):
    """Token id lists -> (input_ids LongTensor (B, T), attention_mask (B, T): 1 on tokens, 0 on padding),
    T the longest sequence in this batch (dynamic padding)."""
    return _pad(sequences, pad_id), _pad([[1] * len(s) for s in sequences], 0)


def collate(features, pad_values=None):
    """A list of feature dicts -> a dict of tensors. Lists are right-padded with `pad_values[key]`
    (defaults PAD_VALUES: ids, segments and mask with 0, token labels with -100, the index the loss
    ignores); scalars and tensors (a class id, a score, a multi-hot vector) are stacked. An
    attention_mask is added if missing."""
    pads = {**PAD_VALUES, **(pad_values or {})}
    batch = {}
    for key in features[0]:
        values = [f[key] for f in features]
        if isinstance(values[0], torch.Tensor):  # a class id, a score or a multi-hot vector
            batch[key] = torch.stack(values)
        elif not isinstance(values[0], (list, tuple)):
            batch[key] = torch.tensor(values)
        elif key in pads or len(set(map(len, values))) == 1:
            batch[key] = _pad(values, pads.get(key, 0))
        else:
            raise ValueError(f"no pad value for the feature {key!r}: pass pad_values={{{key!r}: ...}}")
    if "input_ids" in batch and "attention_mask" not in batch:
        batch["attention_mask"] = pad_batch([f["input_ids"] for f in features])[1]
    return batch


def padded_batches(features, batch_size, pad_id, seed=0, epoch=0, shuffle=False, bucket=False, keys=None):
    """Yield the padded batches of one pass over `features` (dicts of lists), in the order `epoch_batches`
    gives; `keys` keeps only the fields the model reads (the rest, e.g. offsets for decoding, stays behind)."""
    lengths = [len(f["input_ids"]) for f in features]
    for idx in epoch_batches(lengths, batch_size, seed, epoch, shuffle, bucket):
        rows = [features[i] if keys is None else {k: features[i][k] for k in keys if k in features[i]} for i in idx]
        yield collate(rows, {"input_ids": pad_id})

"""Validation splits: a stratified train / validation split, k stratified folds, and the check that a split
left something to train and validate on.

Reference: the stratified split by largest remainder, as scikit-learn's StratifiedShuffleSplit; the folds dealt
round-robin per class, as its StratifiedKFold. Reading the rows is `minift/data.py`; sampling batches from the
training split (oversampling, undersampling) is `minift/batching.py`.
"""
import math

import numpy as np

from minift.data import DataError


def check_training_rows(source, n_train, n_valid, labels=None, valid_fraction=None):
    """Refuse, before training, a run that cannot produce a model: no training rows, no validation rows (too few
    rows for `valid_fraction` of them to make one, when the split comes from the training file), or a single
    class among the training `labels` (classification only; None skips that check). Called by the loop after
    the split, with the sizes it produced; `source` names the training file."""
    if n_train + n_valid == 0:
        raise DataError(f"{source}: no rows to train on")
    if n_valid == 0 and valid_fraction is not None:
        raise DataError(f"{source}: {n_train + n_valid} row(s), and --valid-fraction {valid_fraction} of them is "
                        f"{valid_fraction * (n_train + n_valid):.2g} rows, so the validation split would be empty: "
                        f"add rows ({math.ceil(1 / valid_fraction)} or more for that fraction), raise "
                        "--valid-fraction, or pass --valid FILE")
    if n_valid == 0:
        raise DataError(f"{source}: the validation data has no rows; give a --valid file with rows")
    if n_train == 0:
        raise DataError(f"{source}: no rows are left to train on after the validation split; add rows or lower "
                        "--valid-fraction")
    classes = set(labels or []) - {None, ""}
    if labels is not None and len(classes) < 2:
        only = f"the label {next(iter(classes))!r}" if classes else "no label"
        raise DataError(f"{source}: all {len(labels)} training rows have {only}; a classifier needs rows of at "
                        "least two classes to learn from")


def by_class(labels):
    """{label: [indices with that label]}, classes in order of first appearance."""
    groups = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    return groups


def stratified_split(labels, valid_fraction, seed, stratify=True):
    """Split indices 0..N-1 into (train_idx, valid_idx), both sorted, the same for the same seed.

    Stratified: each class c of n_c examples gives floor(f * n_c) or that plus one to validation, the
    plus-ones going to the largest remainders until round(f * N) are chosen; a class always keeps at
    least one example in training. With `stratify=False`, or float labels (regression), a plain shuffle
    sends round(f * N) examples (at least 1, at most N - 1) to validation."""
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must lie strictly between 0 and 1, got {valid_fraction}")
    n, rng = len(labels), np.random.default_rng(seed)
    if not stratify or any(isinstance(label, float) for label in labels):
        order = rng.permutation(n).tolist()
        n_valid = min(max(round(valid_fraction * n), 1), n - 1) if n >= 2 else 0
        return sorted(order[n_valid:]), sorted(order[:n_valid])
    classes = by_class(labels)
    share = {c: valid_fraction * len(idx) for c, idx in classes.items()}
    quota = {c: math.floor(s) for c, s in share.items()}
    left = round(valid_fraction * n) - sum(quota.values())
    for c in sorted(classes, key=lambda c: quota[c] - share[c]):  # largest remainder first (stable)
        if left > 0 and quota[c] + 1 < len(classes[c]):
            quota[c] += 1
            left -= 1
    valid = []
    for c, idx in classes.items():
        valid += rng.choice(idx, quota[c], replace=False).tolist()
    chosen = set(valid)
    return [i for i in range(n) if i not in chosen], sorted(valid)


def stratified_folds(labels, k, seed, stratify=True):
    """Split indices 0..N-1 into k disjoint folds (lists of sorted indices) covering them all, for k-fold
    cross-validation: fold j validates, the others train. Stratified: each class's indices, shuffled, are dealt
    round-robin to the folds, the deal continuing from class to class, so every fold holds floor(n_c / k) or
    one more of each class c, and the fold sizes differ by at most one. With `stratify=False`, or float labels
    (regression), one shuffle of all the indices is dealt."""
    if k < 2 or k > len(labels):
        raise ValueError(f"k-fold cross-validation needs 2 <= k <= {len(labels)} rows, got k = {k}")
    rng = np.random.default_rng(seed)
    if not stratify or any(isinstance(label, float) for label in labels):
        groups = [list(range(len(labels)))]
    else:
        groups = list(by_class(labels).values())
    folds, turn = [[] for _ in range(k)], 0
    for idx in groups:
        for i in rng.permutation(idx).tolist():
            folds[turn % k].append(i)
            turn += 1
    return [sorted(fold) for fold in folds]

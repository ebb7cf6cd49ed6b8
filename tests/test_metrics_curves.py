"""minift.metrics.curves against sklearn.metrics.roc_curve / precision_recall_curve; the tuned multi-label
thresholds against a brute-force search with sklearn's f1_score; data.stratified_folds against the promises of its
docstring and sklearn's StratifiedKFold fold sizes."""
from collections import Counter

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import StratifiedKFold

from minift.metrics import best_threshold, best_thresholds, precision_recall_curve, roc_curve
from minift.splits import stratified_folds

# Scores with many ties (a few levels), 0 and 1 included, and the occasional tiny gap between two values.
LEVELS = [0.0, 1e-12, 0.1, 0.25, 0.5, 0.5 + 1e-9, 0.75, 0.9, 1.0]


@st.composite
def binary_case(draw, both_classes=True):
    n = draw(st.integers(1 if not both_classes else 2, 40))
    y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    if both_classes:
        y[0], y[1] = 0, 1
    scores = draw(st.one_of(st.lists(st.sampled_from(LEVELS), min_size=n, max_size=n),
                            st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=n, max_size=n)))
    return y, np.array(scores, dtype=float)


@settings(max_examples=150, deadline=None)
@given(binary_case())
def test_roc_curve_equals_sklearn(case):
    y, scores = case
    for ours, theirs in zip(roc_curve(y, scores), skm.roc_curve(y, scores)):
        np.testing.assert_array_equal(ours, theirs)


@settings(max_examples=150, deadline=None)
@given(binary_case(both_classes=False))
def test_precision_recall_curve_equals_sklearn(case):
    y, scores = case
    with pytest.warns(UserWarning) if not y.any() else _no_warning():
        theirs = skm.precision_recall_curve(y, scores)
    for ours, expected in zip(precision_recall_curve(y, scores), theirs):
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-15)


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_curves_read_pos_label_and_reject_nan():
    y = np.array(["a", "b", "b", "a"])
    s = np.array([0.1, 0.8, 0.4, 0.35])
    for ours, theirs in zip(roc_curve(y, s, pos_label="b"), skm.roc_curve(y, s, pos_label="b")):
        np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(ValueError, match="NaN"):
        roc_curve([0, 1], [0.1, np.nan])


@settings(max_examples=150, deadline=None)
@given(binary_case(both_classes=False))
def test_best_threshold_reaches_the_brute_force_maximum_f1(case):
    """No threshold does better: every distinct score, and below them all, tried with sklearn's f1_score."""
    y, scores = case
    t = best_threshold(y, scores)
    if not y.any():
        assert t == 0.5
        return
    f1_at = lambda th: skm.f1_score(y, (scores > th).astype(int), zero_division=0.0)  # noqa: E731
    candidates = list(np.unique(scores)) + [np.nextafter(scores.min(), -np.inf)]
    assert f1_at(t) == pytest.approx(max(f1_at(c) for c in candidates), abs=1e-12)
    # and on ties the highest cut: no larger threshold predicting fewer rows is as good
    assert all(f1_at(c) < f1_at(t) - 1e-12 for c in candidates if (scores > c).sum() < (scores > t).sum())


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.int64, st.tuples(st.integers(1, 20), st.integers(2, 5)), elements=st.integers(0, 1)),
       st.randoms(use_true_random=False))
def test_best_thresholds_tunes_each_column(y, rnd):
    scores = np.array([[rnd.choice(LEVELS) for _ in range(y.shape[1])] for _ in range(y.shape[0])])
    t = best_thresholds(y, scores)
    assert t.shape == (y.shape[1],)
    assert list(t) == [best_threshold(y[:, j], scores[:, j]) for j in range(y.shape[1])]
    macro = skm.f1_score(y, (scores > t).astype(int), average=None, zero_division=0.0)
    half = skm.f1_score(y, (scores > 0.5).astype(int), average=None, zero_division=0.0)
    assert (macro >= half - 1e-12).all()  # never worse than the 0.5 default, label by label
    with pytest.raises(ValueError):
        best_thresholds(y, scores[:, :1])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from("abcd"), min_size=2, max_size=60), st.integers(2, 6), st.integers(0, 2**31))
def test_stratified_folds_partition_and_balance(labels, k, seed):
    if k > len(labels):
        with pytest.raises(ValueError):
            stratified_folds(labels, k, seed)
        return
    folds = stratified_folds(labels, k, seed)
    assert len(folds) == k and sorted(i for f in folds for i in f) == list(range(len(labels)))
    assert all(f == sorted(f) for f in folds) and folds == stratified_folds(labels, k, seed)
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    for c, n_c in Counter(labels).items():
        per_fold = [sum(labels[i] == c for i in f) for f in folds]
        assert set(per_fold) <= {n_c // k, n_c // k + 1}
    if min(Counter(labels).values()) >= k:  # where sklearn's StratifiedKFold runs, the same fold sizes
        theirs = sorted(len(v) for _, v in StratifiedKFold(k).split(np.zeros(len(labels)), labels))
        assert sorted(sizes) == theirs


def test_stratified_folds_shuffle_regression_targets():
    folds = stratified_folds([i / 3 for i in range(10)], 3, 0)
    assert sorted(map(len, folds)) == [3, 3, 4] and folds != stratified_folds([i / 3 for i in range(10)], 3, 1)

"""Metrics against their references where the ordinary generators do not reach (spec/metrics.md sections 2, 5, 6).

Pearson and Spearman at any scale (1e-300 .. 1e300: the norms under- or overflow unless the samples are scaled),
and precision / recall / F1 with string labels, a pos_label other than 1, label lists that are subsets of the
data or hold labels never seen, and every zero_division including "warn" (whose warning must come too).
"""
import warnings

import numpy as np
import pytest
import scipy.stats
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as st

from minift.metrics.classification import UndefinedMetricWarning, precision_recall_f1
from minift.metrics.regression import pearson, spearman


def scipy_r(fn, x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(x, y).statistic)


def same(a, b, tol=1e-9):
    return (np.isnan(a) and np.isnan(b)) or abs(a - b) <= tol


@settings(deadline=None, max_examples=150)
@given(pairs=st.lists(st.tuples(st.integers(-5, 5), st.integers(-5, 5)), min_size=2, max_size=30),
       ex=st.integers(-300, 300), ey=st.integers(-300, 300), shift=st.sampled_from([0.0, 1.0]))
def test_correlations_match_scipy_at_any_scale(pairs, ex, ey, shift):
    x = (np.array([a for a, _ in pairs], float) + shift) * 10.0 ** ex
    y = np.array([b for _, b in pairs], float) * 10.0 ** ey
    assert same(pearson(x, y), scipy_r(scipy.stats.pearsonr, x, y))
    assert same(spearman(x, y), scipy_r(scipy.stats.spearmanr, x, y))


@pytest.mark.parametrize("scale", [1e200, 1e-170, 1e-300, 1e300])
def test_pearson_of_huge_and_tiny_samples_is_scipys(scale):
    """Issue 13: [1e200, 2e200, 3e200] gave 0.0 and values near 1e-170 gave nan; scipy gives the unscaled r."""
    x, y = np.array([1.0, 2.0, 3.0]) * scale, np.array([1.0, 3.0, 2.5])
    want = scipy_r(scipy.stats.pearsonr, x, y)
    assert want == pytest.approx(scipy_r(scipy.stats.pearsonr, [1.0, 2.0, 3.0], y), abs=1e-12)  # scale-free
    assert pearson(x, y) == pytest.approx(want, abs=1e-12)
    assert pearson(y, x) == pytest.approx(want, abs=1e-12)


NAMES = ["ant", "bee", "cat", "dog"]


@st.composite
def labelled(draw):
    """(y_true, y_pred, labels, pos_label): strings or ints (0 absent as often as not), labels a subset of the
    data, a superset with unseen labels, or None; pos_label any label, also one that is absent."""
    pool = draw(st.sampled_from([NAMES, [2, 5, 7, 9]]))
    k = draw(st.integers(1, 4))
    classes = pool[:k]
    n = draw(st.integers(1, 20))
    y_true = draw(st.lists(st.sampled_from(classes), min_size=n, max_size=n))
    y_pred = draw(st.lists(st.sampled_from(classes), min_size=n, max_size=n))
    labels = draw(st.none() | st.lists(st.sampled_from(pool), min_size=1, max_size=4, unique=True))
    pos_label = draw(st.sampled_from(pool))
    return y_true, y_pred, labels, pos_label


def run(fn, *args, **kwargs):
    """(result or the exception type, whether an UndefinedMetricWarning was raised)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = fn(*args, **kwargs)
        except ValueError:
            out = ValueError
    warned = any(issubclass(w.category, (UndefinedMetricWarning, skm._classification.UndefinedMetricWarning))
                 for w in caught)
    return out, warned


@settings(deadline=None, max_examples=300)
@given(case=labelled(), average=st.sampled_from(["binary", "micro", "macro", "weighted", None]),
       zd=st.sampled_from(["warn", 0.0, 1.0, np.nan]))
def test_prf_with_string_labels_pos_label_label_lists_and_zero_division(case, average, zd):
    y_true, y_pred, labels, pos_label = case
    kw = dict(average=average, labels=labels, pos_label=pos_label, zero_division=zd)
    ref, ref_warned = run(skm.precision_recall_fscore_support, y_true, y_pred, **kw)
    ours, warned = run(precision_recall_f1, y_true, y_pred, **kw)
    if ref is ValueError:
        assert ours is ValueError, (kw, ours)
        return
    assert ours is not ValueError, kw
    for name, a, b in zip(("precision", "recall", "f1"), ours[:3], ref[:3]):
        np.testing.assert_allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-12, atol=1e-12,
                                   err_msg=f"{name} {kw}")
    if average is None:
        assert np.array_equal(ours[3], ref[3])
    if zd == "warn":
        assert warned == ref_warned, f"warning: scikit-learn {ref_warned}, minift {warned} ({kw})"

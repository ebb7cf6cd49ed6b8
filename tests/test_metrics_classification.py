"""Classification and multi-label metrics against scikit-learn (spec sections 1-4 and 2b)."""
import math
import warnings

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import sklearn.metrics as skm
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import UndefinedMetricWarning as SkWarning

from minift.metrics import (UndefinedMetricWarning, accuracy, classification_summary, confusion_matrix, f1,
                            hamming_loss, matthews_corrcoef, multilabel_f1, multilabel_summary, precision,
                            precision_recall_f1, recall, roc_auc, subset_accuracy, threshold_logits)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
NAN = float("nan")


def same(a, b, tol=1e-12):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return a.shape == b.shape and bool(np.all((np.isnan(a) & np.isnan(b)) | np.isclose(a, b, rtol=0, atol=tol)))


@st.composite
def label_pairs(draw):
    k = draw(st.integers(2, 5))
    n = draw(st.integers(1, 40))
    yt = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    yp = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
    mode = draw(st.sampled_from(["rand", "const_true", "const_pred", "skew"]))
    if mode == "const_true":
        yt = [yt[0]] * n
    if mode == "const_pred":
        yp = [yp[0]] * n
    if mode == "skew":
        yp = [y if draw(st.booleans()) else 0 for y in yt]
    return np.array(yt), np.array(yp), k


@settings(deadline=None, max_examples=200)
@given(pair=label_pairs(), average=st.sampled_from(["binary", "micro", "macro", "weighted", None]),
       zd=st.sampled_from([0.0, 1.0, np.nan]), with_labels=st.booleans())
def test_precision_recall_f1_match_sklearn(pair, average, zd, with_labels):
    yt, yp, k = pair
    if average == "binary" and k != 2:
        average = "macro"
    labels = list(range(k)) if with_labels else None
    ours = precision_recall_f1(yt, yp, average=average, labels=labels, zero_division=zd)
    ref = skm.precision_recall_fscore_support(yt, yp, average=average, labels=labels, zero_division=zd)
    for a, b in zip(ours[:3], ref[:3]):
        assert same(a, b)
    if average is None:
        assert same(ours[3], ref[3])
    else:  # the one-number wrappers are the same computation
        kw = dict(average=average, labels=labels, zero_division=zd)
        assert same([precision(yt, yp, **kw), recall(yt, yp, **kw), f1(yt, yp, **kw)], ref[:3])


@settings(deadline=None, max_examples=150)
@given(pair=label_pairs())
def test_accuracy_mcc_confusion_match_sklearn(pair):
    yt, yp, k = pair
    assert same(accuracy(yt, yp), skm.accuracy_score(yt, yp))
    assert same(matthews_corrcoef(yt, yp), skm.matthews_corrcoef(yt, yp))
    assert same(confusion_matrix(yt, yp, labels=range(k)), skm.confusion_matrix(yt, yp, labels=list(range(k))))
    assert same(f1(yt, yp, average="micro"), accuracy(yt, yp))


@settings(deadline=None, max_examples=200)
@given(pairs=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 6)), min_size=2, max_size=40))
def test_binary_roc_auc_matches_sklearn(pairs):
    y = np.array([p[0] for p in pairs])
    s = np.array([p[1] / 6 for p in pairs])                    # coarse grid: many ties
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = skm.roc_auc_score(y, s)
    if len(set(y)) == 1:
        with pytest.warns(UndefinedMetricWarning):
            assert math.isnan(roc_auc(y, s))
        assert math.isnan(ref)
    else:
        assert same(roc_auc(y, s), ref)


@settings(deadline=None, max_examples=100)
@given(data=st.data(), k=st.integers(3, 5), n=st.integers(3, 30), average=st.sampled_from(["macro", "weighted"]))
def test_multiclass_ovr_roc_auc_matches_sklearn(data, k, n, average):
    y = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    assume(len(set(y)) == k)
    logits = data.draw(hnp.arrays(np.int64, (n, k), elements=st.integers(-3, 3))).astype(np.float64)
    P = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ref = skm.roc_auc_score(y, P, multi_class="ovr", average=average)
    assert same(roc_auc(y, P, average=average), ref, tol=1e-9)
    assert same(roc_auc(torch.tensor(y), torch.tensor(P), average=average), ref, tol=1e-9)


@st.composite
def indicator_pairs(draw):
    shape = (draw(st.integers(1, 12)), draw(st.integers(2, 5)))
    Y = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, 1)))
    logits = draw(hnp.arrays(np.float64, shape, elements=st.floats(-3, 3) | st.just(0.0)))
    return Y, logits


@settings(deadline=None, max_examples=150)
@given(pair=indicator_pairs(), average=st.sampled_from(["micro", "macro", "weighted", "samples"]),
       zd=st.sampled_from([0.0, 1.0, np.nan]))
def test_multilabel_scores_match_sklearn(pair, average, zd):
    Y, logits = pair
    Yp = threshold_logits(logits)
    assert same(Yp, (logits > 0).astype(int))                 # logit 0 -> predicted 0 (strict)
    ours = precision_recall_f1(Y, Yp, average=average, zero_division=zd)
    ref = skm.precision_recall_fscore_support(Y, Yp, average=average, zero_division=zd)
    assert all(same(a, b) for a, b in zip(ours[:3], ref[:3]))
    assert same(multilabel_f1(Y, Yp, average, zero_division=zd), ref[2])
    assert same(subset_accuracy(Y, Yp), skm.accuracy_score(Y, Yp))
    assert same(hamming_loss(Y, Yp), np.mean(Y != Yp))


def test_multilabel_summary_and_hamming():
    rng = np.random.default_rng(0)
    Y, Yp = rng.integers(0, 2, (30, 4)), threshold_logits(rng.normal(size=(30, 4)))
    out = multilabel_summary(torch.tensor(Y), torch.tensor(Yp))
    assert out == pytest.approx({"f1_micro": skm.f1_score(Y, Yp, average="micro"),
                                 "f1_macro": skm.f1_score(Y, Yp, average="macro"),
                                 "subset_accuracy": skm.accuracy_score(Y, Yp)}, abs=1e-12)
    assert hamming_loss(Y, Yp) == pytest.approx(skm.hamming_loss(Y, Yp), abs=1e-12)


# ---- explicit edge cases from the spec -------------------------------------------------------

def test_accuracy_examples():
    assert accuracy([0, 1, 1], [0, 1, 0]) == pytest.approx(2 / 3)
    assert accuracy([[1, 0], [1, 1]], [[1, 0], [1, 0]]) == 0.5
    assert accuracy(torch.tensor([1, 2]), np.array([1, 2])) == 1.0
    with pytest.raises(ValueError):
        accuracy([], [])
    with pytest.raises(ValueError):
        accuracy([0, 1], [0])


def test_prf_zero_division_examples():
    with pytest.warns(UndefinedMetricWarning):
        assert precision([0, 1, 1], [0, 0, 0]) == 0.0
    assert precision([0, 1, 1], [0, 0, 0], zero_division=1) == 1.0
    assert math.isnan(precision([0, 1, 1], [0, 0, 0], zero_division=np.nan))
    assert f1([0, 0, 0], [0, 0, 0], zero_division=1) == 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")                         # F is defined by counts: no warning
        assert f1([1, 0], [0, 1]) == 0.0
    assert f1([0, 0], [0, 1], zero_division=1) == 0.0
    assert f1([1, 0, 0], [0, 1, 0], zero_division=1.0) == 0.0  # sklearn 1.3.0 returned 1.0 (bug)


def test_prf_average_examples():
    yt, yp = [0, 1, 2, 0, 1, 2, 2], [0, 2, 1, 0, 0, 2, 2]
    assert precision_recall_f1(yt, yp, "macro")[:3] == pytest.approx((4 / 9, 5 / 9, 0.4888888889))
    assert precision_recall_f1(yt, yp, "micro")[:3] == pytest.approx((4 / 7,) * 3)
    assert precision_recall_f1(yt, yp, "weighted")[:3] == pytest.approx((0.4761904762, 4 / 7, 0.5142857143))
    assert precision_recall_f1(yt, yp, None)[2] == pytest.approx([0.8, 0.0, 2 / 3])
    yt, yp = [0, 1, 2, 2], [0, 1, 1, 1]
    assert precision(yt, yp, "macro", zero_division=0) == pytest.approx(4 / 9)
    assert precision(yt, yp, "macro", zero_division=1) == pytest.approx(7 / 9)
    assert precision(yt, yp, "macro", zero_division=np.nan) == pytest.approx(2 / 3)
    assert f1([0, 1, 2], [0, 1, 2], "macro", labels=[0, 1, 2, 3], zero_division=0) == 0.75
    assert f1([0, 1, 2], [0, 1, 2], "macro", labels=[0, 1, 2, 3], zero_division=1) == 1.0
    assert f1([0, 1, 2], [0, 1, 2], "macro", labels=[0, 1, 2, 3], zero_division=np.nan) == 1.0
    # all supports 0: the weighted mean falls back to the plain mean of [0, 1]
    assert precision([0, 0], [1, 0], "weighted", labels=[1, 3], zero_division=1) == 0.5


def test_binary_average_label_checks():
    with pytest.raises(ValueError, match="multiclass"):
        f1([0, 1, 2], [0, 1, 2])
    with pytest.raises(ValueError, match="pos_label"):
        f1(["a", "b"], ["a", "b"])
    assert f1([1, 2, 2], [1, 2, 1]) == pytest.approx(2 / 3)   # labels {1, 2}, positive = 1
    assert f1(["a", "b", "b"], ["a", "b", "a"], pos_label="b") == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        f1([[1, 0], [0, 1]], [[1, 0], [0, 1]])                 # binary is undefined for multi-label
    with pytest.raises(ValueError):
        f1([0, 1], [0, 1], average="samples")


def test_multilabel_examples():
    Yt = [[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 0]]
    Yp = [[1, 0, 0], [0, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert multilabel_f1(Yt, Yp, "macro") == pytest.approx(5 / 9)
    assert multilabel_f1(Yt, Yp, "micro") == pytest.approx(2 / 3)
    assert multilabel_f1(Yt, Yp, "weighted") == pytest.approx(2 / 3)
    with pytest.warns(UndefinedMetricWarning):
        assert multilabel_f1(Yt, Yp, "samples") == 0.5
    assert multilabel_f1(Yt, Yp, "samples", zero_division=1) == 0.75
    zeros = np.zeros((3, 2), int)
    assert multilabel_f1(zeros, zeros, "micro", zero_division=0) == 0.0
    assert multilabel_f1(zeros, zeros, "macro", zero_division=0) == 0.0
    with pytest.raises(ValueError, match="threshold"):
        multilabel_f1([[1, 0]], [[0.7, 0.2]])                  # probabilities must be thresholded
    assert threshold_logits(torch.tensor([[0.0, 1e-9, -1.0]])).tolist() == [[0, 1, 0]]
    # a single column is one binary problem here; sklearn reads (n, 1) as binary labels {0, 1}
    # and its macro would average classes 0 and 1 (0.3333), so compare with average='binary'
    assert multilabel_f1([[1], [0]], [[1], [1]], "macro") == pytest.approx(skm.f1_score([1, 0], [1, 1]))
    assert hamming_loss(Yt, Yp) == pytest.approx(3 / 12)
    assert subset_accuracy(Yt, Yp) == 0.25                    # only the all-zero row matches
    with pytest.raises(ValueError):
        subset_accuracy([1, 0], [1, 0])


def test_roc_auc_examples():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert roc_auc([0, 0, 1, 1], [0.5] * 4) == 0.5
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == 0.875
    assert roc_auc([1, 0, 0, 1], [2, 5, 10, 10]) == 0.375      # sklearn#29252: the tie counts one half
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))
    for y in ([1, 2, 1, 2], [-1, 1, -1, 1], [False, True, False, True], ["a", "b", "a", "b"]):
        assert roc_auc(y, [0.1, 0.9, 0.2, 0.8]) == 1.0         # the greater label is positive
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError):
            roc_auc([0, 1], [0.1, bad])
    P = np.array([[.5, .3, .2], [.2, .5, .3], [.3, .3, .4], [.4, .3, .3], [.3, .3, .4], [.4, .4, .2]])
    y = [0, 1, 2, 2, 1, 0]
    assert roc_auc(y, P) == pytest.approx(0.791667, abs=1e-6)
    assert [roc_auc(np.equal(y, c), P[:, c]) for c in range(3)] == pytest.approx([0.9375, 0.6875, 0.75])
    with pytest.raises(ValueError, match="probabilities"):
        roc_auc(y, P * (1 + 1e-4))
    roc_auc(y, P * (1 + 1e-6))
    P4 = np.c_[P * 0.9, np.full(6, 0.1)]
    with pytest.raises(ValueError, match="columns"):
        roc_auc(y, P4)
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(roc_auc(y, P4, labels=[0, 1, 2, 3]))
    Y = np.array([[1, 0], [0, 0], [1, 0]])                     # multi-label with a constant column
    with pytest.warns(UndefinedMetricWarning):
        assert math.isnan(roc_auc(Y, np.array([[.9, .1], [.2, .3], [.8, .5]])))


def test_mcc_examples():
    assert matthews_corrcoef([0, 1, 1, 0], [0, 1, 1, 0]) == 1.0
    assert matthews_corrcoef([0, 1, 1, 0], [1, 0, 0, 1]) == -1.0
    assert matthews_corrcoef([0, 1, 2, 2], [0, 1, 2, 1]) == pytest.approx(0.7)
    assert matthews_corrcoef([0, 0, 1, 1, 2, 2], [1, 2, 0, 2, 0, 1]) == pytest.approx(-0.5)
    assert matthews_corrcoef([0, 1, 1], [1, 1, 1]) == 0.0
    assert matthews_corrcoef([1, 1, 1], [1, 1, 1]) == 0.0      # all correct, yet 0 by definition
    with pytest.raises(ValueError):
        matthews_corrcoef([[1, 0]], [[1, 0]])
    with pytest.raises(ValueError):
        matthews_corrcoef([], [])


def test_classification_summary():
    y = np.array([0, 1, 1, 0, 1])
    probs = np.array([[.8, .2], [.3, .7], [.6, .4], [.4, .6], [.1, .9]])
    out = classification_summary(y, probs.argmax(1), probs)
    assert set(out) == {"accuracy", "f1", "auc"}
    assert out["accuracy"] == skm.accuracy_score(y, probs.argmax(1))
    assert out["f1"] == pytest.approx(skm.f1_score(y, probs.argmax(1), average="macro"))
    assert out["auc"] == pytest.approx(skm.roc_auc_score(y, probs[:, 1]))
    P = np.array([[.5, .3, .2], [.2, .5, .3], [.3, .3, .4], [.4, .3, .3]])
    out = classification_summary(torch.tensor([0, 1, 2, 2]), torch.tensor(P.argmax(1)), torch.tensor(P))
    assert out["auc"] == pytest.approx(skm.roc_auc_score([0, 1, 2, 2], P, multi_class="ovr"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                         # undefined AUC: nan, quietly
        assert math.isnan(classification_summary([0, 1, 1, 1], [0, 1, 1, 1], P)["auc"])
        assert math.isnan(classification_summary([1, 1], [1, 1], [[.4, .6], [.3, .7]])["auc"])
    assert math.isnan(classification_summary([0, 1], [0, 1])["auc"])


def test_sklearn_warns_where_minift_warns():
    """Both libraries flag the same undefined precision (guards the tests' warning filters)."""
    with pytest.warns(SkWarning):
        skm.precision_score([0, 1], [0, 0])
    with pytest.warns(UndefinedMetricWarning):
        precision([0, 1], [0, 0])

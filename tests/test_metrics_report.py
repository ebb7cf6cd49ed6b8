"""classification_report / format_report / format_confusion_matrix against scikit-learn's
classification_report (dict and text) and confusion_matrix, with classes missing from the predictions,
labels given or not, and every zero_division setting."""
import re
import warnings

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minift.metrics.classification import (UndefinedMetricWarning, classification_report, confusion_matrix,
                                           format_confusion_matrix, format_report)

ZERO_DIVISION = st.sampled_from(["warn", 0.0, 1.0, np.nan])


def same_report(ours, theirs):
    assert list(ours) == list(theirs)  # the same rows in the same order
    for key, value in theirs.items():
        if isinstance(value, dict):
            assert list(ours[key]) == list(value)
            np.testing.assert_allclose(list(ours[key].values()), list(value.values()), rtol=1e-12)
        else:
            np.testing.assert_allclose(ours[key], value, rtol=1e-12)


def sklearn_text(y_true, y_pred, **kw):
    """sklearn's printed report, its supports as integers: sklearn 1.9 prints them as floats ("1.0") whenever a
    support is 0 (its counts become a float array then); minift always prints counts as integers."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = skm.classification_report(y_true, y_pred, **kw)
    return "\n".join(re.sub(r"(\d+)\.0$", lambda m: "  " + m.group(1), line) for line in text.split("\n"))


def both(y_true, y_pred, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # both warn on 0/0 with "warn"; the values are compared
        return classification_report(y_true, y_pred, **kw), skm.classification_report(y_true, y_pred,
                                                                                       output_dict=True, **kw)


@st.composite
def single_label(draw):
    alphabet = draw(st.sampled_from([[0, 1], [0, 1, 2, 3, 4], ["ant", "bee", "cat"], [-1, 1, 7]]))
    n = draw(st.integers(1, 30))
    y_true = draw(st.lists(st.sampled_from(alphabet), min_size=n, max_size=n))
    y_pred = draw(st.lists(st.sampled_from(alphabet[:draw(st.integers(1, len(alphabet)))]), min_size=n, max_size=n))
    labels = draw(st.none() | st.lists(st.sampled_from(alphabet), min_size=1, max_size=len(alphabet), unique=True))
    return np.array(y_true), np.array(y_pred), labels


@settings(deadline=None, max_examples=200)
@given(case=single_label(), zero_division=ZERO_DIVISION, named=st.booleans(), digits=st.sampled_from([2, 3, 4]))
def test_report_equals_sklearn_dict_and_text(case, zero_division, named, digits):
    y_true, y_pred, labels = case
    kw = dict(labels=labels, zero_division=zero_division)
    if named:  # target_names need as many names as labels; sklearn's default labels are the sorted union
        count = len(labels) if labels is not None else len(np.union1d(y_true, y_pred))
        kw["target_names"] = [f"class {i}" for i in range(count)]
    ours, theirs = both(y_true, y_pred, **kw)
    same_report(ours, theirs)
    assert format_report(ours, digits) == sklearn_text(y_true, y_pred, digits=digits, **kw)


@settings(deadline=None, max_examples=100)
@given(data=st.data(), n=st.integers(1, 20), k=st.integers(2, 5), zero_division=ZERO_DIVISION)  # k = 1: binary
def test_multilabel_report_equals_sklearn(data, n, k, zero_division):
    """k >= 2 labels: sklearn reads a one-column matrix as binary labels, minift as one multi-label column."""
    y_true = data.draw(hnp.arrays(np.int64, (n, k), elements=st.integers(0, 1)))
    y_pred = data.draw(hnp.arrays(np.int64, (n, k), elements=st.integers(0, 1)))
    ours, theirs = both(y_true, y_pred, zero_division=zero_division)
    same_report(ours, theirs)
    assert "samples avg" in ours and "accuracy" not in ours
    assert format_report(ours) == sklearn_text(y_true, y_pred, zero_division=zero_division)


def test_a_class_never_predicted_warns_and_scores_zero_division():
    y_true, y_pred = [0, 1, 2, 2], [0, 0, 2, 2]
    with pytest.warns(UndefinedMetricWarning):
        report = classification_report(y_true, y_pred)
    assert report["1"] == {"precision": 0.0, "recall": 0.0, "f1-score": 0.0, "support": 1}
    assert classification_report(y_true, y_pred, zero_division=1.0)["1"]["precision"] == 1.0
    assert report["accuracy"] == 0.75


def test_report_argument_checks():
    with pytest.raises(ValueError, match="target_names"):
        classification_report([0, 1], [0, 1], target_names=["a"])
    with pytest.raises(ValueError, match="shape"):
        classification_report([0, 1], [0])


@settings(deadline=None, max_examples=100)
@given(case=single_label())
def test_confusion_matrix_equals_sklearn_and_formats_every_count(case):
    y_true, y_pred, labels = case
    assume(labels is None or np.isin(labels, y_true).any())  # else sklearn refuses; minift counts zeros
    matrix = confusion_matrix(y_true, y_pred, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns when a single label occurs
        np.testing.assert_array_equal(matrix, skm.confusion_matrix(y_true, y_pred, labels=labels))
    names = labels if labels is not None else np.union1d(y_true, y_pred)
    lines = format_confusion_matrix(matrix, names).splitlines()
    assert lines[0].split() == ["true\\pred"] + [str(n) for n in names]
    for line, name, counts in zip(lines[1:], names, matrix):  # row i: true label i, then its counts
        assert line.split() == [str(name)] + [str(c) for c in counts]


def test_format_confusion_matrix_checks_the_names():
    with pytest.raises(ValueError, match="names"):
        format_confusion_matrix(np.zeros((2, 2), int), ["a"])

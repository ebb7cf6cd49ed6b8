"""ROC and precision-recall curves of a binary score: the points a plot draws.

Reference: scikit-learn's ``roc_curve`` (drop_intermediate=True) and ``precision_recall_curve``, through their
shared ``_binary_clf_curve``.  Sort the scores in decreasing order; at each distinct score s, predicting
"positive" for every score >= s gives

    tp(s) = positives among them        fp(s) = (how many they are) - tp(s)
    ROC:  fpr = fp / fp(min),  tpr = tp / tp(min), from the point (0, 0) at threshold +inf
    PR:   precision = tp / (tp + fp), recall = tp / tp(min), from the lowest threshold up, ending at (1, 0)

ROC drops a point lying on the straight line between its neighbours where fpr or tpr does not change
(sklearn's ``drop_intermediate``: no corner is lost).  Positives are ``y_true == pos_label``.
"""
import numpy as np

from .regression import as_array


def binary_counts(y_true, scores, pos_label=1):
    """(fp, tp, thresholds): the counts when predicting scores >= each distinct score, highest first."""
    y_true, scores = as_array(y_true).ravel(), as_array(scores, float).ravel()
    if y_true.shape != scores.shape or len(scores) == 0:
        raise ValueError(f"need one label per score, at least one: {y_true.shape} and {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinity")
    order = np.argsort(-scores, kind="mergesort")
    s, positive = scores[order], (y_true[order] == pos_label).astype(np.int64)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]                  # last index of each distinct score
    tp = np.cumsum(positive)[last]
    return last + 1 - tp, tp, s[last]


def roc_curve(y_true, scores, pos_label=1):
    """(fpr, tpr, thresholds), as sklearn.metrics.roc_curve: nan rates when a class is absent."""
    fp, tp, thresholds = binary_counts(y_true, scores, pos_label)
    if len(fp) > 2:                                                      # drop collinear interior points
        keep = np.r_[True, np.logical_or(np.diff(fp, 2), np.diff(tp, 2)), True]
        fp, tp, thresholds = fp[keep], tp[keep], thresholds[keep]
    fp, tp, thresholds = np.r_[0, fp], np.r_[0, tp], np.r_[np.inf, thresholds]
    with np.errstate(invalid="ignore", divide="ignore"):
        return fp / fp[-1], tp / tp[-1], thresholds


def precision_recall_curve(y_true, scores, pos_label=1):
    """(precision, recall, thresholds), as sklearn.metrics.precision_recall_curve: recall increasing thresholds,
    precision and recall one longer, ending at (1, 0); recall is 1 throughout when there is no positive."""
    fp, tp, thresholds = binary_counts(y_true, scores, pos_label)
    precision = tp / (tp + fp)
    recall = tp / tp[-1] if tp[-1] else np.ones(len(tp))
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]

"""Multi-label metrics on 0/1 indicator matrices Y (n samples, L labels).

Reference: scikit-learn's ``accuracy_score``, ``f1_score`` and ``hamming_loss`` on
multilabel-indicator input (spec/metrics.md section 2b).  A model emits one logit per
label; the prediction is 1 iff logit > 0, i.e. sigmoid(logit) > 0.5 (strict).

    subset accuracy = (1/n) sum_i [Y_i == Yhat_i for every label]
    hamming loss    = (1/(n L)) sum_{i,l} [Y_il != Yhat_il]
    micro F1        = 2 tp / (2 tp + fp + fn), counts pooled over all n x L cells
    macro F1        = mean over the L columns of each column's F1
    samples F1      = mean over the n rows of each row's F1

Per-label thresholds (``--tune-thresholds``): for label l, the t_l maximising that label's F1 when
predicting score > t_l on held-out rows.  Predicting the k highest scores gives F1 = 2 tp_k / (k + P)
(P positives), so one sort and a cumulative sum try every cut between distinct scores; t_l is the midpoint
below the best cut (the highest such cut on ties).  A label with no positive row keeps the default.

The F1 variants reuse ``classification.precision_recall_f1``, which reads a 2-D matrix
column by column.  Always pass L >= 2 columns: a single column is a binary problem.
"""
import numpy as np

from .classification import _check_pair, accuracy, f1
from .regression import as_array


def threshold_logits(logits, threshold=0.0) -> np.ndarray:
    """0/1 predictions from per-label logits: 1 iff logit > threshold (0 = probability 0.5)."""
    return (as_array(logits, float) > threshold).astype(np.int64)


def subset_accuracy(y_true, y_pred) -> float:
    """Fraction of samples whose whole label set is predicted exactly."""
    y_true, y_pred = _check_pair(y_true, y_pred)
    if y_true.ndim != 2:
        raise ValueError("subset_accuracy expects (n, L) indicator matrices")
    return accuracy(y_true, y_pred)


def hamming_loss(y_true, y_pred) -> float:
    """Fraction of (sample, label) cells predicted wrongly."""
    y_true, y_pred = _check_pair(y_true, y_pred)
    return float((y_true != y_pred).mean())


def multilabel_f1(y_true, y_pred, average="micro", zero_division="warn") -> float:
    """F1 of (n, L) indicator matrices, ``average`` in micro / macro / weighted / samples."""
    y_true, y_pred = _check_pair(y_true, y_pred)
    if y_true.ndim != 2:
        raise ValueError("multilabel_f1 expects (n, L) indicator matrices")
    return f1(y_true, y_pred, average=average, zero_division=zero_division)


def multilabel_summary(y_true, y_pred) -> dict:
    """Headline numbers the training loop logs: {"f1_micro", "f1_macro", "subset_accuracy"}.

    ``y_pred`` must already be 0/1 (use ``threshold_logits``); 0/0 ratios count as 0.
    """
    return {"f1_micro": multilabel_f1(y_true, y_pred, "micro", zero_division=0.0),
            "f1_macro": multilabel_f1(y_true, y_pred, "macro", zero_division=0.0),
            "subset_accuracy": subset_accuracy(y_true, y_pred)}


def best_threshold(positive, scores, default=0.5) -> float:
    """The t maximising F1 of predicting ``scores > t`` against the 0/1 ``positive`` (both (n,)); ``default``
    when nothing is positive (every t scores 0)."""
    positive, scores = as_array(positive).astype(bool).ravel(), as_array(scores, float).ravel()
    if positive.shape != scores.shape or len(scores) == 0:
        raise ValueError(f"need as many labels as scores, at least one: {positive.shape} and {scores.shape}")
    n_positive = int(positive.sum())
    if n_positive == 0:
        return float(default)
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], positive[order]                                  # descending scores
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]                    # last index of each distinct score
    tp, k = np.cumsum(y)[last], last + 1                                   # predicting the k highest
    best = last[int(np.argmax(2 * tp / (k + n_positive)))]                 # the first maximum: highest cut
    if best == len(s) - 1:
        return float(np.nextafter(s[best], -np.inf))                       # every row positive
    mid = (s[best] + s[best + 1]) / 2
    return float(mid if mid < s[best] else s[best + 1])                    # adjacent floats: the one below


def best_thresholds(y_true, scores, default=0.5) -> np.ndarray:
    """(L,) per-label thresholds: `best_threshold` of each column of (n, L) ``y_true`` and ``scores``."""
    y_true, scores = as_array(y_true), as_array(scores, float)
    if y_true.shape != scores.shape or y_true.ndim != 2:
        raise ValueError(f"expected (n, L) labels and scores of one shape, got {y_true.shape} and {scores.shape}")
    return np.array([best_threshold(y_true[:, j], scores[:, j], default) for j in range(y_true.shape[1])])

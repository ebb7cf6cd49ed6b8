"""Classification metrics: accuracy, precision / recall / F1, confusion matrix, ROC AUC, MCC.

Reference: scikit-learn's ``accuracy_score``, ``precision_recall_fscore_support``,
``confusion_matrix``, ``roc_auc_score`` and ``matthews_corrcoef`` (its current semantics,
spec/metrics.md sections 1-4).  Labels are any sortable values; inputs are lists, numpy
arrays or tensors.  A 2-D 0/1 matrix (n, L) is read as multi-label, one column per label
(see ``multilabel.py``).

Per class c, counted one-vs-rest: tp, fp, fn.
    P_c = tp / (tp + fp)      R_c = tp / (tp + fn)
    F_c = (1 + b^2) tp / ((1 + b^2) tp + b^2 fn + fp)     (F1: 2 tp / (2 tp + fp + fn))
F is computed from the counts, not from P and R.  A 0/0 ratio takes ``zero_division``
("warn" = 0 plus a warning, 0, 1 or nan); for F that needs tp = fp = fn = 0.
Averages: binary = class ``pos_label`` only; micro = pool the counts, then the formulas
(single-label micro P = R = F = accuracy); macro = mean over classes (NaN entries skipped);
weighted = mean weighted by support tp + fn (all supports 0: plain mean).

ROC AUC (binary) is the Mann-Whitney statistic with ties counted one half:
    AUC = ( #{s_pos > s_neg} + 0.5 #{s_pos = s_neg} ) / (n_pos n_neg)
        = ( sum of the average ranks of the positives - n_pos (n_pos + 1) / 2 ) / (n_pos n_neg)
which is the trapezoid area under the ROC curve.  Multi-class: one-vs-rest, mean over classes.

MCC from the K x K confusion matrix, t_k / p_k = true / predicted counts of class k,
c = correct, s = total:  (c s - sum t_k p_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)); 0 if 0/0.
"""
import warnings

import numpy as np

from .regression import as_array, average_ranks

AVERAGES = ("binary", "micro", "macro", "weighted", "samples", None)


class UndefinedMetricWarning(UserWarning):
    """A ratio was 0/0 and replaced by ``zero_division`` (or an AUC had a single class)."""


def _check_pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = as_array(y_true), as_array(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true shape {y_true.shape} != y_pred shape {y_pred.shape}")
    if y_true.size == 0:
        raise ValueError("empty input")
    if y_true.ndim == 2 and not np.isin(np.r_[y_true.ravel(), y_pred.ravel()], (0, 1)).all():
        raise ValueError("2-D input must be a 0/1 indicator matrix; threshold scores first")
    if y_true.ndim > 2:
        raise ValueError(f"expected 1-D labels or a 2-D indicator matrix, got {y_true.ndim}-D")
    return y_true, y_pred


def accuracy(y_true, y_pred) -> float:
    """Fraction of exact matches; for 2-D indicator matrices, of rows matching in every label."""
    y_true, y_pred = _check_pair(y_true, y_pred)
    correct = y_true == y_pred
    if correct.ndim == 2:
        correct = correct.all(axis=1)                          # subset accuracy
    return float(correct.mean())


def _divide(num, den, zero_division, what):
    """num / den elementwise, with 0/0 replaced by ``zero_division`` (warning if "warn")."""
    num, den = np.asarray(num, float), np.asarray(den, float)
    undefined = den == 0
    if undefined.any() and zero_division == "warn":
        warnings.warn(f"{what} is ill-defined (0/0) and set to 0.0; pass zero_division to silence",
                      UndefinedMetricWarning, stacklevel=3)
    fill = 0.0 if zero_division == "warn" else float(zero_division)
    return np.where(undefined, fill, num / np.where(undefined, 1.0, den))


def _counts(y_true, y_pred, average, labels, pos_label):
    """(tp, fp, fn) arrays with one entry per scored unit (class, column or row), and the labels."""
    if y_true.ndim == 2:                                       # multi-label indicator (n, L)
        if average == "binary":
            raise ValueError("average='binary' is not defined for multi-label input")
        cols = np.arange(y_true.shape[1]) if labels is None else np.asarray(labels)
        t, p = y_true[:, cols].astype(bool), y_pred[:, cols].astype(bool)
        axis = 1 if average == "samples" else 0                # per row, or per label column
        return (t & p).sum(axis), (~t & p).sum(axis), (t & ~p).sum(axis), cols
    if average == "samples":
        raise ValueError("average='samples' needs multi-label input")
    present = np.union1d(y_true, y_pred)                       # sorted labels seen anywhere
    if average == "binary":
        if len(present) > 2:
            raise ValueError(f"target is multiclass ({len(present)} labels) but average='binary'")
        if len(present) == 2 and pos_label not in present:
            raise ValueError(f"pos_label={pos_label!r} is not a valid label: {list(present)}")
        labels = [pos_label]
    labels = present if labels is None else np.asarray(labels)
    t = y_true[:, None] == labels[None, :]                     # (n, K) one-hot of the truth
    p = y_pred[:, None] == labels[None, :]                     # (n, K) one-hot of the prediction
    return (t & p).sum(0), (~t & p).sum(0), (t & ~p).sum(0), labels


def _nan_average(values, weights=None):
    """Mean of the non-NaN entries, weighted if given; all weights 0 -> plain mean."""
    keep = ~np.isnan(values)
    if not keep.any():
        return float("nan")
    if weights is None or weights[keep].sum() == 0:
        return float(values[keep].mean())
    return float(np.average(values[keep], weights=weights[keep]))


def precision_recall_f1(y_true, y_pred, average="binary", labels=None, pos_label=1,
                        zero_division="warn", beta=1.0):
    """(precision, recall, F-beta, support); floats, or per-label arrays when ``average=None``."""
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    y_true, y_pred = _check_pair(y_true, y_pred)
    tp, fp, fn, _ = _counts(y_true, y_pred, average, labels, pos_label)
    if average == "micro":
        tp, fp, fn = tp.sum(keepdims=True), fp.sum(keepdims=True), fn.sum(keepdims=True)
    b2 = beta * beta
    precision = _divide(tp, tp + fp, zero_division, "precision")
    recall = _divide(tp, tp + fn, zero_division, "recall")
    f = _divide((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp, zero_division, "F-score")
    support = tp + fn                                          # number of true instances
    if average is None:
        return precision, recall, f, support
    weights = support if average == "weighted" else None
    return (_nan_average(precision, weights), _nan_average(recall, weights),
            _nan_average(f, weights), int(support.sum()))


def precision(y_true, y_pred, average="binary", labels=None, pos_label=1, zero_division="warn"):
    """tp / (tp + fp), averaged as ``average`` says."""
    return precision_recall_f1(y_true, y_pred, average, labels, pos_label, zero_division)[0]


def recall(y_true, y_pred, average="binary", labels=None, pos_label=1, zero_division="warn"):
    """tp / (tp + fn), averaged as ``average`` says."""
    return precision_recall_f1(y_true, y_pred, average, labels, pos_label, zero_division)[1]


def f1(y_true, y_pred, average="binary", labels=None, pos_label=1, zero_division="warn"):
    """2 tp / (2 tp + fp + fn), averaged as ``average`` says."""
    return precision_recall_f1(y_true, y_pred, average, labels, pos_label, zero_division)[2]


def confusion_matrix(y_true, y_pred, labels=None) -> np.ndarray:
    """C[i, j] = number of samples of true label i predicted as label j (int array K x K)."""
    y_true, y_pred = as_array(y_true).ravel(), as_array(y_pred).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred lengths differ: {len(y_true)} vs {len(y_pred)}")
    labels = np.union1d(y_true, y_pred) if labels is None else np.asarray(labels)
    t = y_true[:, None] == labels[None, :]                     # (n, K)
    p = y_pred[:, None] == labels[None, :]                     # (n, K)
    return t.astype(np.int64).T @ p.astype(np.int64)           # (K, K)


def matthews_corrcoef(y_true, y_pred) -> float:
    """Matthews correlation coefficient, multi-class form (0.0 when the denominator is 0)."""
    y_true, y_pred = _check_pair(y_true, y_pred)
    if y_true.ndim != 1:
        raise ValueError("matthews_corrcoef does not support multi-label input")
    C = confusion_matrix(y_true, y_pred).astype(float)
    t, p = C.sum(axis=1), C.sum(axis=0)                        # true / predicted count per class
    c, s = np.trace(C), C.sum()
    den = np.sqrt((s * s - p @ p) * (s * s - t @ t))
    return 0.0 if den == 0 else float((c * s - t @ p) / den)


def _binary_auc(positive, scores) -> float:
    """Mann-Whitney AUC of boolean ``positive`` (n,) against ``scores`` (n,); nan if one class."""
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        warnings.warn("only one class is present in y_true; ROC AUC is undefined (nan)",
                      UndefinedMetricWarning, stacklevel=3)
        return float("nan")
    rank_sum = average_ranks(scores)[positive].sum()           # ties share their mean rank
    return float((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc(y_true, scores, average="macro", labels=None) -> float:
    """Area under the ROC curve.

    * binary: ``scores`` is 1-D (a logit, probability or any monotone score of the greater label);
    * multi-class: ``scores`` is (n, K) class probabilities, one-vs-rest, one column per label
      in ``labels`` (default: the sorted labels of ``y_true``);
    * multi-label: ``y_true`` is (n, L) 0/1 and ``scores`` (n, L), one AUC per column.
    ``average`` is "macro" or "weighted" (by support); a nan per-class AUC makes the average nan.
    """
    y_true, scores = as_array(y_true), as_array(scores, float)
    if len(y_true) != len(scores):
        raise ValueError(f"y_true and scores lengths differ: {len(y_true)} vs {len(scores)}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinity")
    if scores.ndim == 1:
        classes = np.unique(y_true)
        if len(classes) > 2:
            raise ValueError("binary ROC AUC needs 2 classes; pass (n, K) scores for multi-class")
        return _binary_auc(y_true == classes[-1], scores)      # the greater label is positive
    if average not in ("macro", "weighted"):
        raise ValueError(f"average must be 'macro' or 'weighted', got {average!r}")
    if y_true.ndim == 2:                                       # multi-label indicator
        positives = y_true.astype(bool).T                      # (L, n)
    else:
        labels = np.unique(y_true) if labels is None else np.asarray(labels)
        if len(labels) != scores.shape[1]:
            raise ValueError(f"{len(labels)} classes but scores have {scores.shape[1]} columns")
        if not np.allclose(scores.sum(axis=1), 1.0):
            raise ValueError("multi-class scores must be probabilities (rows summing to 1)")
        positives = y_true[None, :] == labels[:, None]         # (K, n) one-vs-rest targets
    aucs = np.array([_binary_auc(pos, s) for pos, s in zip(positives, scores.T)])
    weights = positives.sum(axis=1) if average == "weighted" else None
    return float(np.average(aucs, weights=weights))


def classification_summary(y_true, y_pred, probs=None) -> dict:
    """Headline numbers the training loop logs: {"accuracy", "f1" (macro), "auc"}.

    ``probs`` (n, K) are class probabilities: K = 2 -> binary AUC of probs[:, 1], K > 2 ->
    one-vs-rest macro AUC over labels 0..K-1.  auc is nan when undefined or probs is None.
    """
    auc = float("nan")
    if probs is not None:
        probs = as_array(probs, float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            if probs.shape[1] == 2:
                auc = _binary_auc(as_array(y_true) == 1, probs[:, 1])
            else:
                auc = roc_auc(y_true, probs, labels=np.arange(probs.shape[1]))
    return {"accuracy": accuracy(y_true, y_pred),
            "f1": f1(y_true, y_pred, average="macro", zero_division=0.0),
            "auc": auc}


# --- The per-class report (sklearn's classification_report) --------------------------------------
AVERAGE_ROWS = ("accuracy", "micro avg", "macro avg", "weighted avg", "samples avg")
_HEADERS = ("precision", "recall", "f1-score", "support")


def classification_report(y_true, y_pred, labels=None, target_names=None, zero_division="warn") -> dict:
    """{class name: {"precision", "recall", "f1-score", "support"}} for each label, then the summary rows:
    "accuracy" (a float; "micro avg" instead when ``labels`` leaves out a label that occurs), "macro avg" and
    "weighted avg" ("micro avg" and "samples avg" too for a multi-label indicator matrix).  The keys and values
    of ``sklearn.metrics.classification_report(output_dict=True)``; an average row's support is the total.
    Names are ``target_names`` (one per label) or str(label); labels default to every label seen (sorted), or
    every column of a multi-label matrix."""
    y_true, y_pred = _check_pair(y_true, y_pred)
    multilabel = y_true.ndim == 2
    seen = np.arange(y_true.shape[1]) if multilabel else np.union1d(y_true, y_pred)
    labels = seen if labels is None else np.asarray(labels)
    names = [str(label) for label in labels] if target_names is None else list(target_names)
    if len(names) != len(labels):
        raise ValueError(f"{len(target_names)} target_names for {len(labels)} labels {list(labels)}")
    per_class = precision_recall_f1(y_true, y_pred, None, labels, zero_division=zero_division)
    report = {name: dict(zip(_HEADERS, (float(p), float(r), float(f), int(s))))
              for name, p, r, f, s in zip(names, *per_class)}
    total = int(per_class[3].sum())
    micro_is_accuracy = not multilabel and set(labels.tolist()) >= set(seen.tolist())
    for average in ("micro", "macro", "weighted") + (("samples",) if multilabel else ()):
        p, r, f, _ = precision_recall_f1(y_true, y_pred, average, labels, zero_division=zero_division)
        if average == "micro" and micro_is_accuracy:
            report["accuracy"] = p                             # single-label micro P = R = F = accuracy
        else:
            report[f"{average} avg"] = dict(zip(_HEADERS, (p, r, f, total)))
    return report


def format_report(report, digits=2) -> str:
    """The text table of ``classification_report``'s dict, laid out as scikit-learn prints it."""
    classes = [name for name in report if name not in AVERAGE_ROWS]
    width = max([len(name) for name in classes] + [len("weighted avg"), digits])
    total = sum(report[name]["support"] for name in classes)

    def row(name, p, r, f, support):
        return f"{name:>{width}s} " + "".join(f" {v:>9.{digits}f}" for v in (p, r, f)) + f" {support:>9}\n"
    text = f"{'':>{width}s} " + "".join(f" {h:>9}" for h in _HEADERS) + "\n\n"
    text += "".join(row(name, *report[name].values()) for name in classes) + "\n"
    for name in (name for name in report if name in AVERAGE_ROWS):
        if name == "accuracy":
            text += f"{name:>{width}s} " + " " * 20 + f" {report[name]:>9.{digits}f} {total:>9}\n"
        else:
            text += row(name, *report[name].values())
    return text


def format_confusion_matrix(matrix, names) -> str:
    """A confusion matrix as text: one row per true label, one column per predicted label, headed by ``names``."""
    matrix = as_array(matrix)
    names = [str(n) for n in names]
    if matrix.shape != (len(names), len(names)):
        raise ValueError(f"a {matrix.shape} matrix for {len(names)} names")
    width = max([len(n) for n in names] + [len(str(matrix.max(initial=0))), len("true\\pred")])
    lines = [" ".join(f"{cell:>{width}}" for cell in ["true\\pred"] + names)]
    lines += [" ".join(f"{cell:>{width}}" for cell in [name] + [str(v) for v in counts])
              for name, counts in zip(names, matrix)]
    return "\n".join(lines) + "\n"

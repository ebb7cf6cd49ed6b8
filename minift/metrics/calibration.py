"""Calibration: do predicted probabilities mean what they say? Expected calibration error, reliability
bins for a reliability diagram, and temperature scaling.

Reference: Guo, Pleiss, Sun & Weinberger, "On Calibration of Modern Neural Networks", ICML 2017
(section 2 for ECE and reliability diagrams, section 4.2 for temperature scaling); their code,
github.com/gpleiss/temperature_scaling, fixes the bin convention used here.

Confidence of example i: c_i = max_k p_ik, its prediction argmax_k p_ik (the first on ties), correct_i = 1
when that is the label.  M equal-width bins B_m = (lo_m, hi_m], lo_m = (m - 1) / M, hi_m = m / M; the first
bin also holds c = 0, so every confidence in [0, 1] lands in exactly one bin (the edges are
numpy.linspace(0, 1, M + 1), compared as floats: c = 0.2 lies in (0.1333, 0.2], not in the next bin).

    acc(B) = mean of correct_i over i in B        conf(B) = mean of c_i over i in B
    ECE = sum_m |B_m| / n * |acc(B_m) - conf(B_m)|          (empty bins add 0)

torchmetrics bins [lo, hi) instead: the two agree except for confidences lying exactly on an edge.

Temperature scaling divides the logits z by one T > 0 fitted on held-out data (it never changes the argmax,
so never the accuracy):  T* = argmin_T NLL(T),  NLL(T) = mean_i [ logsumexp_k(z_ik / T) - z_i,y_i / T ].
With beta = 1 / T, NLL is convex in beta (a log-sum-exp of linear functions minus a linear one), and
    dNLL / dbeta = mean_i ( sum_k softmax(beta z_i)_k z_ik  -  z_i,y_i )
is nondecreasing in beta; `fit_temperature` bisects on its sign (in log beta, deterministic, no tolerance to
tune: 100 halvings of [log 1/t_max, log 1/t_min] reach float precision).
"""
from dataclasses import dataclass

import numpy as np

from .regression import as_array


def _probs_labels(probs, labels):
    """(n, K) probabilities whose rows sum to 1 and (n,) integer labels in 0..K-1, checked."""
    probs, labels = as_array(probs, float), as_array(labels)
    if probs.ndim != 2 or labels.shape != probs.shape[:1]:
        raise ValueError(f"expected probs (n, K) and labels (n,), got {probs.shape} and {labels.shape}")
    if len(labels) == 0:
        raise ValueError("empty input")
    if not np.allclose(probs.sum(axis=1), 1.0) or (probs < 0).any():
        raise ValueError("probs must be probabilities (rows >= 0 summing to 1): apply softmax to logits first")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise ValueError(f"labels must be integers in 0..{probs.shape[1] - 1}")
    return probs, labels


@dataclass
class ReliabilityBins:
    """Per-bin statistics for a reliability diagram: M bins, edges (M + 1,), and (M,) arrays; accuracy and
    confidence are nan in empty bins."""
    edges: np.ndarray
    counts: np.ndarray
    accuracy: np.ndarray
    confidence: np.ndarray


def reliability_bins(probs, labels, n_bins=15) -> ReliabilityBins:
    """Bin examples by confidence max_k p_ik into (lo, hi] bins (the first also holds 0) and average the
    accuracy and the confidence in each: plot accuracy against the bin centres, the diagonal is calibrated."""
    probs, labels = _probs_labels(probs, labels)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    confidence = probs.max(axis=1)                                        # (n,)
    correct = (probs.argmax(axis=1) == labels).astype(float)              # (n,)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # side="left": the index i with edges[i-1] < c <= edges[i], so bin i - 1 is (lo, hi]; c = 0 goes to bin 0
    bins = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):                 # 0 / 0 = nan in empty bins
        accuracy = np.bincount(bins, correct, minlength=n_bins) / counts
        mean_confidence = np.bincount(bins, confidence, minlength=n_bins) / counts
    return ReliabilityBins(edges, counts, accuracy, mean_confidence)


def expected_calibration_error(probs, labels, n_bins=15) -> float:
    """ECE = sum_m |B_m| / n * |acc(B_m) - conf(B_m)| over equal-width confidence bins (Guo et al. 2017)."""
    b = reliability_bins(probs, labels, n_bins)
    full = b.counts > 0
    return float(np.sum(b.counts[full] / b.counts.sum() * np.abs(b.accuracy[full] - b.confidence[full])))


def _log_softmax(z):
    """Row-wise log softmax of a (n, K) array, shifted by the row maximum so that exp never overflows."""
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def _logits_labels(logits, labels):
    logits, labels = as_array(logits, float), as_array(labels)
    if logits.ndim != 2 or labels.shape != logits.shape[:1] or len(labels) == 0:
        raise ValueError(f"expected logits (n, K) and labels (n,), n > 0, got {logits.shape} and {labels.shape}")
    if not np.isfinite(logits).all():
        raise ValueError("logits contain NaN or infinity")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise ValueError(f"labels must be integers in 0..{logits.shape[1] - 1}")
    return logits, labels


def nll(logits, labels, temperature=1.0) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / temperature)."""
    logits, labels = _logits_labels(logits, labels)
    logp = _log_softmax(apply_temperature(logits, temperature))
    return float(-logp[np.arange(len(labels)), labels].mean())


def fit_temperature(logits, labels, t_min=0.01, t_max=100.0, iterations=100) -> float:
    """The T in [t_min, t_max] minimising nll(logits, labels, T): bisection on the sign of dNLL/dbeta,
    beta = 1 / T (see the module docstring).  Returns t_max when NLL keeps falling as T grows (every example
    wrong), and t_min, or the first T where NLL has already reached 0 in floating point, when it keeps falling as
    T -> 0 (every example right with a margin).  When NLL does not depend on T (every row's logits equal) the
    slope is 0 at the first midpoint, sqrt(t_min t_max) = 1.0 by default."""
    logits, labels = _logits_labels(logits, labels)
    if not 0 < t_min < t_max:
        raise ValueError(f"need 0 < t_min < t_max, got {t_min}, {t_max}")
    z_true = logits[np.arange(len(labels)), labels]                       # (n,)

    def slope(beta):  # dNLL / dbeta: expected logit under softmax(beta z) minus the true one, averaged
        p = np.exp(_log_softmax(beta * logits))
        return float(np.mean((p * logits).sum(axis=1) - z_true))

    lo, hi = np.log(1.0 / t_max), np.log(1.0 / t_min)                    # log beta
    if slope(np.exp(hi)) < 0:
        return t_min
    if slope(np.exp(lo)) > 0:
        return t_max
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        s = slope(np.exp(mid))
        if s == 0:
            return float(np.exp(-mid))
        lo, hi = (mid, hi) if s < 0 else (lo, mid)
    return float(np.exp(-0.5 * (lo + hi)))


def apply_temperature(logits, temperature):
    """logits / temperature (numpy array or torch tensor): softmax of it gives the calibrated probabilities."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return logits / temperature

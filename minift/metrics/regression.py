"""Regression metrics: MSE, MAE, R^2, Pearson and Spearman correlation (numpy only).

References: scikit-learn's ``mean_squared_error``, ``mean_absolute_error`` and ``r2_score``
(with its default ``force_finite=True``); scipy's ``pearsonr``, ``spearmanr`` and ``rankdata``.
GLUE's STS-B task reports Pearson and Spearman correlation.

    MSE = mean((y - yhat)^2)            MAE = mean(|y - yhat|)
    R^2 = 1 - SS_res / SS_tot,  SS_res = sum (y - yhat)^2,  SS_tot = sum (y - mean(y))^2
          (SS_tot = 0: R^2 = 1 for a perfect fit, else 0; fewer than 2 samples: nan)
    pearson(x, y) = sum (x - mean x)(y - mean y) / (||x - mean x|| * ||y - mean y||)
          clipped to [-1, 1]; nan when x or y is constant.  The centred samples are divided by their
          largest |value| before the norms (as scipy's pearsonr does), so values near 1e200 or 1e-170 give
          scipy's r instead of 0.0 or nan (spec/metrics.md section 5, with scipy's scaling)
    spearman(x, y) = pearson(rank(x), rank(y))
          where tied values share the average of the (1-based) positions they occupy.
          The textbook shortcut 1 - 6 sum d^2 / (n (n^2 - 1)) is only right without ties.

This module also holds two helpers the other metric modules share: ``as_array``
(lists, numpy arrays or torch tensors in, numpy out) and ``average_ranks``.
"""
import warnings

import numpy as np


def as_array(x, dtype=None) -> np.ndarray:
    """Turn a list, numpy array or torch tensor (duck-typed, no torch import) into a numpy array."""
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Two float arrays of the same, non-empty, NaN-free shape (1-D, or 2-D = several outputs)."""
    y_true, y_pred = as_array(y_true, float), as_array(y_pred, float)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true shape {y_true.shape} != y_pred shape {y_pred.shape}")
    if y_true.size == 0:
        raise ValueError("empty input")
    if not (np.isfinite(y_true).all() and np.isfinite(y_pred).all()):
        raise ValueError("input contains NaN or infinity")
    return y_true, y_pred


def mse(y_true, y_pred) -> float:
    """Mean squared error (averaged over outputs for 2-D input)."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(np.mean((y_true - y_pred) ** 2, axis=0)))


def mae(y_true, y_pred) -> float:
    """Mean absolute error (averaged over outputs for 2-D input)."""
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(np.mean(np.abs(y_true - y_pred), axis=0)))


def r2(y_true, y_pred) -> float:
    """Coefficient of determination; for 2-D input, the mean over the output columns."""
    y_true, y_pred = _pair(y_true, y_pred)
    if y_true.shape[0] < 2:
        warnings.warn("R^2 is not defined for fewer than two samples", RuntimeWarning)
        return float("nan")
    y_true = y_true.reshape(len(y_true), -1)                    # (n, outputs)
    y_pred = y_pred.reshape(len(y_pred), -1)
    ss_res = ((y_true - y_pred) ** 2).sum(axis=0)               # (outputs,)
    ss_tot = ((y_true - y_true.mean(axis=0)) ** 2).sum(axis=0)  # (outputs,)
    scores = np.ones_like(ss_res)                               # SS_tot = SS_res = 0: perfect
    scores[(ss_tot == 0) & (ss_res != 0)] = 0.0                 # constant target, imperfect fit
    ok = ss_tot != 0
    scores[ok] = 1.0 - ss_res[ok] / ss_tot[ok]
    return float(scores.mean())


def pearson(x, y) -> float:
    """Pearson correlation of two 1-D samples (n >= 2); nan if either is constant or has NaN."""
    x, y = as_array(x, float).ravel(), as_array(y, float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if len(x) < 2:
        raise ValueError("x and y must have length at least 2")
    if np.isnan(x).any() or np.isnan(y).any():
        return float("nan")
    # Test "constant" exactly: x - mean(x) can be a tiny non-zero when x is constant.
    if (x == x[0]).all() or (y == y[0]).all():
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()                         # centred samples (n,)
    # Divide by max |d| before the norm, as scipy does: sum d^2 overflows for d ~ 1e200 (r = 0.0) and
    # underflows to 0 for d ~ 1e-170 (r = nan); scaled, both give scipy's r.  r does not change with the scale.
    dx, dy = dx / np.abs(dx).max(), dy / np.abs(dy).max()
    r = np.dot(dx / np.linalg.norm(dx), dy / np.linalg.norm(dy))
    return float(np.clip(r, -1.0, 1.0))                         # rounding can overshoot by 1 ulp


def average_ranks(x) -> np.ndarray:
    """1-based ranks of ``x``; tied values all get the mean of the positions they occupy.

    [3, 1, 3, 2, 3] -> [4, 1, 4, 2, 4]: the three 3s occupy positions 3, 4, 5, mean 4.
    """
    x = as_array(x).ravel()
    order = np.argsort(x, kind="stable")                        # indices that sort x
    sorted_x = x[order]
    # Positions where a new distinct value starts, plus the end.
    starts = np.flatnonzero(np.r_[True, sorted_x[1:] != sorted_x[:-1]])
    ends = np.r_[starts[1:], len(x)]
    mean_position = (starts + 1 + ends) / 2.0                   # mean of 1-based positions start+1..end
    ranks = np.empty(len(x))
    ranks[order] = np.repeat(mean_position, ends - starts)
    return ranks


def spearman(x, y) -> float:
    """Spearman rank correlation: Pearson correlation of the average ranks (nan for n < 2)."""
    x, y = as_array(x, float).ravel(), as_array(y, float).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same length, got {len(x)} and {len(y)}")
    if len(x) < 2 or np.isnan(x).any() or np.isnan(y).any():
        return float("nan")
    return pearson(average_ranks(x), average_ranks(y))


def regression_summary(y_true, y_pred) -> dict:
    """Headline numbers the training loop logs: {"pearson", "spearman", "mse"} (nan where undefined)."""
    y_true, y_pred = as_array(y_true, float).ravel(), as_array(y_pred, float).ravel()
    return {
        "pearson": pearson(y_true, y_pred) if len(y_true) >= 2 else float("nan"),
        "spearman": spearman(y_true, y_pred),
        "mse": mse(y_true, y_pred),
    }

"""Regression metrics against scikit-learn and scipy (spec sections 5-7)."""
import math
import warnings

import numpy as np
import pytest
import scipy.stats
import sklearn.metrics as skm
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minift.metrics import average_ranks, mae, mse, pearson, r2, regression_summary, spearman


def close(a, b, rel=1e-12, abs_=1e-12):
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def scipy_quiet(fn, x, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(x, y).statistic)


int_pairs = st.lists(st.tuples(st.integers(-5, 5), st.integers(-5, 5)), min_size=2, max_size=40)
float_pairs = st.lists(st.tuples(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3)), min_size=2, max_size=40)


def split(pairs):
    return np.array([p[0] for p in pairs], float), np.array([p[1] for p in pairs], float)


@settings(deadline=None, max_examples=200)
@given(pairs=int_pairs)
def test_correlations_match_scipy_on_integer_grid(pairs):
    x, y = split(pairs)                                        # exact arithmetic, many ties and constants
    assert close(pearson(x, y), scipy_quiet(scipy.stats.pearsonr, x, y))
    assert close(spearman(x, y), scipy_quiet(scipy.stats.spearmanr, x, y))
    assert np.array_equal(average_ranks(x), scipy.stats.rankdata(x))


@settings(deadline=None, max_examples=200)
@given(pairs=float_pairs)
def test_correlations_match_scipy_on_floats(pairs):
    x, y = split(pairs)
    for v in (x, y):
        assume(np.ptp(v) > 1e-6 * max(1, np.abs(v).max()))
    assert close(pearson(x, y), scipy_quiet(scipy.stats.pearsonr, x, y), 1e-9, 1e-9)
    assert close(spearman(x, y), scipy_quiet(scipy.stats.spearmanr, x, y), 1e-9, 1e-9)


@settings(deadline=None, max_examples=200)
@given(pairs=float_pairs | int_pairs)
def test_errors_and_r2_match_sklearn(pairs):
    y, yhat = split(pairs)
    assert close(mse(y, yhat), skm.mean_squared_error(y, yhat), abs_=0)
    assert close(mae(y, yhat), skm.mean_absolute_error(y, yhat), abs_=0)
    assert close(r2(y, yhat), skm.r2_score(y, yhat), 1e-9, 1e-9)


@settings(deadline=None, max_examples=100)
@given(pairs=st.lists(st.tuples(st.integers(-3, 3), st.integers(-3, 3), st.integers(-3, 3), st.integers(-3, 3)),
                      min_size=2, max_size=20))
def test_two_output_r2_and_mse_match_sklearn(pairs):
    a = np.array(pairs, float)
    y, yhat = a[:, :2], a[:, 2:]
    assert close(r2(y, yhat), skm.r2_score(y, yhat), 1e-9, 1e-9)
    assert close(mse(y, yhat), skm.mean_squared_error(y, yhat))
    assert close(mae(y, yhat), skm.mean_absolute_error(y, yhat))


def test_pearson_and_spearman_examples():
    assert pearson([1, 2, 3, 4], [1, 3, 2, 5]) == pytest.approx(0.8315218406203, abs=1e-12)
    assert math.isnan(pearson([2, 2, 2], [1, 2, 3]))
    assert math.isnan(pearson([0.1] * 3, [0.1] * 3))
    assert pearson([1, 2], [3, 1]) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        pearson([1], [2])
    assert math.isnan(pearson([1, np.nan, 3], [1, 2, 3]))
    # near-constant input: float64 has lost the answer (0.866) in x - mean(x); both libraries give 0.8333
    near = [1, 1, 1 + 1e-15]
    assert pearson(near, [1, 2, 3]) == pytest.approx(scipy_quiet(scipy.stats.pearsonr, near, [1, 2, 3]), abs=1e-12)
    assert pearson(np.float32([1, 2, 3]), np.float32([1, 2, 4])) == pytest.approx(0.9819805060619657, abs=1e-12)
    # the shortcut 1 - 6 sum d^2 / (n (n^2 - 1)) would give 0.85 here
    assert spearman([1, 2, 2, 3], [1, 1, 2, 3]) == pytest.approx(0.8333333333333335, abs=1e-12)
    assert average_ranks([3, 1, 3, 2, 3]).tolist() == [4, 1, 4, 2, 4]
    assert math.isnan(spearman([5, 5, 5], [1, 2, 3]))
    assert math.isnan(spearman([1], [2]))
    assert spearman([1, 2], [2, 1]) == pytest.approx(-1.0, abs=1e-12)
    assert math.isnan(spearman([1, np.nan, 2], [1, 2, 3]))


def test_error_and_r2_examples():
    assert mse([1, 2, 3], [1, 2, 5]) == pytest.approx(4 / 3)
    assert mae([1, 2, 3], [1, 2, 5]) == pytest.approx(2 / 3)
    assert r2([1, 2, 3], [1, 2, 5]) == pytest.approx(-1.0)
    assert r2([1, 2, 3], [2, 2, 2]) == 0.0
    assert r2([1, 2, 3], [3, 2, 1]) == pytest.approx(-3.0)
    assert r2([4, 4, 4], [4, 4, 4]) == 1.0                     # constant target, perfect
    assert r2([4, 4, 4], [4, 4, 5]) == 0.0                     # constant target, imperfect
    with pytest.warns(RuntimeWarning):
        assert math.isnan(r2([2], [3]))
    for bad in (([], []), ([1, np.nan], [1, 2]), ([1, 2], [1, 2, 3])):
        with pytest.raises(ValueError):
            mse(*bad)
    y, yhat = np.array([[1, 5], [2, 5], [3, 5], [4, 5]]), np.array([[1, 5], [2, 5], [3, 5], [2, 6]])
    assert r2(y, yhat) == pytest.approx(np.mean([0.2, 0.0]))   # columns: 1 - 4/5, constant-imperfect
    assert r2(y, yhat) == pytest.approx(skm.r2_score(y, yhat))


def test_regression_summary_accepts_tensors():
    y, yhat = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([1.5, 1.0, 3.5, 5.0], requires_grad=True)
    out = regression_summary(y, yhat)
    assert set(out) == {"pearson", "spearman", "mse"}
    t, x = y.numpy().astype(float), yhat.detach().numpy().astype(float)  # minift works in float64
    assert out["pearson"] == pytest.approx(scipy.stats.pearsonr(t, x).statistic, abs=1e-12)
    assert out["spearman"] == pytest.approx(scipy.stats.spearmanr(t, x).statistic, abs=1e-12)
    assert out["mse"] == pytest.approx(skm.mean_squared_error(t, x), abs=1e-12)
    single = regression_summary([1.0], [2.0])
    assert math.isnan(single["pearson"]) and math.isnan(single["spearman"]) and single["mse"] == 1.0

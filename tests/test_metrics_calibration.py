"""minift.metrics.calibration: ECE and reliability bins against a loop written here as Guo et al.'s code has
it (github.com/gpleiss/temperature_scaling, _ECELoss), NLL against torch's cross_entropy, and the fitted
temperature against scipy's bounded scalar minimiser and against a known temperature on synthetic data."""
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import scipy.optimize
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from minift.metrics.calibration import (apply_temperature, expected_calibration_error, fit_temperature, nll,
                                        reliability_bins)


def reference_bins(probs, labels, n_bins):
    """_ECELoss's loop: in_bin = conf > lower and conf <= upper (and conf = 0 in the first bin)."""
    conf, correct = probs.max(axis=1), probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, n_bins + 1)
    rows = []
    for m, (lower, upper) in enumerate(zip(edges[:-1], edges[1:])):
        in_bin = (conf > lower) & (conf <= upper) | ((conf == 0) if m == 0 else False)
        rows.append((in_bin.sum(), correct[in_bin].mean() if in_bin.any() else np.nan,
                     conf[in_bin].mean() if in_bin.any() else np.nan))
    return rows


def reference_ece(probs, labels, n_bins):
    return sum(count / len(labels) * abs(acc - conf)
               for count, acc, conf in reference_bins(probs, labels, n_bins) if count > 0)


@st.composite
def calibration_case(draw):
    n, k, n_bins = draw(st.integers(1, 40)), draw(st.integers(1, 5)), draw(st.sampled_from([1, 2, 5, 10, 15]))
    edges = np.linspace(0, 1, n_bins + 1)
    rows = []
    for _ in range(n):
        if k > 1 and draw(st.booleans()):  # confidence exactly on a bin edge: the convention shows
            e = draw(st.sampled_from([x for x in edges if x >= 1 / k] or [1.0]))
            rows.append([e] + [(1 - e) / (k - 1)] * (k - 1))
        else:
            w = np.array(draw(st.lists(st.floats(0.01, 10), min_size=k, max_size=k)))
            rows.append(list(w / w.sum()))
    labels = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    return np.array(rows), labels, n_bins


@settings(deadline=None, max_examples=200)
@given(case=calibration_case())
def test_ece_and_bins_match_guo_et_als_loop(case):
    probs, labels, n_bins = case
    b = reliability_bins(probs, labels, n_bins)
    ref = reference_bins(probs, labels, n_bins)
    np.testing.assert_array_equal(b.counts, [r[0] for r in ref])
    np.testing.assert_allclose(b.accuracy, [r[1] for r in ref], rtol=1e-12)
    np.testing.assert_allclose(b.confidence, [r[2] for r in ref], rtol=1e-12)
    np.testing.assert_allclose(b.edges, np.linspace(0, 1, n_bins + 1))
    assert expected_calibration_error(probs, labels, n_bins) == pytest.approx(reference_ece(probs, labels, n_bins),
                                                                               abs=1e-12)


def test_ece_of_a_model_that_is_right_half_the_time_at_80_percent():
    """Every confidence 0.8 and every other prediction right: one full bin, |0.5 - 0.8| = 0.3."""
    probs = np.tile([0.8, 0.2], (10, 1))
    labels = np.array([0, 1] * 5)
    assert expected_calibration_error(probs, labels) == pytest.approx(0.3)
    assert expected_calibration_error(probs, np.zeros(10, int)) == pytest.approx(0.2)  # always right: 1 - 0.8


def test_calibration_input_checks():
    with pytest.raises(ValueError, match="softmax"):
        expected_calibration_error(np.array([[2.0, -1.0]]), np.array([0]))
    with pytest.raises(ValueError, match=r"\(n, K\)"):
        reliability_bins(np.array([0.5, 0.5]), np.array([0]))
    with pytest.raises(ValueError, match="labels"):
        reliability_bins(np.array([[0.5, 0.5]]), np.array([2]))
    with pytest.raises(ValueError, match="n_bins"):
        reliability_bins(np.array([[0.5, 0.5]]), np.array([1]), n_bins=0)
    with pytest.raises(ValueError, match="NaN"):
        fit_temperature(np.array([[np.nan, 0.0]]), np.array([0]))
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(np.zeros((1, 2)), 0.0)


# ---------------------------------------------------------------------------------- temperature scaling


@st.composite
def logits_case(draw):
    n, k = draw(st.integers(1, 30)), draw(st.integers(2, 5))
    z = draw(hnp.arrays(np.float64, (n, k), elements=st.floats(-20, 20)))
    y = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    return z, y


@settings(deadline=None, max_examples=100)
@given(case=logits_case(), t=st.floats(0.05, 20))
def test_nll_is_torch_cross_entropy_of_the_scaled_logits(case, t):
    z, y = case
    expected = F.cross_entropy(torch.tensor(z) / t, torch.tensor(y)).item()
    assert nll(z, y, t) == pytest.approx(expected, rel=1e-10, abs=1e-12)


@settings(deadline=None, max_examples=60)
@given(case=logits_case())
def test_fitted_temperature_minimises_nll_as_well_as_scipy(case):
    z, y = case
    t = fit_temperature(z, y)
    assert 0.01 <= t <= 100
    best = scipy.optimize.minimize_scalar(lambda s: nll(z, y, np.exp(s)), bounds=(np.log(0.01), np.log(100)),
                                          method="bounded", options={"xatol": 1e-10})
    assert nll(z, y, t) <= best.fun + 1e-9
    for other in (1.0, t * 1.001, t / 1.001):
        if 0.01 <= other <= 100:
            assert nll(z, y, t) <= nll(z, y, other) + 1e-12


@pytest.mark.parametrize("t_true", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_the_temperature_the_labels_were_drawn_with(t_true):
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, (20000, 5))
    p = np.exp(z / t_true) / np.exp(z / t_true).sum(axis=1, keepdims=True)
    y = (p.cumsum(axis=1) < rng.random((20000, 1))).sum(axis=1)  # inverse-CDF draw from each row
    t = fit_temperature(z, y)
    assert t == pytest.approx(t_true, rel=0.05)
    probs_before = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    logits_after = apply_temperature(z, t)
    probs_after = np.exp(logits_after) / np.exp(logits_after).sum(axis=1, keepdims=True)
    assert expected_calibration_error(probs_after, y) < 0.02  # calibrated after, whatever it was before
    if t_true != 1.0:
        assert expected_calibration_error(probs_before, y) > 2 * expected_calibration_error(probs_after, y)


def test_fit_temperature_at_its_edges():
    z = np.array([[3.0, -1.0], [-2.0, 2.0], [0.0, 5.0]])
    t = fit_temperature(z, np.array([0, 1, 1]))                     # all right with a margin: T -> 0 ...
    assert t <= 0.1 and nll(z, np.array([0, 1, 1]), t) < 1e-15       # ... until the NLL underflows to 0
    z_close = np.array([[0.3, 0.0], [0.0, 0.2]])                     # a margin too small to underflow
    assert fit_temperature(z_close, np.array([0, 1])) == 0.01
    assert fit_temperature(z, np.array([1, 0, 0])) == 100.0         # all wrong: T -> infinity, toward uniform
    assert fit_temperature(np.ones((4, 3)), np.array([0, 1, 2, 0])) == pytest.approx(1.0)  # NLL ignores T


def test_apply_temperature_divides_numpy_and_torch_logits_and_keeps_the_argmax():
    z = np.array([[1.0, 3.0, -2.0]])
    np.testing.assert_allclose(apply_temperature(z, 2.0), z / 2)
    out = apply_temperature(torch.tensor(z), 0.5)
    assert isinstance(out, torch.Tensor) and out.argmax().item() == 1

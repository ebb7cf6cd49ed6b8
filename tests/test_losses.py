"""minift.losses against torch.nn.functional: values and gradients, float64 and float32 (spec sections 12-14)."""
import math

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from minift.losses import binary_cross_entropy_with_logits, cross_entropy, log_softmax, mse

TOL = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-5, atol=1e-5)}
REDUCTIONS = ["mean", "sum", "none"]


def value_and_grad(fn, x, *args, **kwargs):
    """Loss value (float64) and the gradient of its sum w.r.t. x."""
    x = x.detach().clone().requires_grad_(True)
    out = fn(x, *args, **kwargs)
    out.sum().backward()
    return out.detach().double(), x.grad.double()


def assert_same(ours, ref, dtype):
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, equal_nan=True, check_dtype=False, **TOL[dtype])


@st.composite
def ce_case(draw, lo=-30.0, hi=30.0):
    n, c = draw(st.integers(1, 12)), draw(st.integers(2, 6))
    x = draw(hnp.arrays(np.float64, (n, c), elements=st.floats(lo, hi)))
    y = draw(st.lists(st.one_of(st.integers(0, c - 1), st.just(-100)), min_size=n, max_size=n))
    w = draw(st.none() | hnp.arrays(np.float64, (c,), elements=st.floats(0.1, 5)))
    eps = draw(st.sampled_from([0.0, 0.1, 0.3, 1.0]))
    return torch.tensor(x), torch.tensor(y), None if w is None else torch.tensor(w), eps


@settings(deadline=None, max_examples=100)
@given(case=ce_case(), reduction=st.sampled_from(REDUCTIONS), dtype=st.sampled_from([torch.float64, torch.float32]))
def test_cross_entropy_matches_torch(case, reduction, dtype):
    x, y, w, eps = case
    x, w = x.to(dtype), None if w is None else w.to(dtype)
    kw = dict(weight=w, label_smoothing=eps, reduction=reduction)
    assert_same(value_and_grad(cross_entropy, x, y, **kw), value_and_grad(F.cross_entropy, x, y, **kw), dtype)


@settings(deadline=None, max_examples=60)
@given(case=ce_case(-1e3, 1e3), reduction=st.sampled_from(REDUCTIONS))
def test_cross_entropy_large_logits_are_stable(case, reduction):
    x, y, w, eps = case
    kw = dict(weight=w, label_smoothing=eps, reduction=reduction)
    ours = value_and_grad(cross_entropy, x, y, **kw)
    assert_same(ours, value_and_grad(F.cross_entropy, x, y, **kw), torch.float64)
    x32, kw["weight"] = x.float(), None if w is None else w.float()
    ours32 = cross_entropy(x32, y, **kw)
    assert not torch.isinf(ours32).any()
    torch.testing.assert_close(ours32.double(), F.cross_entropy(x32, y, **kw).double(), rtol=1e-5, atol=1e-3,
                               equal_nan=True)


@settings(deadline=None, max_examples=60)
@given(n=st.integers(1, 6), c=st.integers(2, 5), d=st.integers(1, 4), data=st.data(),
       eps=st.sampled_from([0.0, 0.2]), reduction=st.sampled_from(REDUCTIONS))
def test_cross_entropy_probability_and_spatial_targets(n, c, d, data, eps, reduction):
    x = torch.tensor(data.draw(hnp.arrays(np.float64, (n, c, d), elements=st.floats(-10, 10))))
    q = torch.tensor(data.draw(hnp.arrays(np.float64, (n, c, d), elements=st.floats(0, 1))))
    w = torch.tensor(data.draw(hnp.arrays(np.float64, (c,), elements=st.floats(0.1, 3))))
    y = torch.tensor(data.draw(hnp.arrays(np.int64, (n, d), elements=st.sampled_from(list(range(c)) + [-100]))))
    kw = dict(weight=w, label_smoothing=eps, reduction=reduction)
    for target in (q, y):  # probabilities (N, C, d) and class indices (N, d)
        assert_same(value_and_grad(cross_entropy, x, target, **kw),
                    value_and_grad(F.cross_entropy, x, target, **kw), torch.float64)


def test_cross_entropy_spec_values():
    x = torch.tensor([[2, .5, -1], [.1, .2, .3], [1, -2, 0], [0, 0, 3]], dtype=torch.float64)
    y = torch.tensor([0, 2, 1, -100])
    w = torch.tensor([1, 2, .5], dtype=torch.float64)
    assert cross_entropy(x, y).item() == pytest.approx(1.5307554539, abs=1e-10)
    assert cross_entropy(x, y, reduction="sum").item() == pytest.approx(4.5922663617, abs=1e-10)
    assert cross_entropy(x, y, weight=w).item() == pytest.approx(2.1258020441, abs=1e-10)
    assert cross_entropy(x, y, label_smoothing=0.1).item() == pytest.approx(1.5285332317, abs=1e-10)
    # The smoothing term is weighted by each class's own weight (2.07484966 would be w_y instead).
    assert cross_entropy(x, y, weight=w, label_smoothing=0.1).item() == pytest.approx(2.0748688136, abs=1e-10)
    none = cross_entropy(x, y, weight=w, label_smoothing=0.1, reduction="none")
    assert none.tolist() == pytest.approx([0.39533, 0.58110, 6.28561, 0.0], abs=1e-5)


def test_cross_entropy_all_ignored_empty_and_zero_weight():
    x = torch.randn(3, 4, dtype=torch.float64)
    ignored = torch.full((3,), -100)
    assert math.isnan(cross_entropy(x, ignored).item())
    assert math.isnan(cross_entropy(x, ignored, label_smoothing=0.1).item())
    assert cross_entropy(x, ignored, reduction="sum").item() == 0.0
    empty = torch.zeros(0, 4, dtype=torch.float64)
    assert math.isnan(cross_entropy(empty, torch.zeros(0, dtype=torch.long)).item())
    assert cross_entropy(empty, torch.zeros(0, dtype=torch.long), reduction="sum").item() == 0.0
    zeros = torch.zeros(4, dtype=torch.float64)
    assert math.isnan(cross_entropy(x, torch.tensor([0, 1, 2]), weight=zeros).item())


def test_cross_entropy_rejects_bad_input():
    x = torch.randn(2, 3)
    with pytest.raises(IndexError):
        cross_entropy(x, torch.tensor([0, 3]))
    with pytest.raises(ValueError):
        cross_entropy(x, torch.tensor([0, 1]), label_smoothing=1.5)
    with pytest.raises(TypeError):
        cross_entropy(x, torch.tensor([0, 1], dtype=torch.int32))
    with pytest.raises(TypeError):
        cross_entropy(torch.ones(2, 3, dtype=torch.long), torch.tensor([0, 1]))
    with pytest.raises(ValueError):  # (N, L, C) logits with (N, L) targets: the class dim must be 1
        cross_entropy(torch.randn(2, 5, 3), torch.zeros(2, 5, dtype=torch.long))
    assert cross_entropy(x, torch.tensor([0, 1]), label_smoothing=1.0).isfinite()


def test_cross_entropy_is_stable_and_unbatched():
    logits = torch.tensor([1000.0, 0.0, -1000.0])
    assert cross_entropy(logits, torch.tensor(2)).item() == 2000.0
    x, y = torch.randn(5, dtype=torch.float64), torch.tensor(3)
    torch.testing.assert_close(cross_entropy(x, y, reduction="none"), F.cross_entropy(x, y, reduction="none"))
    torch.testing.assert_close(log_softmax(x), torch.log_softmax(x, -1))


@st.composite
def bce_case(draw):
    shape = draw(st.tuples(st.integers(1, 6), st.integers(1, 5)))
    x = draw(hnp.arrays(np.float64, shape, elements=st.floats(-200, 200)))
    y = draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([0.0, 1.0, 0.25])))
    pw = draw(st.none() | hnp.arrays(np.float64, (shape[1],), elements=st.floats(0, 10)))
    w = draw(st.none() | hnp.arrays(np.float64, shape, elements=st.floats(0, 3)))
    as_t = lambda a: None if a is None else torch.tensor(a)  # noqa: E731
    return as_t(x), as_t(y), as_t(pw), as_t(w)


@settings(deadline=None, max_examples=100)
@given(case=bce_case(), reduction=st.sampled_from(REDUCTIONS), dtype=st.sampled_from([torch.float64, torch.float32]))
def test_bce_with_logits_matches_torch(case, reduction, dtype):
    x, y, pw, w = (None if t is None else t.to(dtype) for t in case)
    kw = dict(weight=w, pos_weight=pw, reduction=reduction)
    ours = value_and_grad(binary_cross_entropy_with_logits, x, y, **kw)
    assert_same(ours, value_and_grad(F.binary_cross_entropy_with_logits, x, y, **kw), dtype)


def test_bce_with_logits_spec_values():
    x = torch.tensor([[2, -1, 0], [-3, .5, 10]], dtype=torch.float64)
    y = torch.tensor([[1, 0, 1], [0, 1, .3]], dtype=torch.float64)
    assert binary_cross_entropy_with_logits(x, y).item() == pytest.approx(1.4426744356, abs=1e-10)
    pw = torch.tensor([2, .5, 1], dtype=torch.float64)
    none = binary_cross_entropy_with_logits(x, y, pos_weight=pw, reduction="none")
    assert none.flatten().tolist() == pytest.approx([.25386, .31326, .69315, .04859, .23704, 7.00005], abs=1e-5)
    w = torch.tensor([1, 2, 3], dtype=torch.float64)
    assert binary_cross_entropy_with_logits(x, y, weight=w).item() == pytest.approx(4.1382950741, abs=1e-10)
    # float32 extremes: the naive formula gives [inf, inf, nan]
    out = binary_cross_entropy_with_logits(torch.tensor([100., -100, 100]), torch.tensor([0., 1, 1]), reduction="none")
    assert out[:2].tolist() == [100.0, 100.0] and 0 < out[2].item() < 1e-40
    big = binary_cross_entropy_with_logits(torch.tensor([-1e4]), torch.tensor([1.0]), pos_weight=torch.tensor([3.0]))
    assert big.item() == 30000.0
    outside = binary_cross_entropy_with_logits(torch.zeros(2), torch.tensor([2.0, -1.0]), reduction="none")
    assert outside.tolist() == pytest.approx([math.log(2)] * 2)
    assert math.isnan(binary_cross_entropy_with_logits(torch.zeros(0), torch.zeros(0)).item())


def test_bce_with_logits_gradient_at_zero_is_half():
    x = torch.zeros(3, requires_grad=True)
    binary_cross_entropy_with_logits(x, torch.tensor([0.0, 1.0, 0.25]), reduction="sum").backward()
    assert x.grad.tolist() == pytest.approx([0.5, -0.5, 0.25])


def test_bce_with_logits_rejects_bad_input():
    with pytest.raises(ValueError):
        binary_cross_entropy_with_logits(torch.zeros(3, 1), torch.zeros(3))
    with pytest.raises(TypeError):
        binary_cross_entropy_with_logits(torch.zeros(3), torch.zeros(3, dtype=torch.long))


@settings(deadline=None, max_examples=100)
@given(data=st.data(), n=st.integers(0, 20), reduction=st.sampled_from(REDUCTIONS))
def test_mse_matches_torch(data, n, reduction):
    x, y = (torch.tensor(data.draw(hnp.arrays(np.float64, (n,), elements=st.floats(-1e3, 1e3)))) for _ in range(2))
    ours = value_and_grad(mse, x, y, reduction=reduction)
    ref = value_and_grad(F.mse_loss, x, y, reduction=reduction)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, equal_nan=True)


def test_mse_examples_and_shape_check():
    assert mse(torch.tensor([1., 2, 3]), torch.tensor([1., 2, 5])).item() == pytest.approx(4 / 3)
    with pytest.raises(ValueError):  # torch would broadcast (3, 1) - (3,) to (3, 3) and return 4.0
        mse(torch.tensor([[1.], [2], [3]]), torch.tensor([1., 2, 5]))
    assert math.isnan(mse(torch.zeros(0), torch.zeros(0)).item())
    with pytest.raises(TypeError):
        mse(torch.tensor([1, 2]), torch.tensor([1, 2]))
    assert mse(torch.ones(2), torch.zeros(2, dtype=torch.float64)).dtype == torch.float64
    assert mse(torch.ones(2), torch.zeros(2), reduction="none").tolist() == [1.0, 1.0]

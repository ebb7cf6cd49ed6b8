"""minift's losses equal `torch.nn.functional`'s at the edges too: value AND gradient, NaN where torch is NaN.

The generators reach the places where a written-out formula and torch's kernels part: +-inf logits (a class
masked out), finfo.min / finfo.max (overflowing x - max), all-ignored rows, zero class weights and pos_weight 0,
with and without label smoothing, every reduction, float32 and float64. spec/metrics.md sections 12-14.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from minift import losses

DTYPES = {"float32": torch.float32, "float64": torch.float64}
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
EDGE = settings(deadline=None, max_examples=120)


def logit(dtype):
    """Mostly ordinary numbers, often an edge: +-inf, finfo.min / max, 0, large finite values."""
    fi = torch.finfo(dtype)
    edges = [float("inf"), float("-inf"), fi.min, fi.max, 0.0, 1e3, -1e3]
    return st.one_of(st.floats(-30, 30, width=32), st.floats(-30, 30, width=32), st.sampled_from(edges))


def tensor(draw, shape, elements, dtype):
    n = int(np.prod(shape))
    return torch.tensor(draw(st.lists(elements, min_size=n, max_size=n)), dtype=dtype).reshape(shape)


def assert_same(got, want, dtype, what):
    """Equal where finite (to the dtype's tolerance), the same inf and the same NaN positions elsewhere."""
    got, want = got.detach().double(), want.detach().double()
    assert got.shape == want.shape, what
    assert torch.equal(got.isnan(), want.isnan()), f"{what}: NaN where torch has {want} and minift {got}"
    assert torch.equal(got.isinf(), want.isinf()), f"{what}: inf differs: torch {want}, minift {got}"
    fin = want.isfinite()
    assert torch.equal(got[want.isinf()], want[want.isinf()]), what
    torch.testing.assert_close(got[fin], want[fin], rtol=TOL[dtype], atol=TOL[dtype], msg=what)


def value_and_grad(fn, x, *args, **kwargs):
    x = x.clone().requires_grad_(True)
    out = fn(x, *args, **kwargs)
    out.sum().backward()
    return out, x.grad


def check_both(ours, theirs, x, args, kwargs, dtype):
    got, g_got = value_and_grad(ours, x, *args, **kwargs)
    want, g_want = value_and_grad(theirs, x, *args, **kwargs)
    assert_same(got, want, dtype, f"value {kwargs}")
    assert_same(g_got, g_want, dtype, f"gradient {kwargs}")


@st.composite
def ce_case(draw, probabilities=False):
    dtype = DTYPES[draw(st.sampled_from(sorted(DTYPES)))]
    N, C = draw(st.integers(1, 5)), draw(st.integers(2, 5))
    shape = (N, C) if not draw(st.booleans()) else (N, C, draw(st.integers(1, 3)))  # (N, C, d) as in tagging
    x = tensor(draw, shape, logit(dtype), dtype)
    batch = (N,) + shape[2:]
    if probabilities:
        q = tensor(draw, shape, st.sampled_from([0.0, 0.25, 0.5, 1.0]), dtype)
        target = q
    else:
        ignore_all = draw(st.integers(0, 5)) == 0
        labels = st.just(-100) if ignore_all else st.one_of(st.integers(0, C - 1), st.just(-100))
        target = tensor(draw, batch, labels, torch.int64)
    weight = draw(st.none() | st.lists(st.sampled_from([0.0, 0.0, 0.5, 1.0, 2.5]), min_size=C, max_size=C))
    kwargs = dict(weight=None if weight is None else torch.tensor(weight, dtype=dtype),
                  label_smoothing=draw(st.sampled_from([0.0, 0.0, 0.1, 0.3, 1.0])),
                  reduction=draw(st.sampled_from(losses.REDUCTIONS)))
    return x, target, kwargs, dtype


@EDGE
@given(case=ce_case())
def test_cross_entropy_class_targets_match_torch_at_the_edges(case):
    x, target, kwargs, dtype = case
    check_both(losses.cross_entropy, F.cross_entropy, x, (target,), kwargs, dtype)


@EDGE
@given(case=ce_case(probabilities=True))
def test_cross_entropy_probability_targets_match_torch_at_the_edges(case):
    x, target, kwargs, dtype = case
    check_both(losses.cross_entropy, F.cross_entropy, x, (target,), kwargs, dtype)


@EDGE
@given(data=st.data(), dtype=st.sampled_from(sorted(DTYPES)), reduction=st.sampled_from(losses.REDUCTIONS))
def test_bce_with_logits_matches_torch_at_the_edges(data, dtype, reduction):
    dtype = DTYPES[dtype]
    shape = (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4)))
    x = tensor(data.draw, shape, logit(dtype), dtype)
    y = tensor(data.draw, shape, st.sampled_from([0.0, 1.0, 0.25]), dtype)
    weight = data.draw(st.booleans())
    pos_weight = data.draw(st.booleans())
    kwargs = dict(reduction=reduction,
                  weight=tensor(data.draw, shape, st.sampled_from([0.0, 0.5, 2.0]), dtype) if weight else None,
                  pos_weight=tensor(data.draw, shape[-1:], st.sampled_from([0.0, 1.0, 3.0]), dtype)
                  if pos_weight else None)
    check_both(losses.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits, x, (y,), kwargs,
               dtype)


@EDGE
@given(data=st.data(), dtype=st.sampled_from(sorted(DTYPES)), reduction=st.sampled_from(losses.REDUCTIONS))
def test_mse_matches_torch_at_the_edges(data, dtype, reduction):
    dtype = DTYPES[dtype]
    shape = (data.draw(st.integers(0, 6)),)
    x = tensor(data.draw, shape, logit(dtype), dtype)
    y = tensor(data.draw, shape, logit(dtype), dtype)
    check_both(losses.mse, F.mse_loss, x, (y,), dict(reduction=reduction), dtype)


# The four cases issue 13 found, pinned one by one (each against torch, none against a written-down number).

def test_a_masked_class_does_not_make_the_loss_nan():
    """-inf (a class masked out) or two finfo.min logits per row, smoothing 0: torch's loss is finite."""
    x = torch.tensor([[0.0, 1.0, float("-inf")], [2.0, 0.0, float("-inf")]])
    m = torch.finfo(torch.float32).min
    x2 = torch.tensor([[0.0, m, m], [1.0, 2.0, m]])
    y = torch.tensor([0, 1])
    for logits in (x, x2):
        got, want = losses.cross_entropy(logits, y), F.cross_entropy(logits, y)
        assert torch.isfinite(got) and torch.allclose(got, want)
    for eps in (0.1, 1.0):  # with smoothing the -inf class's log p is in the sum: inf, as in torch
        assert losses.cross_entropy(x, y, label_smoothing=eps) == F.cross_entropy(x, y, label_smoothing=eps)


def test_bce_infinite_logit_with_target_zero_is_inf():
    x, y = torch.tensor([float("inf")]), torch.tensor([0.0])
    assert losses.binary_cross_entropy_with_logits(x, y) == F.binary_cross_entropy_with_logits(x, y) == float("inf")


def test_every_present_class_weighted_zero_with_smoothing_is_nan():
    x, y, w = torch.randn(3, 3), torch.tensor([0, 1, 0]), torch.tensor([0.0, 0.0, 1.0])
    assert F.cross_entropy(x, y, weight=w, label_smoothing=0.1).isnan()
    assert losses.cross_entropy(x, y, weight=w, label_smoothing=0.1).isnan()


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int32, torch.int16, torch.int8])
def test_class_targets_other_than_int64_are_rejected_with_what_to_do(dtype):
    """torch rejects int32/16/8 always and uint8 on (N, C, d) logits; minift takes int64 only, and says so."""
    with pytest.raises(RuntimeError):
        F.cross_entropy(torch.randn(2, 3, 4), torch.zeros(2, 4, dtype=dtype))
    with pytest.raises(TypeError, match=r"int64 .*target.long\(\)"):
        losses.cross_entropy(torch.randn(2, 3), torch.tensor([0, 2], dtype=dtype))

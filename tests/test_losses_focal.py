"""minift.losses focal losses and L1 / L2 penalties against their formulas, written out here independently:
Lin et al. 2017 for the softmax focal loss, torchvision.ops.sigmoid_focal_loss's source for the sigmoid one
(torchvision itself is not a dependency), and torch.nn.functional at gamma = 0."""
import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from minift.losses import focal_loss, l1_penalty, l2_penalty, sigmoid_focal_loss

REDUCTIONS = ["mean", "sum", "none"]
GAMMAS = st.one_of(st.sampled_from([0.0, 0.5, 1.0, 2.0, 5.0]), st.floats(0.0, 5.0))


def reduce(loss, reduction):
    return {"mean": loss.mean, "sum": loss.sum, "none": lambda: loss}[reduction]()


def softmax_focal_reference(x, y, gamma, alpha, reduction):
    """Lin et al. eq. 5 with softmax probabilities, the way a student would type it."""
    p_t = F.softmax(x, dim=1)[torch.arange(len(y)), y]
    a_t = 1.0 if alpha is None else (alpha[y] if isinstance(alpha, torch.Tensor) else alpha)
    return reduce(-a_t * (1 - p_t) ** gamma * torch.log(p_t), reduction)


def torchvision_sigmoid_focal(inputs, targets, gamma, alpha, reduction):
    """torchvision.ops.sigmoid_focal_loss as its source has it (alpha < 0 means no alpha)."""
    p = torch.sigmoid(inputs)
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return reduce(loss, reduction)


def value_and_grad(fn, x, *args, **kwargs):
    x = x.detach().clone().requires_grad_(True)
    out = fn(x, *args, **kwargs)
    out.sum().backward()
    return out.detach(), x.grad


def assert_same(ours, ref, **tol):
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, **(tol or dict(rtol=1e-9, atol=1e-11)))


@st.composite
def softmax_case(draw, bound=12.0):
    n, c = draw(st.integers(1, 10)), draw(st.integers(2, 6))
    x = torch.tensor(draw(hnp.arrays(np.float64, (n, c), elements=st.floats(-bound, bound))))
    y = torch.tensor(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    alpha = draw(st.none() | st.floats(0.05, 1.0)
                 | hnp.arrays(np.float64, (c,), elements=st.floats(0.05, 3.0)).map(torch.tensor))
    return x, y, alpha


@st.composite
def sigmoid_case(draw, bound=12.0):
    shape = draw(st.sampled_from([(7,), (4, 3), (2, 3, 2)]))
    x = torch.tensor(draw(hnp.arrays(np.float64, shape, elements=st.floats(-bound, bound))))
    hard = draw(st.booleans())
    t = draw(hnp.arrays(np.float64, shape, elements=st.sampled_from([0.0, 1.0]) if hard else st.floats(0, 1)))
    return x, torch.tensor(t), draw(st.none() | st.floats(0.0, 1.0))


@settings(deadline=None, max_examples=150)
@given(case=softmax_case(), gamma=GAMMAS, reduction=st.sampled_from(REDUCTIONS))
def test_focal_loss_is_lins_formula(case, gamma, reduction):
    x, y, alpha = case
    assert_same(value_and_grad(focal_loss, x, y, gamma, alpha, reduction),
                value_and_grad(softmax_focal_reference, x, y, gamma, alpha, reduction))


@settings(deadline=None, max_examples=150)
@given(case=sigmoid_case(), gamma=GAMMAS, reduction=st.sampled_from(REDUCTIONS))
def test_sigmoid_focal_loss_is_torchvisions_formula(case, gamma, reduction):
    x, t, alpha = case
    assert_same(value_and_grad(sigmoid_focal_loss, x, t, gamma, alpha, reduction),
                value_and_grad(torchvision_sigmoid_focal, x, t, gamma, -1.0 if alpha is None else alpha, reduction))


@settings(deadline=None, max_examples=60)
@given(case=softmax_case(bound=30.0), reduction=st.sampled_from(REDUCTIONS))
def test_focal_loss_at_gamma_0_is_cross_entropy(case, reduction):
    x, y, alpha = case
    weight = alpha if isinstance(alpha, torch.Tensor) else None
    ours = value_and_grad(focal_loss, x, y, 0.0, weight, "none")
    assert_same(ours, value_and_grad(F.cross_entropy, x, y, weight=weight, reduction="none"))
    if weight is None:  # with per-class alpha the mean divides by N, cross_entropy's by sum_i w_{y_i}
        assert_same(value_and_grad(focal_loss, x, y, 0.0, None, reduction),
                    value_and_grad(F.cross_entropy, x, y, reduction=reduction))


@settings(deadline=None, max_examples=60)
@given(case=sigmoid_case(bound=30.0), reduction=st.sampled_from(REDUCTIONS))
def test_sigmoid_focal_loss_at_gamma_0_is_bce(case, reduction):
    x, t, _ = case
    assert_same(value_and_grad(sigmoid_focal_loss, x, t, 0.0, None, reduction),
                value_and_grad(F.binary_cross_entropy_with_logits, x, t, reduction=reduction))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_losses_stay_finite_at_saturated_logits(dtype, gamma):
    """Logits of +-1e4 make p_t exactly 1 or 0: values and gradients stay finite (the naive formula gives
    log 0 = -inf for the wrong side and, for 0 < gamma < 1, a nan gradient on the right side)."""
    x = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 3.0]], dtype=dtype)
    y = torch.tensor([0, 0])  # row 0 saturated right, row 1 saturated wrong
    value, grad = value_and_grad(focal_loss, x, y, gamma, None, "none")
    assert torch.isfinite(value).all() and torch.isfinite(grad).all()
    assert value[0] == 0 and torch.equal(grad[0], torch.zeros(3, dtype=dtype))
    torch.testing.assert_close(value[1], torch.tensor(2e4, dtype=dtype))  # -log p_t = 2e4 exactly, weight 1
    t = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], dtype=dtype)
    value, grad = value_and_grad(sigmoid_focal_loss, x, t, gamma, 0.25, "none")
    assert torch.isfinite(value).all() and torch.isfinite(grad).all()
    assert value[0, 0] == 0 and value[0, 1] == 0 and value[1, 1] == 0  # confident and right


def test_focal_loss_down_weights_easy_examples():
    """The point of the loss: an easy example (p_t = 0.9) loses 100x its cross-entropy at gamma 2,
    a hard one (p_t = 0.1) only 1.23x."""
    x = torch.log(torch.tensor([[0.9, 0.1], [0.1, 0.9]], dtype=torch.float64))
    y = torch.tensor([0, 0])
    ratio = focal_loss(x, y, 2.0, reduction="none") / F.cross_entropy(x, y, reduction="none")
    torch.testing.assert_close(ratio, torch.tensor([0.1**2, 0.9**2], dtype=torch.float64))


def test_focal_loss_argument_checks():
    x, y = torch.zeros(3, 2), torch.tensor([0, 1, 1])
    with pytest.raises(ValueError, match="gamma"):
        focal_loss(x, y, -1.0)
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        focal_loss(x, y[:2])
    with pytest.raises(TypeError, match="int64"):
        focal_loss(x, y.int())
    with pytest.raises(IndexError, match="out of bounds"):
        focal_loss(x, torch.tensor([0, 2, 1]))
    with pytest.raises(ValueError, match="alpha"):
        focal_loss(x, y, alpha=torch.ones(3))
    with pytest.raises(ValueError, match="alpha"):
        sigmoid_focal_loss(x, x, alpha=1.5)
    with pytest.raises(ValueError, match="shape"):
        sigmoid_focal_loss(x, x[:2])
    assert focal_loss(x.bfloat16(), y).dtype == torch.float32  # computed in fp32, like every loss here


@settings(deadline=None, max_examples=80)
@given(arrays=st.lists(hnp.arrays(np.float64, hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
                                  elements=st.floats(-5, 5)), max_size=4))
def test_penalties_are_sums_of_squares_and_absolute_values(arrays):
    params = [torch.tensor(a, requires_grad=True) for a in arrays]
    flat = np.concatenate([a.ravel() for a in arrays]) if arrays else np.zeros(0)
    l2, l1 = l2_penalty(params), l1_penalty(params)
    assert float(l2.detach()) == pytest.approx(float(np.dot(flat, flat)), rel=1e-12, abs=1e-12)
    assert float(l1.detach()) == pytest.approx(float(np.abs(flat).sum()), rel=1e-12, abs=1e-12)
    if params:
        (l2 + l1).backward()
        for p, a in zip(params, arrays):  # d/dw (w^2 + |w|) = 2w + sign(w)
            np.testing.assert_allclose(p.grad.numpy(), 2 * a + np.sign(a), rtol=1e-12)

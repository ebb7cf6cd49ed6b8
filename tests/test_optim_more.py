"""minift.optim's Adam and SGD against torch.optim.Adam / torch.optim.SGD step by step, the no-decay rule, and
coupled L2 (a penalty in the loss) against decoupled weight decay: different under Adam, the same under SGD."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from minift.losses import l1_penalty, l2_penalty
from minift.optim import OPTIMIZERS, SGD, Adam, AdamW, decayed_params, decays, param_groups
from tests.test_optim import make_params, step_side_by_side

TOL = {torch.float64: dict(rtol=1e-10, atol=1e-12), torch.float32: dict(rtol=2e-5, atol=1e-6)}


def run_side_by_side(opt, ours, ref_opt, ref, steps, dtype, state):
    start = [p.detach().clone() for p in ours]
    step_side_by_side(opt, ours, ref_opt, ref, lambda a, b: torch.testing.assert_close(a, b, **TOL[dtype]),
                      steps, state)
    assert any(not torch.equal(p, s) for p, s in zip(ours, start))  # it moved


def two_groups(params, **first):
    """The first two parameters with their own settings, the others with the optimizer's defaults."""
    return [{"params": params[:2], **first}, {"params": params[2:]}]


def adam_pair(dtype, lr, beta1, beta2, eps, wd, wd_first):
    ours, ref = make_params(dtype), make_params(dtype)
    kw = dict(lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=wd)
    return ours, Adam(two_groups(ours, weight_decay=wd_first), **kw), ref, \
        torch.optim.Adam(two_groups(ref, weight_decay=wd_first), **kw)


@settings(deadline=None, max_examples=40)
@given(lr=st.floats(1e-4, 0.3), beta1=st.sampled_from([0.0, 0.5, 0.9]) | st.floats(0.0, 0.99),
       beta2=st.sampled_from([0.0, 0.999]) | st.floats(0.0, 0.9999), eps=st.sampled_from([1e-8, 1e-3]),
       wd=st.just(0.0) | st.floats(0.0, 2.0), wd_first=st.floats(0.0, 1.0), steps=st.integers(1, 8))
def test_adam_matches_torch_step_by_step(lr, beta1, beta2, eps, wd, wd_first, steps):
    """In float64. (torch orders the same arithmetic differently: lr / (1 - beta1^t) * m / (sqrt(v) /
    sqrt(1 - beta2^t) + eps), with m updated by lerp; in float32 that rounding is amplified where g + wd * p
    nearly cancels and beta2 is small, so float32 is checked at the usual settings below.)"""
    ours, opt, ref, ref_opt = adam_pair(torch.float64, lr, beta1, beta2, eps, wd, wd_first)
    run_side_by_side(opt, ours, ref_opt, ref, steps, torch.float64, ("exp_avg", "exp_avg_sq"))


@pytest.mark.parametrize("wd", [0.0, 0.01, 0.1])
def test_adam_matches_torch_in_float32(wd):
    ours, opt, ref, ref_opt = adam_pair(torch.float32, 1e-3, 0.9, 0.999, 1e-8, wd, 0.05)
    run_side_by_side(opt, ours, ref_opt, ref, 12, torch.float32, ("exp_avg", "exp_avg_sq"))


@settings(deadline=None, max_examples=60)
@given(lr=st.floats(1e-4, 0.5), momentum=st.just(0.0) | st.floats(0.0, 0.99), dampening=st.floats(0.0, 0.9),
       nesterov=st.booleans(), wd=st.just(0.0) | st.floats(0.0, 1.0), lr_first=st.floats(1e-3, 0.2),
       steps=st.integers(1, 8), dtype=st.sampled_from([torch.float64, torch.float32]))
def test_sgd_matches_torch_step_by_step(lr, momentum, dampening, nesterov, wd, lr_first, steps, dtype):
    if nesterov:  # torch's rule too: Nesterov needs momentum and no dampening
        momentum, dampening = max(momentum, 0.1), 0.0
    ours, ref = make_params(dtype), make_params(dtype)
    kw = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=wd, nesterov=nesterov)
    opt = SGD(two_groups(ours, lr=lr_first), **kw)
    ref_opt = torch.optim.SGD(two_groups(ref, lr=lr_first), **kw)
    run_side_by_side(opt, ours, ref_opt, ref, steps, dtype, ("momentum_buffer",))
    assert all(("momentum_buffer" in opt.state[p]) == (momentum != 0) for p in ours[:3])  # 3 may have none


def test_adam_and_sgd_leave_the_gradient_alone_and_skip_parameters_without_one():
    w, frozen = torch.ones(3, requires_grad=True), torch.ones(2, requires_grad=True)
    for opt in (Adam([w, frozen], weight_decay=0.5), SGD([w, frozen], lr=0.1, momentum=0.9, weight_decay=0.5)):
        w.grad = torch.full((3,), 0.25)
        opt.step()
        assert torch.equal(w.grad, torch.full((3,), 0.25))  # the decay term is added to a copy
        assert torch.equal(frozen, torch.ones(2)) and frozen not in opt.state


def test_optimizer_argument_checks_and_closure():
    p = [torch.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError, match="Nesterov"):
        SGD(p, momentum=0.0, nesterov=True)
    with pytest.raises(ValueError, match="Nesterov"):
        SGD(p, momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(ValueError, match=">= 0"):
        SGD(p, lr=-1.0)
    with pytest.raises(ValueError, match="betas"):
        Adam(p, betas=(1.0, 0.9))

    def closure():
        p[0].grad = None
        loss = (p[0] - 1).pow(2).sum()
        loss.backward()
        return loss
    for opt in (Adam(p), SGD(p, lr=0.1)):
        assert opt.step(closure).item() >= 0 and p[0].grad is not None


def test_optimizers_table_names_each_class():
    assert OPTIMIZERS == {"adamw": AdamW, "adam": Adam, "sgd": SGD}
    model = nn.Linear(3, 2)
    for name, cls in OPTIMIZERS.items():  # each takes param_groups' output
        opt = cls(param_groups(model, lr=0.01, weight_decay=0.1))
        model(torch.ones(1, 3)).sum().backward()
        opt.step()
        torch.optim.Optimizer.load_state_dict(opt, opt.state_dict())


# ---------------------------------------------------------------------------------- the no-decay rule


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = nn.Embedding(5, 4)
        self.norm = nn.LayerNorm(4)
        self.dense = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)
        self.head.weight.requires_grad_(False)  # frozen: no penalty on it either


def test_decays_selects_matrices_and_param_groups_follow_it():
    model = Tiny()
    assert [decays(p) for p in (model.embeddings.weight, model.norm.weight, model.norm.bias, model.dense.weight,
                                model.dense.bias)] == [True, False, False, True, False]
    assert decayed_params(model) == [model.embeddings.weight, model.dense.weight]
    groups = param_groups(model, lr=1.0, weight_decay=0.1)
    decayed = [p for g in groups if g["weight_decay"] > 0 for p in g["params"]]
    assert decayed == decayed_params(model)
    assert l2_penalty(decayed_params(model)) == model.embeddings.weight.pow(2).sum() + model.dense.weight.pow(2).sum()
    assert l1_penalty(decayed_params(model)) > 0


# ------------------------------------------------------------------------- coupled vs decoupled decay


def train(make_opt, lam=0.0, steps=10, seed=0):
    """A least-squares problem trained with the loss + lam * sum(w^2); returns the final weights."""
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(32, 5, generator=g, dtype=torch.float64), torch.randn(32, generator=g, dtype=torch.float64)
    w = torch.randn(5, generator=g, dtype=torch.float64).requires_grad_()
    opt = make_opt([w])
    for _ in range(steps):
        opt.zero_grad()
        loss = ((x @ w - y) ** 2).mean() + lam * l2_penalty([w])
        loss.backward()
        opt.step()
    return w.detach()


@pytest.mark.parametrize("lam", [0.01, 0.3])
def test_l2_in_the_loss_is_weight_decay_2_lambda_under_adam_but_not_decoupled_decay(lam):
    lr = 0.05
    in_loss = train(lambda p: Adam(p, lr=lr), lam)
    coupled = train(lambda p: Adam(p, lr=lr, weight_decay=2 * lam))
    torch.testing.assert_close(in_loss, coupled, rtol=1e-9, atol=1e-12)
    for wd in (2 * lam, lam, 2 * lam / lr):  # no decoupled rate reproduces it, whatever the factor
        assert (train(lambda p: AdamW(p, lr=lr, weight_decay=wd)) - coupled).abs().max() > 1e-4


@pytest.mark.parametrize("lam", [0.01, 0.3])
def test_under_plain_sgd_l2_in_the_loss_weight_decay_2_lambda_and_decoupled_decay_coincide(lam):
    lr = 0.05
    in_loss = train(lambda p: SGD(p, lr=lr), lam)
    torch.testing.assert_close(in_loss, train(lambda p: SGD(p, lr=lr, weight_decay=2 * lam)), rtol=1e-9, atol=0)
    torch.testing.assert_close(in_loss, train(lambda p: torch.optim.SGD(p, lr=lr, weight_decay=2 * lam)),
                               rtol=1e-9, atol=0)

    class DecoupledSGD(SGD):  # p <- (1 - lr * wd) p, then the plain step: AdamW's decay with SGD's update
        def step(self, closure=None):
            with torch.no_grad():
                for p in self.param_groups[0]["params"]:
                    p.mul_(1 - lr * 2 * lam)
            return super().step(closure)
    torch.testing.assert_close(in_loss, train(lambda p: DecoupledSGD(p, lr=lr)), rtol=1e-9, atol=0)
    assert (in_loss - train(lambda p: SGD(p, lr=lr))).abs().max() > 1e-4  # the penalty does something

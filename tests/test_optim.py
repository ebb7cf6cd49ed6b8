"""minift.optim: AdamW against torch.optim.AdamW, parameter groups, schedules against transformers."""
import io
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from minift.optim import (
    SCHEDULES, AdamW, constant, cosine, exponential, is_head, layer_depth, linear, num_layers, param_groups, set_lr,
)

TOL = {torch.float64: dict(rtol=1e-12, atol=1e-12), torch.float32: dict(rtol=1e-6, atol=1e-6)}


# ---------------------------------------------------------------------------------------------- AdamW


def make_params(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(6, 4), (4,), (3, 5), (5,)]
    return [torch.randn(s, generator=g, dtype=dtype).requires_grad_() for s in shapes]


def grouped(params, weight_decay):
    """Three groups with their own lr / weight decay; the last one uses the optimizer defaults."""
    return [
        {"params": params[:2], "lr": 3e-2, "weight_decay": weight_decay},
        {"params": [params[2]], "lr": 1e-3, "weight_decay": 0.0, "betas": (0.8, 0.99)},
        {"params": [params[3]]},
    ]


def set_grads(params, seed, step):
    g = torch.Generator().manual_seed(1000 * seed + step)
    for i, p in enumerate(params):
        # parameter 3 has no gradient on every third step: both optimizers must skip it
        p.grad = None if (i == 3 and step % 3 == 0) else torch.randn(p.shape, generator=g, dtype=p.dtype)


def step_side_by_side(opt, ours, other, theirs, same, steps=12, tensors=("exp_avg", "exp_avg_sq")):
    """Give both parameter lists the same gradients and step both optimizers `steps` times; after every step
    `same(a, b)` checks each pair of parameters, and at the end each pair of states: the same keys, step counts
    and `tensors` (Adam's moments; SGD's "momentum_buffer")."""
    for step in range(steps):
        set_grads(ours, 0, step)
        set_grads(theirs, 0, step)
        opt.step()
        other.step()
        for p, q in zip(ours, theirs):
            same(p, q)
    for p, q in zip(ours, theirs):
        s, r = opt.state[p], other.state[q]
        assert set(s) == set(r)  # no state for a parameter that never had a gradient, on both sides
        if "step" in s:
            assert s["step"] == int(r["step"])
        for key in set(tensors) & set(s):
            same(s[key], r[key])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
@pytest.mark.parametrize("foreach", [False, True])
def test_adamw_matches_torch_step_by_step(dtype, weight_decay, foreach):
    """Both of minift's paths (foreach = the fast one) against both of torch's."""
    ours, ref = make_params(dtype), make_params(dtype)
    opt = AdamW(grouped(ours, weight_decay), lr=5e-3, weight_decay=weight_decay, foreach=foreach)
    ref_opt = torch.optim.AdamW(grouped(ref, weight_decay), lr=5e-3, weight_decay=weight_decay, foreach=foreach)
    start = [p.detach().clone() for p in ours]
    step_side_by_side(opt, ours, ref_opt, ref, lambda a, b: torch.testing.assert_close(a, b, **TOL[dtype]))
    assert all(not torch.equal(p, s) for p, s in zip(ours, start))  # the parameters did move


def assert_equal(a, b):
    assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_adamw_foreach_path_equals_the_reference_path(dtype):
    """The fast path (one _foreach kernel per line for all parameters) gives bitwise the reference path's
    parameters and moments, with a parameter that misses some steps (so step counts differ within a group)."""
    ours, fast = make_params(dtype), make_params(dtype)
    opt = AdamW(grouped(ours, 0.1), lr=5e-3, weight_decay=0.1, foreach=False)
    fast_opt = AdamW(grouped(fast, 0.1), lr=5e-3, weight_decay=0.1, foreach=True)
    step_side_by_side(opt, ours, fast_opt, fast, assert_equal)
    assert fast_opt.state[fast[3]]["step"] < fast_opt.state[fast[0]]["step"]  # the uneven case was exercised


@settings(max_examples=60, deadline=None)
@given(
    p0=st.floats(-10, 10), g=st.floats(-10, 10).filter(lambda x: abs(x) > 1e-6),
    lr=st.floats(1e-5, 1e-1), wd=st.floats(0, 0.5), eps=st.floats(1e-10, 1e-6),
)
def test_adamw_first_step_is_the_formula(p0, g, lr, wd, eps):
    # at t = 1 the bias corrections undo the zero start: m^ = g, v^ = g^2
    p = torch.tensor([p0], dtype=torch.float64, requires_grad=True)
    p.grad = torch.tensor([g], dtype=torch.float64)
    AdamW([p], lr=lr, weight_decay=wd, eps=eps).step()
    expected = p0 * (1 - lr * wd) - lr * g / (abs(g) + eps)
    assert math.isclose(p.item(), expected, rel_tol=1e-12, abs_tol=1e-12)


def test_adamw_state_dict_round_trips_through_torch_save():
    a, b = make_params(torch.float64), make_params(torch.float64)
    opt_a = AdamW(grouped(a, 0.05), lr=5e-3)
    for step in range(5):
        set_grads(a, 1, step)
        opt_a.step()
    buffer = io.BytesIO()
    torch.save(opt_a.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    with torch.no_grad():
        for p, q in zip(a, b):
            q.copy_(p)
    opt_b = AdamW(grouped(b, 0.3), lr=1.0)  # different hyper-parameters: the loaded ones must win
    opt_b.load_state_dict(saved)
    assert [g["lr"] for g in opt_b.param_groups] == [g["lr"] for g in opt_a.param_groups]
    assert opt_b.state[b[0]]["step"] == 5
    for step in range(5, 9):
        set_grads(a, 1, step)
        set_grads(b, 1, step)
        opt_a.step()
        opt_b.step()
    for p, q in zip(a, b):
        assert torch.equal(p, q)


def test_adamw_closure_and_argument_checks():
    p = torch.tensor([1.0, -2.0], requires_grad=True)
    opt = AdamW([p], lr=0.1)

    def closure():
        opt.zero_grad()
        loss = (p**2).sum()
        loss.backward()
        return loss

    assert opt.step(closure).item() == pytest.approx(5.0)
    assert opt.state[p]["step"] == 1 and p[0].item() < 1.0
    for bad in (dict(lr=-1.0), dict(betas=(1.0, 0.9)), dict(eps=0.0), dict(weight_decay=-0.1)):
        with pytest.raises(ValueError):
            AdamW([p], **bad)


# ---------------------------------------------------------------------------------------------- groups


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.attn = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)


class Encoder(nn.Module):
    def __init__(self, layers=3, d=8):
        super().__init__()
        self.embeddings = nn.ModuleDict({"word": nn.Embedding(20, d), "norm": nn.LayerNorm(d)})
        self.layers = nn.ModuleList(Block(d) for _ in range(layers))
        self.pooler = nn.Linear(d, d)


class Classifier(nn.Module):
    def __init__(self, layers=3):
        super().__init__()
        self.encoder = Encoder(layers)
        self.head = nn.ModuleDict({"out": nn.Linear(8, 2)})


def names_by_group(groups):
    return [sorted(g["param_names"]) for g in groups]


def test_param_groups_split_decay_and_skip_frozen():
    model = Classifier()
    model.encoder.pooler.bias.requires_grad_(False)
    groups = param_groups(model, lr=1e-3, weight_decay=0.01)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    seen = [n for g in groups for n in g["param_names"]]
    assert sorted(seen) == sorted(trainable) and len(seen) == len(set(seen))
    assert "encoder.pooler.bias" not in seen
    for g in groups:
        assert [trainable[n] for n in g["param_names"]] == g["params"]
        assert g["lr"] == g["initial_lr"] == 1e-3
        assert all((p.ndim >= 2) == (g["weight_decay"] == 0.01) for p in g["params"])
    no_decay = {n for g in groups if g["weight_decay"] == 0 for n in g["param_names"]}
    assert no_decay == {n for n in trainable if n.endswith("bias") or "norm" in n}
    assert len(groups) == 2


def test_layer_depth_and_num_layers_accept_bare_and_wrapped_names():
    names = [n for n, _ in Classifier(layers=3).named_parameters()]
    assert num_layers(names) == 3
    assert num_layers(["head.weight"]) == 0
    for prefix in ("", "encoder."):
        assert layer_depth(prefix + "embeddings.word.weight", 3) == 0
        assert layer_depth(prefix + "layers.0.attn.weight", 3) == 1
        assert layer_depth(prefix + "layers.2.norm.bias", 3) == 3
        assert layer_depth(prefix + "pooler.weight", 3) == 4
    assert layer_depth("head.out.weight", 3) == 4
    assert layer_depth("sublayers.1.weight", 3) == 4  # `layers.` must start a name component


@settings(max_examples=40, deadline=None)
@given(layers=st.integers(1, 12), decay=st.floats(0.5, 1.0), lr=st.floats(1e-6, 1e-2))
def test_layer_decay_lr_is_lr_times_decay_to_distance_from_top(layers, decay, lr):
    model = Classifier(layers)
    groups = param_groups(model, lr=lr, weight_decay=0.01, layer_decay=decay)
    lr_of = {n: g["lr"] for g in groups for n in g["param_names"]}
    assert all(g["initial_lr"] == g["lr"] for g in groups)
    assert math.isclose(lr_of["head.out.weight"], lr) and math.isclose(lr_of["encoder.pooler.bias"], lr)
    assert math.isclose(lr_of["encoder.embeddings.word.weight"], lr * decay ** (layers + 1))
    for i in range(layers):
        assert math.isclose(lr_of[f"encoder.layers.{i}.attn.weight"], lr * decay ** (layers - i))
        assert lr_of[f"encoder.layers.{i}.norm.weight"] == lr_of[f"encoder.layers.{i}.attn.weight"]
    # one decayed and one undecayed group per depth: embeddings, each layer, top
    assert len(groups) == 2 * (layers + 2)


def test_layer_decay_counts_frozen_layers():
    model = Classifier(layers=3)
    model.encoder.layers[2].requires_grad_(False)  # freezing the top layer must not renumber the rest
    lr_of = {n: g["lr"] for g in param_groups(model, 1.0, 0.0, layer_decay=0.5) for n in g["param_names"]}
    assert lr_of["encoder.layers.1.attn.weight"] == 0.5**2 and lr_of["head.out.bias"] == 1.0
    assert not any(".layers.2." in n for n in lr_of)


@settings(max_examples=40, deadline=None)
@given(layers=st.integers(1, 6), decay=st.one_of(st.none(), st.floats(0.5, 1.0)), lr=st.floats(1e-6, 1e-2),
       lr_head=st.floats(1e-6, 1e-1), factor=st.floats(0.0, 1.0))
def test_lr_head_changes_only_the_heads_rate_and_set_lr_keeps_every_ratio(layers, decay, lr, lr_head, factor):
    model = Classifier(layers)
    model.encoder.layers[0].requires_grad_(False)
    plain = {n: g for g in param_groups(model, lr, 0.01, decay) for n in g["param_names"]}
    groups = param_groups(model, lr, 0.01, decay, lr_head=lr_head)
    got = {n: g for g in groups for n in g["param_names"]}
    assert sorted(got) == sorted(plain)  # the same parameters, frozen ones still left out
    for name, g in got.items():
        assert g["lr"] == g["initial_lr"] == (lr_head if name.startswith("head.") else plain[name]["lr"])
        assert g["weight_decay"] == plain[name]["weight_decay"]  # the no-decay split holds in the head too
    assert {got["head.out.weight"]["weight_decay"], got["head.out.bias"]["weight_decay"]} == {0.01, 0.0}
    assert not any(n.startswith("head.") for g in groups if g["lr"] != lr_head for n in g["param_names"])
    opt = AdamW(groups, lr=lr)
    set_lr(opt, factor)  # the schedule scales each group by its own base rate
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([factor * g["initial_lr"] for g in groups])


def test_is_head_is_the_head_prefix_only():
    assert is_head("head.out.weight") and is_head("head.transform.bias")
    assert not is_head("encoder.layers.0.attn.weight") and not is_head("encoder.embeddings.word.weight")
    assert not is_head("lm_head.bias") and not is_head("encoder.head.weight")


def test_param_groups_drive_both_adamw_and_keep_names_in_state_dict():
    model = Classifier()
    groups = param_groups(model, lr=1e-3, weight_decay=0.01, layer_decay=0.8)
    opt = AdamW(groups)
    torch.optim.AdamW(param_groups(model, lr=1e-3, weight_decay=0.01, layer_decay=0.8))  # accepted as well
    x = model.encoder.embeddings["word"](torch.tensor([[1, 2, 3]]))
    for block in model.encoder.layers:
        x = block.norm(block.attn(x))
    model.head["out"](model.encoder.pooler(x)).sum().backward()
    opt.step()
    state = opt.state_dict()
    assert [g["param_names"] for g in state["param_groups"]] == [g["param_names"] for g in groups]
    assert [g["initial_lr"] for g in state["param_groups"]] == [g["lr"] for g in groups]
    assert all(s["step"] == 1 for s in state["state"].values())


# ---------------------------------------------------------------------------------------------- schedules

steps = st.integers(0, 400)
totals = st.integers(1, 400)
warmups = st.integers(0, 50)


@settings(max_examples=120, deadline=None)
@given(step=steps, total=totals, warmup=warmups)
def test_linear_and_cosine_match_transformers(step, total, warmup):
    transformers = pytest.importorskip("transformers")
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    lin = transformers.get_linear_schedule_with_warmup(opt, warmup, total).lr_lambdas[0]
    cos = transformers.get_cosine_schedule_with_warmup(opt, warmup, total).lr_lambdas[0]
    const = transformers.get_constant_schedule_with_warmup(opt, warmup).lr_lambdas[0]
    assert math.isclose(linear(step, total, warmup), lin(step), abs_tol=1e-12)
    assert math.isclose(constant(step, total, warmup), const(step), abs_tol=1e-12)
    if step <= total:  # past the end transformers' cosine climbs again; ours stays at 0
        assert math.isclose(cosine(step, total, warmup), cos(step), abs_tol=1e-12)
    elif total >= warmup:
        assert cosine(step, total, warmup) == 0.0


def test_set_lr_follows_transformers_scheduler_over_a_run():
    transformers = pytest.importorskip("transformers")
    ref_opt = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in (1e-3, 5e-4)])
    ref = transformers.get_linear_schedule_with_warmup(ref_opt, num_warmup_steps=3, num_training_steps=20)
    opt = AdamW([{"params": [torch.zeros(1, requires_grad=True)], "lr": lr} for lr in (1e-3, 5e-4)])
    for step in range(25):
        set_lr(opt, linear(step, 20, 3))
        assert [g["lr"] for g in opt.param_groups] == pytest.approx([g["lr"] for g in ref_opt.param_groups])
        ref_opt.step()
        ref.step()
    assert [g["initial_lr"] for g in opt.param_groups] == [1e-3, 5e-4]


@settings(max_examples=120, deadline=None)
@given(step=steps, total=totals, warmup=warmups, gamma=st.floats(0.5, 1.0))
def test_schedule_shapes(step, total, warmup, gamma):
    for name, fn in SCHEDULES.items():
        value = fn(step, total, warmup)
        assert 0.0 <= value <= 1.0, name
        if step < warmup:  # every schedule warms up linearly from 0
            assert math.isclose(value, step / warmup), name
    if step >= warmup:
        assert constant(step, total, warmup) == 1.0
        assert math.isclose(exponential(step, total, warmup, gamma), gamma ** (step - warmup))
        assert math.isclose(exponential(step + 1, total, warmup, gamma), gamma * exponential(step, total, warmup, gamma))
    if warmup <= step < total:
        span = total - warmup
        assert math.isclose(linear(step, total, warmup), 1 - (step - warmup) / span)
        assert linear(step + 1, total, warmup) <= linear(step, total, warmup)
        assert cosine(step + 1, total, warmup) <= cosine(step, total, warmup)
        # the half cosine is point-symmetric about its middle: f(W + x) + f(T - x) = 1
        mirror = total - (step - warmup)
        assert math.isclose(cosine(step, total, warmup) + cosine(mirror, total, warmup), 1.0, abs_tol=1e-12)
    if step >= total and total > warmup:
        assert linear(step, total, warmup) == 0.0 and cosine(step, total, warmup) == 0.0


def test_schedule_landmarks():
    assert linear(10, 110, 10) == 1.0 and linear(60, 110, 10) == 0.5 and linear(110, 110, 10) == 0.0
    assert cosine(10, 110, 10) == 1.0 and math.isclose(cosine(60, 110, 10), 0.5) and cosine(110, 110, 10) == 0.0
    assert constant(0, 100, 4) == 0.0 and constant(2, 100, 4) == 0.5 and constant(4, 100, 4) == 1.0
    assert exponential(12, 100, 2, gamma=0.5) == 0.5**10
    assert constant(0) == 1.0 and linear(0, 10) == 1.0


def test_set_lr_scales_each_group_base_and_adopts_a_missing_base():
    p, q = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
    opt = AdamW([{"params": [p], "lr": 2e-3, "initial_lr": 4e-3}, {"params": [q], "lr": 1e-3}])
    set_lr(opt, 0.5)
    assert [g["lr"] for g in opt.param_groups] == [2e-3, 5e-4]
    set_lr(opt, 0.25)  # always relative to the base, never compounding
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 2.5e-4]
    assert opt.param_groups[1]["initial_lr"] == 1e-3

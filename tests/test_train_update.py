"""The loop's one optimizer update (`step.update`), run directly on the tiny model and checked against an update
computed by hand: the mean cross-entropy of all the update's rows (torch's, on the concatenated logits), its
gradient by autograd, clipping by the formula, and AdamW's formula with each group's decay and the scheduled lr."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from minift import optim, precision, step
from minift.data import Example, LabelMap
from minift.encoder import Encoder
from minift.tasks.sentence import SentenceTask
from minift.tokenizer import Tokenizer
from tests.tiny import make_tiny_model

WORDS = ["good", "bad", "film", "plot", "was", "the"]
TEXTS = ["the film was good", "bad plot", "good", "the plot was bad bad bad", "film", "was the film good or bad"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = make_tiny_model(tmp_path_factory.mktemp("update"), WORDS, dropout=0.0)  # no randomness in forward
    task = SentenceTask("classification", Tokenizer.from_pretrained(folder), {"text": "text", "label": "label"},
                        max_length=16, labels=LabelMap(["neg", "pos"]))
    features = task.featurize([Example(t, label="pos" if "good" in t else "neg") for t in TEXTS])
    return folder, task, features


def fresh(folder, task):
    torch.manual_seed(0)
    return task.build_model(Encoder.from_pretrained(folder)).double()  # float64: compare to 1e-10, not to rounding


def by_hand(model, groups, batches, state, step, lr_scale, max_norm, betas=(0.9, 0.999), eps=1e-8):
    """One AdamW update of `model` in place, from the formulas; `groups` are (params, lr, weight decay)."""
    logits = torch.cat([model(b["input_ids"], b["attention_mask"], b["token_type_ids"]) for b in batches])
    loss = F.cross_entropy(logits, torch.cat([b["labels"] for b in batches]))  # the mean over every row
    model.zero_grad()
    loss.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    norm = math.sqrt(sum(float((p.grad ** 2).sum()) for p in params))
    clip = min(1.0, max_norm / (norm + 1e-6))
    with torch.no_grad():
        for ps, lr, wd in groups:
            lr = lr * lr_scale
            for p in ps:
                g = p.grad * clip
                m, v = state.setdefault(p, (torch.zeros_like(p), torch.zeros_like(p)))
                m, v = betas[0] * m + (1 - betas[0]) * g, betas[1] * v + (1 - betas[1]) * g * g
                state[p] = (m, v)
                m_hat, v_hat = m / (1 - betas[0] ** step), v / (1 - betas[1] ** step)
                p.copy_(p * (1 - lr * wd) - lr * m_hat / (v_hat.sqrt() + eps))
    return float(loss.detach()), norm


def test_update_equals_the_hand_computed_adamw_step(tiny):
    """Two updates (3 micro-batches of 2 rows, then one of 4; unequal padding): the second is clipped, both run
    at half the base lr. The loss, the norm before clipping, and every weight match the formulas."""
    folder, task, features = tiny
    model = fresh(folder, task)
    ref = copy.deepcopy(model)
    opt = optim.AdamW(optim.param_groups(model, lr=1e-2, weight_decay=0.1), lr=1e-2)
    scaler = precision.grad_scaler("fp32", torch.device("cpu"))
    name_of, ref_params = {p: n for n, p in model.named_parameters()}, dict(ref.named_parameters())
    groups = [([ref_params[name_of[p]] for p in g["params"]], g["lr"], g["weight_decay"]) for g in opt.param_groups]
    assert {wd for _, _, wd in groups} == {0.0, 0.1}  # biases and norms undecayed, the rest decayed
    state = {}
    for t, (size, rows, max_norm) in enumerate([(2, 6, 10.0), (4, 4, 0.05)], start=1):
        batches = list(task.batches(features[:rows], size))
        done = step.update(model, opt, scaler, batches, task.loss, torch.device("cpu"), lr_scale=0.5,
                            max_grad_norm=max_norm)
        loss, norm = by_hand(ref, groups, [next(task.batches(features[:rows], rows))], state, t, 0.5, max_norm)
        assert done.loss == pytest.approx(loss, rel=1e-6)  # summed in float32 by the loop
        assert done.grad_norm == pytest.approx(norm, rel=1e-9) and not done.skipped
        assert (norm > max_norm) == (t == 2)  # the second update is clipped
        for (name, p), q in zip(model.named_parameters(), ref.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-12, msg=name)
        assert all(p.grad is None for p in model.parameters())  # zeroed for the next update


def test_a_non_finite_loss_skips_the_update(tiny):
    folder, task, features = tiny
    model = fresh(folder, task)
    before = copy.deepcopy(model.state_dict())
    opt = optim.AdamW(model.parameters(), lr=1e-2)

    def nan_loss(m, batch):
        total, n = task.loss(m, batch)
        return total * float("nan"), n
    done = step.update(model, opt, precision.grad_scaler("fp32", torch.device("cpu")),
                        list(task.batches(features, 3)), nan_loss, torch.device("cpu"), lr_scale=1.0)
    assert done.skipped and done.bad and math.isnan(done.loss)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and not opt.state
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("l2,l1", [(0.5, 0.0), (0.0, 0.3), (0.2, 0.1)])
def test_penalties_are_added_once_per_update_whatever_the_micro_batches(tiny, l2, l1):
    """--l2 / --l1 through `update` with plain SGD (lr 1, no clipping): the step is the gradient of the mean
    cross-entropy of all rows plus λ₂·2w + λ₁·sign(w) on the decayed weights only, whether the 6 rows come as
    one batch or 3 micro-batches; the logged terms are λ₂Σw² and λ₁Σ|w| of the weights before the step."""
    from types import SimpleNamespace

    from minift import recipes
    folder, task, features = tiny
    penalty = recipes.penalty(SimpleNamespace(l2=l2, l1=l1))
    results = []
    for size in (6, 2):
        model = fresh(folder, task)
        ref = copy.deepcopy(model)
        opt = optim.SGD(model.parameters(), lr=1.0)
        done = step.update(model, opt, precision.grad_scaler("fp32", torch.device("cpu")),
                            list(task.batches(features, size)), task.loss, torch.device("cpu"), lr_scale=1.0,
                            penalty=penalty)
        logits = ref(*(next(task.batches(features, 6))[k] for k in ("input_ids", "attention_mask",
                                                                      "token_type_ids")))
        F.cross_entropy(logits, next(task.batches(features, 6))["labels"]).backward()
        decayed = [p.detach() for p in ref.parameters() if p.ndim >= 2]
        assert set(done.penalties) == {n for n, lam in (("l2_penalty", l2), ("l1_penalty", l1)) if lam}
        assert done.penalties.get("l2_penalty", 0) == pytest.approx(l2 * sum(float((p ** 2).sum()) for p in decayed))
        assert done.penalties.get("l1_penalty", 0) == pytest.approx(l1 * sum(float(p.abs().sum()) for p in decayed))
        with torch.no_grad():
            for (name, p), q in zip(model.named_parameters(), ref.parameters()):
                extra = 2 * l2 * q + l1 * q.sign() if q.ndim >= 2 else 0  # biases and LayerNorm: no penalty
                torch.testing.assert_close(p, q - (q.grad + extra), rtol=1e-9, atol=1e-12, msg=name)
        results.append(model.state_dict())
    assert all(torch.allclose(results[0][k], results[1][k], rtol=1e-10, atol=1e-12) for k in results[0])

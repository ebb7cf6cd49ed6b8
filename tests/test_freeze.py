"""minift.freeze: each spec leaves exactly the intended parameters trainable, frozen parameters survive a real
AdamW step (weight decay on) bit for bit, gradual unfreezing goes top down, counts and errors."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from minift.config import EncoderConfig
from minift.encoder import Encoder
from minift.freeze import apply_freeze, count_parameters, describe, gradual_unfreeze, parse_spec
from minift.optim import AdamW, param_groups

TINY = dict(vocab_size=50, hidden_size=16, num_layers=4, num_heads=2, intermediate_size=24, max_positions=32)


class TinyTask(nn.Module):
    """The shape of a task model: an encoder and a head (here a linear classifier on the pooled [CLS])."""

    def __init__(self, **overrides):
        super().__init__()
        self.encoder = Encoder(EncoderConfig(**{**TINY, **overrides}))
        self.head = nn.Linear(16, 3)

    def forward(self, ids, mask):
        hidden = self.encoder(ids, mask)  # (B, T, H)
        pooled = self.encoder.pool(hidden) if self.encoder.pooler is not None else hidden[:, 0]
        return self.head(pooled)  # (B, 3)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


torch.manual_seed(0)
MODEL = TinyTask()  # every apply_freeze starts from "all trainable", so tests may share it
ALL = {n for n, _ in MODEL.named_parameters()}
HEAD = {n for n in ALL if n.startswith("head.")}
EMB = {n for n in ALL if n.startswith("encoder.embeddings.")}
POOLER = {n for n in ALL if n.startswith("encoder.pooler.")}
ENCODER_BIASES = {n for n in ALL if n.startswith("encoder.") and n.endswith(".bias")}


def layer(*indices):
    return {n for n in ALL for i in indices if n.startswith(f"encoder.layers.{i}.")}


def trainable(model):
    return {n for n, p in model.named_parameters() if p.requires_grad}


EXPECTED = {
    "none": ALL,
    "embeddings": ALL - EMB,
    "encoder": HEAD,
    "layers:0-3": HEAD | EMB | POOLER,
    "layers:2": ALL - layer(2),
    "layers:0-1,3": ALL - layer(0, 1, 3),
    "bias-only": HEAD | ENCODER_BIASES,
}


def test_the_name_sets_are_what_the_encoder_has():
    assert len(EMB) == 5 and len(POOLER) == 2 and len(layer(0)) == 16 and len(HEAD) == 2
    assert ALL == HEAD | EMB | POOLER | layer(0, 1, 2, 3)
    # bias terms: embeddings' LayerNorm, 8 per layer (q, k, v, out, attn_norm, up, down, ffn_norm), pooler
    assert len(ENCODER_BIASES) == 1 + 8 * 4 + 1


@pytest.mark.parametrize("spec", list(EXPECTED))
def test_each_spec_leaves_exactly_the_intended_parameters_trainable(spec):
    assert apply_freeze(MODEL, spec) is MODEL
    assert trainable(MODEL) == EXPECTED[spec]


def test_specs_are_not_cumulative_and_ignore_space_and_case():
    MODEL.head.weight.requires_grad_(False)
    apply_freeze(MODEL, "bias-only")
    assert trainable(MODEL) == HEAD | ENCODER_BIASES  # the head always trains
    apply_freeze(MODEL, "encoder")
    apply_freeze(MODEL, "embeddings")
    assert trainable(MODEL) == ALL - EMB
    apply_freeze(MODEL, None)
    assert trainable(MODEL) == ALL
    apply_freeze(MODEL, " Layers: 0 - 1 , 3 ")
    assert trainable(MODEL) == ALL - layer(0, 1, 3)
    assert parse_spec("BIAS-ONLY") == ("bias-only", frozenset())
    assert parse_spec("layers:0-1,4") == ("layers", {0, 1, 4})  # no model, no range check
    assert parse_spec("layers:3,1-2,2", num_layers=4) == ("layers", {1, 2, 3})


ranges = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)).map(sorted), min_size=1, max_size=4)


def render(items):
    """[(0, 1), (3, 3), (2, 2)] -> "layers:0-1,3,2-2": a single layer written both ways (odd i as "i")."""
    return "layers:" + ",".join(str(a) if a == b and b % 2 else f"{a}-{b}" for a, b in items)


@settings(max_examples=60, deadline=None)
@given(items=ranges)
def test_layers_specs_freeze_the_union_of_their_ranges(items):
    frozen = {i for a, b in items for i in range(a, b + 1)}
    assert parse_spec(render(items), num_layers=4) == ("layers", frozen)
    apply_freeze(MODEL, render(items))
    assert trainable(MODEL) == ALL - layer(*frozen)


@settings(max_examples=30, deadline=None)
@given(items=ranges, beyond=st.integers(4, 40))
def test_a_layer_beyond_the_model_names_the_number_of_layers(items, beyond):
    spec = render(items + [(min(items[0]), beyond)])
    with pytest.raises(ValueError, match=rf"there is no layer {beyond}; the encoder has 4 layers, numbered 0-3"):
        apply_freeze(MODEL, spec)


@pytest.mark.parametrize("bad", ["", "all", "layers", "layers:", "layers:a", "layers:1-", "layers:-1",
                                 "layers:0-3;", "layer:0", "bias_only", "layers:0,,1", "embeddings,encoder"])
def test_a_bad_spec_lists_the_valid_forms_and_leaves_the_model_alone(bad):
    apply_freeze(MODEL, "encoder")
    with pytest.raises(ValueError) as err:
        apply_freeze(MODEL, bad)
    assert str(err.value) == (f"freeze spec {bad!r} not understood; valid forms: none, embeddings, encoder, "
                              "bias-only, or layers:I, layers:I-J, layers:I-J,K (0-based, ranges inclusive)")
    assert trainable(MODEL) == HEAD


def test_a_backward_range_says_how_to_write_it():
    with pytest.raises(ValueError, match=r"'layers:0,3-1': the range 3-1 runs backwards; write 1-3"):
        apply_freeze(MODEL, "layers:0,3-1")


# ---------------------------------------------------------------------------------------------- one real step


def step(model, opt):
    """One forward, backward and AdamW step on a fixed batch; returns the names that got a gradient."""
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 50, (4, 7), generator=gen)
    mask = torch.ones(4, 7, dtype=torch.long)
    mask[0, 5:] = 0
    loss = nn.functional.cross_entropy(model(ids, mask), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    got_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    opt.step()
    opt.zero_grad()
    return got_grad


def changed_by_a_step(model, opt):
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    got_grad = step(model, opt)
    assert got_grad == trainable(model)  # frozen parameters get no gradient at all
    after = dict(model.named_parameters())
    # The key bias adds q·b to every score of a query, which softmax ignores: its gradient is 0 up to rounding,
    # so Adam may or may not move it. Everything else that trains must move.
    return {n for n in after if not torch.equal(before[n], after[n])}, {n for n in ALL if "attn.key.bias" in n}


@pytest.mark.parametrize("spec", list(EXPECTED))
@pytest.mark.parametrize("optimizer_first", [False, True], ids=["freeze-then-optimizer", "optimizer-then-freeze"])
def test_frozen_parameters_do_not_change_by_a_bit(spec, optimizer_first):
    torch.manual_seed(2)
    model = TinyTask()
    groups = lambda: param_groups(model, lr=1e-2, weight_decay=0.1, layer_decay=0.8)  # noqa: E731
    if optimizer_first:  # what train.py does: every parameter is in the optimizer, frozen ones have no grad
        opt = AdamW(groups())
        apply_freeze(model, spec)
    else:
        apply_freeze(model, spec)
        opt = AdamW(groups())
        assert {n for g in opt.param_groups for n in g["param_names"]} == EXPECTED[spec]
    changed, may_stay = changed_by_a_step(model, opt)
    assert changed <= EXPECTED[spec]
    assert EXPECTED[spec] - may_stay <= changed


# ---------------------------------------------------------------------------------------------- gradual unfreezing

GRADUAL = [HEAD | POOLER, HEAD | POOLER | layer(3), HEAD | POOLER | layer(2, 3), HEAD | POOLER | layer(1, 2, 3),
           ALL - EMB, ALL, ALL]


@pytest.mark.parametrize("epoch", range(len(GRADUAL)))
def test_gradual_unfreezing_goes_top_down_one_layer_per_epoch(epoch):
    assert gradual_unfreeze(MODEL, epoch) is MODEL
    assert trainable(MODEL) == GRADUAL[epoch]
    gradual_unfreeze(MODEL, epoch, spec="embeddings")  # what the spec freezes stays frozen
    assert trainable(MODEL) == GRADUAL[epoch] - EMB
    gradual_unfreeze(MODEL, epoch, spec="bias-only")
    assert trainable(MODEL) == GRADUAL[epoch] & EXPECTED["bias-only"]


def test_gradual_unfreezing_with_one_optimizer_across_epochs():
    torch.manual_seed(3)
    model = TinyTask()
    opt = AdamW(param_groups(model, lr=1e-2, weight_decay=0.1))  # built while everything trains
    for epoch in range(len(GRADUAL)):
        gradual_unfreeze(model, epoch)
        changed, may_stay = changed_by_a_step(model, opt)
        assert GRADUAL[epoch] - may_stay <= changed <= GRADUAL[epoch]
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        gradual_unfreeze(model, -1)


def test_an_encoder_without_pooler():
    model = TinyTask(model_type="distilbert", type_vocab_size=0, has_pooler=False)
    assert trainable(gradual_unfreeze(model, 0)) == HEAD
    no_token_types = EMB - {"encoder.embeddings.token_type.weight"}
    assert trainable(apply_freeze(model, "layers:1-3")) == HEAD | layer(0) | no_token_types


# ---------------------------------------------------------------------------------------------- counting


def test_count_parameters_and_describe():
    # embeddings 50·16 + 32·16 + 2·16 + 2·16 = 1376;
    # a layer 4·(16·16 + 16) + 2·16 + (16·24 + 24) + (24·16 + 16) + 2·16 = 1960;
    # pooler 16·16 + 16 = 272; head 16·3 + 3 = 51
    total = 1376 + 4 * 1960 + 272 + 51
    assert count_parameters(apply_freeze(MODEL, "none")) == (total, total) == (9539, 9539)
    assert describe(MODEL) == "trainable parameters: 9,539 of 9,539 (100.00%)"
    assert describe(apply_freeze(MODEL, "encoder")) == "trainable parameters: 51 of 9,539 (0.53%)"
    biases = 16 + 4 * (4 * 16 + 16 + 24 + 16 + 16) + 16
    assert count_parameters(apply_freeze(MODEL, "bias-only")) == (biases + 51, 9539)
    tied = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    tied[1].weight = tied[0].weight
    tied[0].bias.requires_grad_(False)
    assert count_parameters(tied) == (12, 15)  # the shared 3×3 weight counts once
    big = nn.Embedding(1000, 1000).requires_grad_(False)
    assert describe(big) == "trainable parameters: 0 of 1,000,000 (0.00%)"
    assert describe(nn.ReLU()) == "trainable parameters: 0 of 0 (0.00%)"

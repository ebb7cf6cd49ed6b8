"""benchmarks/lora_variants.py: the LoRA+ groups and the PiSSA start against PEFT's own, the norms variant, and the
wrapping of `optim.param_groups`."""
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

peft = pytest.importorskip("peft")
pytest.importorskip("transformers")  # PEFT's LoRA+ imports it

from minift import lora, optim, recipes  # noqa: E402
from minift.config import EncoderConfig  # noqa: E402
from minift.encoder import Encoder  # noqa: E402
from minift.tasks.sentence import SentenceModel  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
lora_variants = pytest.importorskip("lora_variants")

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def lora_model(targets="all", seed=0):
    """A tiny random SentenceModel (2 layers, hidden 16) with rank-2 adapters on `targets`, B made non-zero."""
    torch.manual_seed(seed)
    cfg = EncoderConfig(vocab_size=50, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=24,
                        max_positions=20, type_vocab_size=2, raw={"model_type": "bert"})
    model = lora.apply_lora(SentenceModel(Encoder(cfg), 3), r=2, alpha=4.0, targets=targets)
    for m in lora.lora_modules(model).values():
        nn.init.normal_(m.lora_B)
    return model


@settings(max_examples=20, deadline=None)
@given(lr=st.floats(1e-6, 1e-1), ratio=st.floats(1.0, 64.0), targets=st.sampled_from(["query,value", "all"]))
def test_loraplus_rates_are_peft_create_loraplus_optimizer(lr, ratio, targets):
    """Each lora_A / lora_B learns at the rate PEFT's LoRA+ optimizer gives it (lr, lr·ratio); nothing is lost."""
    from peft.optimizers import create_loraplus_optimizer
    model = lora_model(targets)
    ref = create_loraplus_optimizer(model, torch.optim.AdamW, lr=lr, loraplus_lr_ratio=ratio)
    ref_lr = {id(p): g["lr"] for g in ref.param_groups for p in g["params"]}
    groups = lora_variants.loraplus_groups(optim.param_groups(model, lr, 0.01, lr_head=1e-3), ratio)
    ours = {n: g["lr"] for g in groups for n in g["param_names"]}
    params = dict(model.named_parameters())
    adapters = [n for n in params if "lora_" in n]
    assert adapters and all(ours[n] == pytest.approx(ref_lr[id(params[n])], rel=1e-12) for n in adapters)
    assert all(ours[n] == 1e-3 for n in ours if n.startswith("head."))  # the head keeps its own rate
    assert sorted(ours) == sorted(n for n, p in params.items() if p.requires_grad)
    assert all(g["initial_lr"] == g["lr"] for g in groups)


def peft_pissa(linear: nn.Linear, r: int, alpha: float):
    """PEFT's PiSSA start of a copy of `linear` -> (A, B, W_res)."""
    model = nn.Sequential(OrderedDict(lin=nn.Linear(linear.in_features, linear.out_features)))
    model.lin.load_state_dict(linear.state_dict())
    config = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=["lin"], init_lora_weights="pissa")
    layer = peft.get_peft_model(model, config).base_model.model.lin
    return layer.lora_A["default"].weight, layer.lora_B["default"].weight, layer.base_layer.weight


@settings(max_examples=20, deadline=None)
@given(d_in=st.integers(2, 24), d_out=st.integers(2, 24), r=st.integers(1, 8), alpha=st.floats(0.5, 256.0),
       seed=st.integers(0, 2**16))
def test_pissa_init_is_peft_pissa_and_keeps_the_outputs(d_in, d_out, r, alpha, seed):
    """A, B and the residual base weight equal PEFT's init_lora_weights="pissa"; the layer's outputs do not move."""
    r = min(r, d_in, d_out)
    torch.manual_seed(seed)
    linear = nn.Linear(d_in, d_out)
    w = linear.weight.detach().clone()
    ref_a, ref_b, ref_w = peft_pissa(linear, r, alpha)
    module = lora.LoRALinear(linear, r, alpha)
    x = torch.randn(5, d_in)
    before = module(x).detach()
    lora_variants.pissa_init(module)
    torch.testing.assert_close(module.lora_A.data, ref_a.data, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(module.lora_B.data, ref_b.data, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(module.base.weight.data, ref_w.data, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(module(x).detach(), before, rtol=1e-4, atol=1e-5)
    if r < min(d_in, d_out):  # the residual has lost the top r directions: its top singular value is W's (r+1)-th
        top = torch.linalg.svdvals(module.base.weight.detach())[0]
        assert float(top) == pytest.approx(float(torch.linalg.svdvals(w)[r]), rel=1e-4, abs=1e-5)


def test_train_norms_unfreezes_layer_norms_and_biases_only():
    model = lora_model()
    lora_variants.train_norms(model)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    want = {n for n, p in model.named_parameters() if n.startswith("head.") or "lora_" in n or
            (n.startswith("encoder.layers.") and p.ndim == 1)}
    assert trainable == want
    assert any(".attn_norm." in n for n in trainable) and any(n.endswith("base.bias") for n in trainable)
    assert not any(n.startswith("encoder.embeddings.") for n in trainable)


def test_train_words_unfreezes_the_word_embeddings_only():
    model = lora_model()
    before = {n for n, p in model.named_parameters() if p.requires_grad}
    lora_variants.train_words(model)
    after = {n for n, p in model.named_parameters() if p.requires_grad}
    assert after - before == {"encoder.embeddings.word.weight"} and before <= after


def test_use_wraps_param_groups(monkeypatch):
    """After use(...), the optimizer recipes.make_optimizer builds has the variant; an unknown name exits."""
    monkeypatch.setattr(optim, "param_groups", optim.param_groups)  # restored after the test
    args = type("Args", (), dict(lr=1e-3, weight_decay=0.0, layer_decay=None, lr_head=None, optimizer="adamw"))
    lora_variants.use("loraplus:8")
    opt = recipes.make_optimizer(args, lora_model())
    rates = {n: g["lr"] for g in opt.param_groups for n in g["param_names"]}
    assert {r for n, r in rates.items() if n.endswith("lora_B")} == {8e-3}
    assert {r for n, r in rates.items() if not n.endswith("lora_B")} == {1e-3}
    for bad in ("loraplus", "pissa:2", "dora"):
        with pytest.raises(SystemExit, match="--variant"):
            lora_variants.use(bad)

"""minift.lora against its formula and against PEFT (the de-facto reference, a test-only oracle).

LoRALinear equals x (W + (α/r)·B·A)ᵀ + b and LoRAEmbedding (E + (α/r)·(B·A)ᵀ)[ids] on drawn shapes; a fresh LoRA
model equals its base bit for bit; merging changes outputs by rounding only and gives back a plain checkpoint;
gradients reach only A, B and the head; and on tiny random BERT (with a classification head), RoBERTa and
DistilBERT models, minift's forward and backward agree with PEFT's LoraModel (the adapter files:
tests/test_adapter.py)."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from minift import adapter, checkpoint, lora  # noqa: E402
from minift.config import EncoderConfig  # noqa: E402
from minift.encoder import Encoder  # noqa: E402
from minift.freeze import count_parameters  # noqa: E402
from minift.optim import AdamW, param_groups  # noqa: E402
from minift.tasks.sentence import SentenceModel  # noqa: E402
from minift.unilm import Seq2SeqLM  # noqa: E402

VOCAB, MAXPOS, LABELS = 101, 40, 3
TINY = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
            max_position_embeddings=MAXPOS)
# family -> (the transformers model, whether it carries a classification head that minift's SentenceModel
# computes alike). RoBERTa's and DistilBERT's classification heads are not one linear layer, so their encoders
# are compared bare.
FAMILIES = {
    "bert": lambda: transformers.BertForSequenceClassification(transformers.BertConfig(**TINY, num_labels=LABELS)),
    "roberta": lambda: transformers.RobertaModel(transformers.RobertaConfig(**{**TINY, "type_vocab_size": 1},
                                                                            pad_token_id=1)),
    "distilbert": lambda: transformers.DistilBertModel(transformers.DistilBertConfig(
        vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=48, max_position_embeddings=MAXPOS)),
}


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def base(request, tmp_path_factory):
    """(family, folder of a tiny random transformers model saved with save_pretrained)."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp(request.param)
    FAMILIES[request.param]().save_pretrained(folder)
    return request.param, folder


def load_hf(family, folder):
    cls = {"bert": transformers.BertForSequenceClassification, "roberta": transformers.RobertaModel,
           "distilbert": transformers.DistilBertModel}[family]
    return cls.from_pretrained(folder).eval()


def load_ours(family, folder):
    """The same weights in minift: a SentenceModel with the checkpoint's classifier (BERT), or a bare Encoder."""
    encoder = Encoder.from_pretrained(folder)
    if family != "bert":
        return encoder.eval()
    model = SentenceModel(encoder, LABELS)
    model.head.out.load_state_dict({k.removeprefix("classifier."): t for k, t in encoder.head_tensors.items()})
    return model.eval()


def head_names(family):
    return adapter.HEAD_NAMES if family == "bert" else {}


def batch(family, seed=0, B=3, T=11):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (B, T), generator=g)
    mask = torch.ones(B, T, dtype=torch.long)
    mask[1, 7:], mask[2, 4:] = 0, 0  # padding, so the packed fast path runs
    return ids.masked_fill(mask == 0, 1 if family == "roberta" else 0), mask


def out_hf(family, model, ids, mask):
    out = model(input_ids=ids, attention_mask=mask)
    return out.logits if family == "bert" else out.last_hidden_state * mask[..., None]


def out_ours(family, model, ids, mask):
    out = model(ids, mask)
    return out if family == "bert" else out * mask[..., None]  # padded positions mean nothing in either


def close(got, ref, rel):
    """|got - ref| <= rel · max|ref|: float32 rounding grows with the size of the numbers."""
    return (got - ref).abs().max() <= rel * ref.abs().max()


def randomise(model, seed=1):
    """Non-zero B (and a fresh A) in every adapted layer, so that the adapters change the outputs: (α/r)·B·A then
    has entries up to ~0.3, over ten times the N(0, 0.02) weights' (a larger update makes float32 rounding, not
    the formula, the limit of the merge comparison)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in lora.lora_modules(model).values():
            m.lora_A.copy_(torch.randn(m.lora_A.shape, generator=g) * 0.1)
            m.lora_B.copy_(torch.randn(m.lora_B.shape, generator=g) * 0.1)
    return model


def peft_lora_layers(peft_model):
    """Names (without PEFT's base_model.model.) of the modules PEFT put a LoRA adapter on."""
    return {n.removeprefix(adapter.PEFT_PREFIX) for n, m in peft_model.named_modules()
            if isinstance(m, peft.tuners.lora.LoraLayer)}


def hf_names(family, model):
    """Where transformers keeps each minift adapted layer, by minift's name table (tested in test_checkpoint)."""
    prefix = checkpoint.MODEL_PREFIX[family] if family == "bert" else ""
    return {name: prefix + checkpoint.rename(name + ".weight", family, reverse=True).removesuffix(".weight")
            for name in lora.lora_modules(model)}


# ---- LoRALinear: the formula ----
@settings(deadline=None, max_examples=60)
@given(d_in=st.integers(1, 12), d_out=st.integers(1, 12), r=st.integers(1, 16),
       alpha=st.one_of(st.sampled_from([0.0, 1.0]), st.floats(-64, 64)), lead=st.lists(st.integers(1, 3), max_size=3),
       p=st.sampled_from([0.0, 0.5]), bias=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_lora_linear_is_the_formula(d_in, d_out, r, alpha, lead, p, bias, seed):
    """forward = x (W + (α/r)·B·A)ᵀ + b (train mode: dropout on the adapter's input only); merge gives the same
    W' and unmerge gives W back. Catches a missing or inverted scale, swapped A/B, dropout on the base path."""
    g = torch.Generator().manual_seed(seed)
    base = nn.Linear(d_in, d_out, bias=bias).double()
    layer = lora.LoRALinear(base, r, alpha, p).train()
    with torch.no_grad():
        for t in (base.weight, layer.lora_A, layer.lora_B) + ((base.bias,) if bias else ()):
            t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float64))
    W, A, B, s = base.weight.detach().clone(), layer.lora_A.detach(), layer.lora_B.detach(), alpha / r
    b = base.bias.detach() if bias else torch.zeros(d_out, dtype=torch.float64)
    x = torch.randn(*lead, d_in, generator=g, dtype=torch.float64)
    torch.manual_seed(seed)
    got = layer(x)
    torch.manual_seed(seed)
    xd = F.dropout(x, p)  # the same mask: the base layer draws no random numbers
    assert torch.allclose(got, x @ W.T + b + s * (xd @ (B @ A).T), rtol=1e-10, atol=1e-10)
    layer.eval().merge()
    assert layer.merged and torch.allclose(base.weight, W + s * B @ A, rtol=1e-12, atol=1e-10)
    assert torch.allclose(layer(x), x @ (W + s * B @ A).T + b, rtol=1e-10, atol=1e-10)
    layer.merge()  # twice is once
    layer.unmerge()
    assert not layer.merged and torch.allclose(base.weight, W, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("d_in, d_out, r", [(32, 48, 8), (7, 3, 1)])
def test_lora_linear_initialisation(d_in, d_out, r):
    """A as nn.Linear(in, r) draws its weight (PEFT: kaiming_uniform_, a=√5), B zeros, the base frozen."""
    torch.manual_seed(5)
    oracle = nn.Linear(d_in, r, bias=False).weight
    base = nn.Linear(d_in, d_out)
    torch.manual_seed(5)
    layer = lora.LoRALinear(base, r, alpha=16)
    assert torch.equal(layer.lora_A, oracle) and layer.lora_A.shape == (r, d_in)
    assert torch.equal(layer.lora_B, torch.zeros(d_out, r))
    assert not any(p.requires_grad for p in base.parameters()) and layer.scaling == 16 / r
    with pytest.raises(ValueError, match="rank"):
        lora.LoRALinear(nn.Linear(4, 4), 0, 8)


# ---- LoRAEmbedding: the formula ----
@settings(deadline=None, max_examples=60)
@given(V=st.integers(1, 12), H=st.integers(1, 8), r=st.integers(1, 6),
       alpha=st.one_of(st.sampled_from([0.0, 1.0]), st.floats(-64, 64)), pad=st.booleans(),
       shape=st.lists(st.integers(1, 4), min_size=0, max_size=3), seed=st.integers(0, 2**31 - 1))
def test_lora_embedding_is_the_formula(V, H, r, alpha, pad, shape, seed):
    """forward = (E + (α/r)·(B·A)ᵀ)[ids]: a row lookup in the updated table; merge writes that table, unmerge gives
    E back; the padding token's column of A gets no gradient (PEFT passes padding_idx). Catches a missing or
    inverted scale, B·A not transposed, A and B swapped, a padding row that trains."""
    g = torch.Generator().manual_seed(seed)
    base = nn.Embedding(V, H, padding_idx=V - 1 if pad else None).double()
    layer = lora.LoRAEmbedding(base, r, alpha)
    with torch.no_grad():
        for t in (base.weight, layer.lora_A, layer.lora_B):
            t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float64))
    E, A, B, s = base.weight.detach().clone(), layer.lora_A.detach().clone(), layer.lora_B.detach(), alpha / r
    ids = torch.randint(0, V, shape, generator=g)
    table = E + s * (B @ A).T  # (V, H)
    got = layer(ids)
    assert got.shape == (*shape, H) and torch.allclose(got, table[ids], rtol=1e-10, atol=1e-10)
    got.sum().backward()
    if pad:
        assert torch.equal(layer.lora_A.grad[:, V - 1], torch.zeros(r, dtype=torch.float64))
    layer.merge()
    assert layer.merged and torch.allclose(base.weight, table, rtol=1e-12, atol=1e-10)
    assert torch.allclose(layer(ids), table[ids], rtol=1e-10, atol=1e-10)
    layer.unmerge()
    assert not layer.merged and torch.allclose(base.weight, E, rtol=1e-12, atol=1e-9)


def test_lora_embedding_initialisation():
    """As PEFT: A (r × V) zeros, B (H × r) drawn N(0, 1); the base frozen; scale α/r."""
    base = nn.Embedding(30, 6, padding_idx=0)
    torch.manual_seed(5)
    oracle = torch.randn(6, 4)
    torch.manual_seed(5)
    layer = lora.LoRAEmbedding(base, 4, alpha=2)
    assert torch.equal(layer.lora_A, torch.zeros(4, 30)) and torch.equal(layer.lora_B, oracle)
    assert not base.weight.requires_grad and layer.scaling == 0.5


# ---- applying, merging, what trains ----
@pytest.mark.parametrize("targets", ["query,value", "all,embeddings"])
def test_fresh_lora_model_equals_base_exactly(base, targets):
    """B = 0: every output is bit for bit the base model's, on the fast (stacked, packed) and reference paths."""
    family, folder = base
    ours = load_ours(family, folder)
    ids, mask = batch(family)
    with torch.no_grad():
        before = out_ours(family, ours, ids, mask)
        lora.apply_lora(ours, r=4, alpha=8, dropout=0.1, targets=targets)
        assert torch.equal(out_ours(family, ours, ids, mask), before)
        enc = lora._encoder(ours).use_reference_attention()
        ref = out_ours(family, ours, ids, mask)
        enc.use_reference_attention(False)
    assert (ref - before).abs().max() < 1e-5  # the two attention paths agree, as test_encoder proves


def test_merge_lora_gives_a_plain_checkpoint(base, tmp_path):
    """Merged outputs agree with the adapters' within 1e-6 (of the largest output); the state_dict has exactly the
    base model's keys, and transformers loads the saved encoder and computes the same outputs."""
    family, folder = base
    ours = randomise(lora.apply_lora(load_ours(family, folder), r=4, alpha=8, targets="all,embeddings"))
    ids, mask = batch(family)
    with torch.no_grad():
        adapted = out_ours(family, ours, ids, mask)
        for m in lora.lora_modules(ours).values():
            m.merge()
        assert close(out_ours(family, ours, ids, mask), adapted, 1e-6)
        for m in lora.lora_modules(ours).values():
            m.unmerge()
        assert close(out_ours(family, ours, ids, mask), adapted, 1e-6)
        merged = lora.merge_lora(ours)
        assert not lora.lora_modules(merged)
        assert merged.state_dict().keys() == load_ours(family, folder).state_dict().keys()
        assert close(out_ours(family, merged, ids, mask), adapted, 1e-6)
    encoder = lora._encoder(merged)
    encoder.save_pretrained(tmp_path)
    bare = {"bert": transformers.BertModel, "roberta": transformers.RobertaModel,
            "distilbert": transformers.DistilBertModel}[family]
    with torch.no_grad():
        hidden = bare.from_pretrained(tmp_path).eval()(input_ids=ids, attention_mask=mask).last_hidden_state
        assert ((hidden - encoder(ids, mask)) * mask[..., None]).abs().max() <= 1e-5


@pytest.mark.parametrize("words", [False, True], ids=["layers", "with-embeddings"])
def test_gradients_reach_only_adapters_and_head(base, words):
    """After apply_lora, backward fills the grads of A, B (of the chosen layers) and the head, nothing else; one
    AdamW step with weight decay leaves every other parameter bit for bit."""
    family, folder = base
    model = randomise(lora.apply_lora(load_ours(family, folder).train(), r=2, alpha=4, dropout=0.1,
                                      targets="key,output" + ",embeddings" * words))
    ids, mask = batch(family)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = AdamW(param_groups(model, 1e-2, 0.1), lr=1e-2)
    out_ours(family, model, ids, mask).square().sum().backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    prefix = "encoder." if family == "bert" else ""
    adapters = {f"{prefix}layers.{i}.{path}.lora_{x}" for i in range(2) for path in ("attn.key", "ffn.down")
                for x in "AB"} | {f"{prefix}embeddings.word.lora_{x}" for x in "AB" if words}
    head = {"head.out.weight", "head.out.bias"} if family == "bert" else set()
    assert with_grad == adapters | head
    assert {n for n, p in model.named_parameters() if p.requires_grad} == adapters | head
    opt.step()
    for n, p in model.named_parameters():
        assert torch.equal(p, before[n]) == (n not in with_grad), n


def test_apply_lora_errors():
    encoder = Encoder(EncoderConfig(vocab_size=20, hidden_size=8, num_layers=1, num_heads=2, intermediate_size=8,
                                    max_positions=8))
    with pytest.raises(ValueError, match="unknown attn.q.*choose from query, key, value, attention.output"):
        lora.apply_lora(encoder, targets="query,attn.q")
    with pytest.raises(ValueError, match="none given"):
        lora.parse_targets(" , ")
    assert lora.parse_targets("Value, query") == ("query", "value")  # order and case do not matter
    assert lora.parse_targets("embeddings,all") == (*lora.TARGETS, "embeddings")
    lora.apply_lora(encoder)
    with pytest.raises(ValueError, match="already has LoRA"):
        lora.apply_lora(encoder)


def test_a_tied_output_layer_refuses_the_embeddings_target():
    """The LM head scores against the word embeddings' table (tied): an adapter on that table would change the
    input side only until merged, so apply_lora refuses it, naming the module that shares it."""
    encoder = Encoder(EncoderConfig(vocab_size=20, hidden_size=8, num_layers=1, num_heads=2, intermediate_size=8,
                                    max_positions=8))
    model = Seq2SeqLM(encoder)
    with pytest.raises(ValueError, match="which this model's head.word shares"):
        lora.apply_lora(model, targets="query,embeddings")
    assert not lora.lora_modules(model)
    lora.apply_lora(model, targets="query")  # the linear targets are fine


def test_settings_and_freezing_adapters_by_layer():
    """settings() reads back what apply_lora was given (None without LoRA); freeze_adapters("layers:1") freezes the
    A and B of layer 1 only, and leaves the rest of the encoder frozen and the head training; specs that leave no
    adapter to train are refused. Catches --freeze layers ignored, or resetting LoRA's own freezing."""
    model = SentenceModel(Encoder(EncoderConfig(vocab_size=20, hidden_size=8, num_layers=3, num_heads=2,
                                                intermediate_size=8, max_positions=8)), LABELS)
    assert lora.settings(model) is None
    lora.apply_lora(model, r=2, alpha=3.0, dropout=0.25, targets="output,key")
    assert lora.settings(model) == {"r": 2, "alpha": 3.0, "dropout": 0.25, "targets": ["key", "output"]}
    lora.freeze_adapters(model, "layers:1")
    trains = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trains == {f"encoder.layers.{i}.{path}.lora_{x}" for i in (0, 2) for path in ("attn.key", "ffn.down")
                      for x in "AB"} | {"head.out.weight", "head.out.bias"}
    lora.freeze_adapters(model, "embeddings")  # not cumulative: every adapter trains again
    assert count_parameters(model)[0] == 3 * 2 * (2 * 8 + 8 * 2) + LABELS * 8 + LABELS
    for spec, message in (("encoder", "leaves no LoRA adapter"), ("bias-only", "BitFit"),
                          ("layers:3", "no layer 3")):
        with pytest.raises(ValueError, match=message):
            lora.freeze_adapters(model, spec)
    words = lora.merge_lora(model) and lora.apply_lora(model, r=2, alpha=3.0, targets="value,embeddings",
                                                         embedding_r=3)
    assert lora.settings(words) == {"r": 2, "alpha": 3.0, "dropout": 0.0, "targets": ["value", "embeddings"],
                                    "embedding_r": 3, "embedding_alpha": 3}  # α: the rank, unless given
    lora.freeze_adapters(words, "embeddings")  # the word embeddings' adapter stays as it starts, B·A = 0
    assert {n for n, p in words.named_parameters() if "lora_" in n and p.requires_grad} == {
        f"encoder.layers.{i}.attn.value.lora_{x}" for i in range(3) for x in "AB"}
    lora.freeze_adapters(words, "layers:0-2")
    assert {n for n, p in words.named_parameters() if "lora_" in n and p.requires_grad} == {
        "encoder.embeddings.word.lora_A", "encoder.embeddings.word.lora_B"}


# ---- PEFT: the same computation, the same files ----
def peft_model(family, folder, targets):
    """PEFT's LoraModel on the transformers model, adapting the layers minift adapted for `targets` (the word
    embeddings at their own rank 2 and α 3: PEFT's rank_pattern and alpha_pattern)."""
    ours = lora.apply_lora(load_ours(family, folder), r=4, alpha=8, targets=targets, embedding_r=2, embedding_alpha=3)
    config = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, task_type="SEQ_CLS" if family == "bert" else None,
                             target_modules=adapter.peft_target_modules(lora._encoder(ours)),
                             **({"rank_pattern": {"word_embeddings": 2}, "alpha_pattern": {"word_embeddings": 3}}
                                if "embeddings" in targets else {}))
    theirs = peft.get_peft_model(load_hf(family, folder), config).eval()
    assert peft_lora_layers(theirs) == set(hf_names(family, ours).values())  # the same layers, no more
    return randomise(ours), theirs


def peft_factors(layer):
    """PEFT's A and B of one adapted layer: lora_embedding_A / _B (parameters) or lora_A / lora_B (nn.Linear)."""
    if "default" in getattr(layer, "lora_embedding_A", {}):
        return layer.lora_embedding_A["default"], layer.lora_embedding_B["default"]
    return layer.lora_A["default"].weight, layer.lora_B["default"].weight


@pytest.mark.parametrize("targets", ["query,value", "output", "all,embeddings"])
def test_forward_and_backward_equal_peft(base, targets):
    """With the same A and B, PEFT's logits (hidden states) and gradients of A, B and the head equal minift's."""
    family, folder = base
    ours, theirs = peft_model(family, folder, targets)
    names = hf_names(family, ours)
    with torch.no_grad():
        for name, m in lora.lora_modules(ours).items():
            a, b = peft_factors(theirs.base_model.model.get_submodule(names[name]))
            a.copy_(m.lora_A)
            b.copy_(m.lora_B)
    ids, mask = batch(family, seed=3)
    weights = torch.randn(out_ours(family, ours, ids, mask).shape, generator=torch.Generator().manual_seed(4))
    got, ref = out_ours(family, ours, ids, mask), out_hf(family, theirs, ids, mask)
    assert (got - ref).abs().max() <= 1e-5
    (got * weights).sum().backward()
    (ref * weights).sum().backward()
    for name, m in lora.lora_modules(ours).items():
        a, b = peft_factors(theirs.base_model.model.get_submodule(names[name]))
        assert close(m.lora_A.grad, a.grad, 1e-5) and close(m.lora_B.grad, b.grad, 1e-5), name
    trainable, _ = count_parameters(ours)  # the count the training loop prints
    assert trainable == theirs.get_nb_trainable_parameters()[0]
    if family == "bert":
        assert close(ours.head.out.weight.grad, theirs.base_model.model.classifier.modules_to_save[
            "default"].weight.grad, 1e-5)

"""The encoder equals `transformers` on the real configurations of every family minift claims.

bert-base-uncased, roberta-base, distilbert-base-uncased and all-MiniLM-L6-v2 as their config.json files
give them (layer_norm_eps, activation, RoBERTa's position offset past pad_token_id = 1, vocabulary and
type-vocabulary sizes, max positions), written out below and scaled down in depth and width only (2 layers,
hidden 64: the per-layer arithmetic is the same at any width). EVERY parameter is random, LayerNorm weights
N(1, 0.1) and biases N(0, 0.1) included: with LayerNorms at their identity init, two swapped LayerNorms
compute the same thing. Batches are left- and right-padded and hold sentence pairs; eval mode, and train mode
with dropout on, where minift and transformers draw the same dropout masks from the same seed (same ops in
the same order on the padded batch: minift's packed CPU path draws fewer numbers, so `pack` is off there).
The real all-MiniLM-L6-v2 is compared in tests/test_checkpoint.py.
"""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

transformers = pytest.importorskip("transformers")

from minift.encoder import Encoder  # noqa: E402

SMALL = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, intermediate_size=128)
CONFIGS = {  # the published config.json values; SMALL overrides depth and width only
    "bert-base-uncased": ("BertModel", dict(
        model_type="bert", vocab_size=30522, max_position_embeddings=512, type_vocab_size=2, hidden_act="gelu",
        layer_norm_eps=1e-12, pad_token_id=0, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
        num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072)),
    "roberta-base": ("RobertaModel", dict(
        model_type="roberta", vocab_size=50265, max_position_embeddings=514, type_vocab_size=1, hidden_act="gelu",
        layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2, hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1, num_hidden_layers=12, hidden_size=768, num_attention_heads=12,
        intermediate_size=3072)),
    "distilbert-base-uncased": ("DistilBertModel", dict(
        model_type="distilbert", vocab_size=30522, max_position_embeddings=512, activation="gelu", dim=768,
        n_layers=6, n_heads=12, hidden_dim=3072, dropout=0.1, attention_dropout=0.1, pad_token_id=0,
        sinusoidal_pos_embds=False)),
    "all-MiniLM-L6-v2": ("BertModel", dict(
        model_type="bert", vocab_size=30522, max_position_embeddings=512, type_vocab_size=2, hidden_act="gelu",
        layer_norm_eps=1e-12, pad_token_id=0, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
        num_hidden_layers=6, hidden_size=384, num_attention_heads=12, intermediate_size=1536)),
}
DISTIL_SMALL = dict(n_layers=2, dim=64, n_heads=4, hidden_dim=128)


def hf_model(name):
    cls, cfg = CONFIGS[name]
    cfg = {**cfg, **(DISTIL_SMALL if cls == "DistilBertModel" else SMALL)}
    config = transformers.AutoConfig.for_model(**cfg)
    return getattr(transformers, cls)(config)


def randomise(model):
    """Every parameter random, LayerNorms too (weight near 1 so the scale stays sane)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            norm = "LayerNorm" in name or "layer_norm" in name
            if norm and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_((0.1 if norm else 0.05) * torch.randn(p.shape, generator=g))
    return model


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def pair(request, tmp_path_factory):
    """(name, pad id, takes token types, transformers model, minift encoder) with identical random weights."""
    hf = randomise(hf_model(request.param))
    folder = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(folder)
    ours = Encoder.from_pretrained(folder)
    assert ours.cfg.layer_norm_eps == hf.config.to_dict().get("layer_norm_eps", 1e-12)
    return request.param, hf.config.pad_token_id, ours.cfg.type_vocab_size > 1, hf, ours  # RoBERTa: 1 type


@st.composite
def batches(draw):
    """ids (B, T), mask (B, T), types (B, T): rows of different lengths padded on the left or the right, each
    row a pair [CLS] a [SEP] b [SEP] with the second segment typed 1 (where the model has token types)."""
    B, T = draw(st.integers(1, 4)), draw(st.integers(3, 24))
    lengths = [T] + draw(st.lists(st.integers(3, T), min_size=B - 1, max_size=B - 1))
    left = draw(st.booleans())
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    ids = torch.randint(5, 30000, (B, T), generator=g)
    mask = torch.zeros(B, T, dtype=torch.long)
    types = torch.zeros(B, T, dtype=torch.long)
    for b, n in enumerate(lengths):
        cut = draw(st.integers(1, n - 2))  # [CLS] a1..a(cut-1) [SEP] | b ... [SEP]
        real = slice(T - n, T) if left else slice(0, n)
        mask[b, real] = 1
        row_types = torch.zeros(n, dtype=torch.long)
        row_types[cut + 1:] = 1
        types[b, real] = row_types
        ids[b, real.start], ids[b, real.start + cut], ids[b, real.stop - 1] = 101, 102, 102
    return ids, mask, types


def run(pair, ids, mask, types, train=False, seed=0):
    name, pad, typed, hf, ours = pair
    ids = ids.masked_fill(mask == 0, pad)
    kwargs = dict(input_ids=ids, attention_mask=mask)
    if typed:
        kwargs["token_type_ids"] = types
    hf.train(train)
    ours.train(train)
    ours.pack = False if train else None  # the packed path draws dropout for the real tokens only
    with torch.no_grad():
        torch.manual_seed(seed)
        ref = hf(**kwargs).last_hidden_state
        torch.manual_seed(seed)
        got = ours(ids, mask, kwargs.get("token_type_ids"))
    return ref, got, mask.bool()


@settings(deadline=None, max_examples=12)
@given(batch=batches())
def test_eval_hidden_states_equal_transformers_on_real_configs(pair, batch):
    ref, got, real = run(pair, *batch)
    assert (ref[real] - got[real]).abs().max() <= 1e-4, pair[0]
    first = real[:, 0]  # rows whose position 0 is [CLS], not left padding
    if pair[4].pooler is not None and first.any():
        with torch.no_grad():
            assert (pair[3].pooler(ref)[first] - pair[4].pool(got)[first]).abs().max() <= 1e-4


@settings(deadline=None, max_examples=6)
@given(batch=batches(), seed=st.integers(0, 1000))
def test_train_mode_with_the_same_dropout_masks_equals_transformers(pair, batch, seed):
    ref, got, real = run(pair, *batch, train=True, seed=seed)
    ev, _, _ = run(pair, *batch)
    assert (ref[real] - ev[real]).abs().max() > 1e-2  # dropout was on: the check can see a mask that differs
    assert (ref[real] - got[real]).abs().max() <= 1e-4, pair[0]

"""The encoder equals `transformers` on tiny random BERT, RoBERTa and DistilBERT models, on drawn batches.

Both models run on `tests.conftest.DEVICE` (the CPU, or the GPU with MINIFT_TEST_DEVICE=cuda)."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

transformers = pytest.importorskip("transformers")

from minift.encoder import Encoder, additive_mask, attention_reference  # noqa: E402
from tests.conftest import DEVICE  # noqa: E402

VOCAB, MAXPOS = 101, 40
TINY = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48,
            max_position_embeddings=MAXPOS, type_vocab_size=2)
FAMILIES = {
    "bert": lambda: transformers.BertModel(transformers.BertConfig(**TINY, hidden_act="gelu")),
    "bert_gelu_new": lambda: transformers.BertModel(transformers.BertConfig(**TINY, hidden_act="gelu_new")),
    "roberta": lambda: transformers.RobertaModel(transformers.RobertaConfig(**{**TINY, "type_vocab_size": 1},
                                                                            pad_token_id=1)),
    "distilbert": lambda: transformers.DistilBertModel(transformers.DistilBertConfig(
        vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=48, max_position_embeddings=MAXPOS,
        activation="relu")),
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def pair(request, tmp_path_factory):
    """(family, transformers model, minift encoder) with identical random weights, via save_pretrained."""
    torch.manual_seed(0)
    hf = FAMILIES[request.param]().eval()
    folder = tmp_path_factory.mktemp(request.param)
    hf.save_pretrained(folder)
    return request.param, hf.to(DEVICE), Encoder.from_pretrained(folder).eval().to(DEVICE)


@st.composite
def batches(draw):
    """A batch of token ids with right padding, and segment ids for a sentence pair in each row."""
    B = draw(st.integers(1, 4))
    T = draw(st.integers(1, MAXPOS - 3))
    lengths = draw(st.lists(st.integers(1, T), min_size=B, max_size=B))
    lengths[0] = T  # the longest row sets T, as in a dynamically padded batch
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, VOCAB, (B, T), generator=g)
    mask = (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).long()
    types = torch.zeros(B, T, dtype=torch.long)
    for b, n in enumerate(lengths):
        types[b, draw(st.integers(0, n)):n] = 1  # second segment
    return ids, mask, types


def run_both(family, hf, ours, ids, mask, types):
    ids, mask, types = ids.to(DEVICE), mask.to(DEVICE), types.to(DEVICE)
    pad = 1 if family == "roberta" else 0
    ids = ids.masked_fill(mask == 0, pad)
    kwargs = {"input_ids": ids, "attention_mask": mask}
    if family.startswith("bert"):
        kwargs["token_type_ids"] = types
    with torch.no_grad():
        ref = hf(**kwargs)
        got = ours(ids, mask, kwargs.get("token_type_ids"))
    return ref, got


@settings(deadline=None, max_examples=25)
@given(batch=batches())
def test_hidden_states_equal_transformers(pair, batch):
    family, hf, ours = pair
    ref, got = run_both(family, hf, ours, *batch)
    mask = batch[1].bool().to(DEVICE)
    # Padded positions are garbage in both; only real tokens are compared.
    assert (ref.last_hidden_state[mask] - got[mask]).abs().max() <= 1e-5
    if ours.pooler is not None:
        assert (ref.pooler_output - ours.pool(got)).abs().max() <= 1e-5


@settings(deadline=None, max_examples=25)
@given(batch=batches())
def test_reference_attention_and_both_fast_paths_agree(pair, batch):
    """The formula path, the SDPA path on the padded batch, and the SDPA path that runs the per-token layers on
    the real tokens only (`pack`, the default) give the same real-token outputs."""
    _, _, ours = pair
    ids, mask = batch[0].to(DEVICE), batch[1].to(DEVICE)
    real = mask.bool()
    with torch.no_grad():
        ours.use_reference_attention(False).pack = True
        packed = ours(ids, mask)
        ours.pack = False
        padded = ours(ids, mask)
        ours.pack = None  # the default: by device
        slow = ours.use_reference_attention(True)(ids, mask)
    ours.use_reference_attention(False)
    assert (packed[real] - slow[real]).abs().max() <= 1e-5
    assert (packed[real] - padded[real]).abs().max() <= 1e-5


@settings(deadline=None, max_examples=60)
@given(B=st.integers(1, 3), heads=st.integers(1, 4), T=st.integers(1, 9), d=st.integers(1, 8),
       seed=st.integers(0, 1000), full=st.booleans())
def test_attention_paths_equal_with_padding_and_full_masks(B, heads, T, d, seed, full):
    """The two attention paths agree on (B, T) padding masks and (B, T, T) additive masks."""
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, heads, T, d, generator=g, dtype=torch.float64) for _ in range(3))
    if full:
        keep = torch.rand(B, T, T, generator=g) < 0.7
        keep |= torch.eye(T, dtype=torch.bool)  # every query sees at least itself
        mask = additive_mask(torch.zeros(B, T, T, dtype=torch.float64).masked_fill(~keep, float("-inf")),
                             torch.float64)
    else:
        keep = torch.ones(B, T, dtype=torch.long)
        keep[:, torch.randint(1, T + 1, (1,), generator=g).item():] = 0
        mask = additive_mask(keep, torch.float64)
    q, k, v, mask = (t.to(DEVICE) for t in (q, k, v, mask))
    fast = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(attention_reference(q, k, v, mask), fast, rtol=1e-10, atol=1e-10)


def test_full_mask_blocks_what_it_says():
    """With a (B, T, T) mask that hides key 2 from query 0, query 0's output does not depend on token 2."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 4, 3) for _ in range(3))
    blocked = torch.zeros(1, 4, 4)
    blocked[0, 0, 2] = float("-inf")
    mask = additive_mask(blocked, torch.float32)
    before = attention_reference(q, k, v, mask)
    v2 = v.clone()
    v2[:, :, 2] += 10.0
    after = attention_reference(q, k, v2, mask)
    assert torch.allclose(before[:, :, 0], after[:, :, 0])
    assert not torch.allclose(before[:, :, 1], after[:, :, 1])


def test_additive_mask_shapes_and_errors():
    m = additive_mask(torch.tensor([[1, 1, 0]]), torch.float32)
    assert m.shape == (1, 1, 1, 3) and m[0, 0, 0, 2] == torch.finfo(torch.float32).min and m[0, 0, 0, 0] == 0
    assert additive_mask(torch.zeros(2, 3, 3), torch.float32).shape == (2, 1, 3, 3)
    assert additive_mask(None, torch.float32) is None
    keep = torch.tensor([[[True, False], [True, True]]])  # a boolean (B, T, T) mask: True = may attend
    assert additive_mask(keep, torch.float32).tolist() == [[[[0.0, torch.finfo(torch.float32).min], [0.0, 0.0]]]]
    with pytest.raises(ValueError, match=r"\(B, T\) or \(B, T, T\)"):
        additive_mask(torch.zeros(3), torch.float32)


def test_too_long_input_says_truncate(pair):
    _, _, ours = pair
    with pytest.raises(ValueError, match="truncate"):
        ours(torch.full((1, MAXPOS + 5), 5, device=DEVICE))


def test_gradients_match_transformers(pair):
    """Backward through both models (eval mode: no dropout) gives the same gradient on every parameter."""
    family, hf, ours = pair
    torch.manual_seed(1)
    mask = torch.tensor([[1] * 7, [1] * 4 + [0] * 3])
    ids = torch.randint(3, VOCAB, (2, 7)).masked_fill(mask == 0, 1 if family == "roberta" else 0)
    probe = torch.randn(2, 7, 32).to(DEVICE)
    ids, mask = ids.to(DEVICE), mask.to(DEVICE)  # a random linear read-out, so the loss is not LayerNorm-invariant
    hf.zero_grad()
    ours.zero_grad()
    ((hf(input_ids=ids, attention_mask=mask).last_hidden_state * probe)[mask.bool()].sum()).backward()
    ((ours(ids, mask) * probe)[mask.bool()].sum()).backward()
    ref = {k: v.grad for k, v in hf.named_parameters() if v.grad is not None}
    ours_named = dict(ours.named_parameters())
    from minift.checkpoint import rename
    compared = 0
    for name, g in ref.items():
        mine = ours_named[rename(name, "distilbert" if family == "distilbert" else "bert")].grad
        torch.testing.assert_close(mine, g, rtol=1e-4, atol=1e-5, msg=name)
        compared += 1
    assert compared >= 30
    hf.zero_grad()
    ours.zero_grad()


def test_roundtrip_save_pretrained_loads_in_transformers(pair, tmp_path):
    family, hf, ours = pair
    ours.save_pretrained(tmp_path)
    again = transformers.AutoModel.from_pretrained(tmp_path).eval().to(DEVICE)
    assert type(again) is type(hf)
    ids = torch.randint(3, VOCAB, (2, 9), device=DEVICE)
    mask = torch.tensor([[1] * 9, [1] * 5 + [0] * 4], device=DEVICE)
    ids = ids.masked_fill(mask == 0, 1 if family == "roberta" else 0)
    with torch.no_grad():
        assert torch.equal(again(input_ids=ids, attention_mask=mask).last_hidden_state,
                           hf(input_ids=ids, attention_mask=mask).last_hidden_state)


def test_max_tokens_is_the_longest_sequence_the_encoder_takes(pair):
    """cfg.max_tokens tokens go through (RoBERTa: max_positions - pad_id - 1, its positions start after pad);
    one more token is an error that says to truncate."""
    family, _, ours = pair
    n = ours.cfg.max_tokens
    assert n == (MAXPOS - 2 if family == "roberta" else MAXPOS)
    ids = torch.full((1, n), 5, device=DEVICE)
    assert ours(ids).shape == (1, n, 32)
    with pytest.raises(ValueError, match="truncate"):
        ours(torch.full((1, n + 1), 5, device=DEVICE))

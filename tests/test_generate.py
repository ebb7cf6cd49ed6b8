"""UniLM mask, causality, and decoding: cached = uncached, one beam = greedy, padded batches = one at a time."""
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minift.config import EncoderConfig
from minift.encoder import Encoder
from minift.generate import beam_search, generate, greedy
from minift.unilm import Seq2SeqLM, seq2seq_mask

PAD, CLS, SEP = 0, 2, 3


def tiny_lm(seed=0, vocab=40, hidden=32, layers=2, family="bert"):
    torch.manual_seed(seed)
    cfg = EncoderConfig(vocab_size=vocab, hidden_size=hidden, num_layers=layers, num_heads=4,
                        intermediate_size=2 * hidden, max_positions=64, type_vocab_size=2,
                        raw={"model_type": family})
    model = Seq2SeqLM(Encoder(cfg)).eval()
    with torch.no_grad():  # a head that is not near-uniform, so that scores differ clearly between tokens
        model.head.bias.normal_(0, 1.0)
    return model


def stopping_lm():
    """A random model whose [SEP] score is raised until its greedy outputs for SOURCES end after 2 to 9 tokens."""
    model = tiny_lm(seed=6)
    with torch.no_grad():
        model.head.bias[SEP] += 2.0
    return model


def random_sources(n, seed=0, lo=1, hi=9):
    rng = random.Random(seed)
    return [[CLS] + [rng.randrange(5, 40) for _ in range(rng.randint(lo, hi))] + [SEP] for _ in range(n)]


# ---- the mask ----
def test_mask_matches_the_drawing():
    drawn = torch.tensor([[1, 1, 1, 0, 0, 0],   # [CLS]  (S = 3: [CLS] s_1 [SEP]; m = 2; one pad)
                          [1, 1, 1, 0, 0, 0],   # s_1
                          [1, 1, 1, 0, 0, 0],   # [SEP]
                          [1, 1, 1, 1, 0, 0],   # t_1
                          [1, 1, 1, 1, 1, 0],   # t_2
                          [0, 0, 0, 0, 0, 1]],  # [PAD] sees only itself
                         dtype=torch.bool)
    got = seq2seq_mask(torch.tensor([3, 2]), torch.tensor([5, 4]), 6)
    assert torch.equal(got[0], drawn)
    second = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0],
                           [0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1]], dtype=torch.bool)  # S = 2, m = 2, two pads
    assert torch.equal(got[1], second)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(0, 6)), min_size=1, max_size=4), st.integers(0, 3))
def test_mask_equals_its_definition(rows, extra):
    S = torch.tensor([s for s, _ in rows])
    L = torch.tensor([s + m for s, m in rows])
    T = int(L.max()) + extra
    got = seq2seq_mask(S, L, T)
    for b, (s, m) in enumerate(rows):
        for i in range(T):
            for j in range(T):
                if i >= s + m:  # padding query
                    want = i == j
                elif i < s:  # source query: the whole source
                    want = j < s
                else:  # target query: the source and the target up to itself
                    want = j <= i
                assert bool(got[b, i, j]) == want, (b, i, j)


def packed(sources, targets):
    from minift.batching import pad_batch
    ids, real = pad_batch([s + t for s, t in zip(sources, targets)], PAD)
    types = pad_batch([[0] * len(s) + [1] * len(t) for s, t in zip(sources, targets)], 0)[0]
    return ids, real, types


def test_a_target_token_does_not_see_later_target_tokens():
    model = tiny_lm()
    src = random_sources(1, seed=1)[0]
    target = [7, 8, 9, 10, 11]
    ids, real, types = packed([src], [target])
    before = model(ids, real, types)
    changed = target[:2] + [20, 21, 22]  # change t_3 .. t_5
    after = model(*packed([src], [changed]))
    keep = len(src) + 2  # the source and t_1, t_2
    assert torch.allclose(before[0, :keep], after[0, :keep], atol=1e-6)
    assert not torch.allclose(before[0, keep:], after[0, keep:], atol=1e-3)
    source_only = model(*packed([src], [[]]))  # the source's outputs do not depend on the target at all
    assert torch.allclose(before[0, :len(src)], source_only[0, :len(src)], atol=1e-6)


# ---- the cache ----
@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_cached_step_logits_equal_the_full_forward_in_a_padded_batch(family):
    model = tiny_lm(seed=2, family=family)
    sources = random_sources(4, seed=2, lo=1, hi=7)
    assert len({len(s) for s in sources}) > 1  # different lengths: the cache holds padding between source and target
    from minift.batching import pad_batch
    ids, real = pad_batch(sources, PAD)
    logits, cache = model.start(ids, real)
    prefixes = [[] for _ in sources]
    rng = random.Random(0)
    for _ in range(5):
        full = model.prefix_logits(sources, prefixes, PAD)
        assert torch.allclose(logits, full, atol=1e-5)
        tokens = [rng.randrange(5, 40) for _ in sources]
        for p, t in zip(prefixes, tokens):
            p.append(t)
        logits, cache = model.step(torch.tensor(tokens), cache)


@pytest.mark.parametrize("beams", [1, 3])
def test_cached_and_uncached_decoding_give_identical_tokens_and_scores(beams):
    model, sources = stopping_lm(), random_sources(6, seed=6)  # rows end at different steps and leave the batch
    cached = generate(model, sources, SEP, PAD, beams=beams, max_new_tokens=10, cache=True)
    uncached = generate(model, sources, SEP, PAD, beams=beams, max_new_tokens=10, cache=False)
    assert [t for t, _ in cached] == [t for t, _ in uncached]
    assert [s for _, s in cached] == pytest.approx([s for _, s in uncached], abs=1e-4)
    assert len({len(t) for t, _ in cached}) > 1


def test_one_beam_is_greedy():
    model, sources = stopping_lm(), random_sources(6, seed=6)
    g = greedy(model, sources, SEP, PAD, max_new_tokens=12)
    b = beam_search(model, sources, SEP, PAD, beams=1, max_new_tokens=12)
    assert [t for t, _ in g] == [t for t, _ in b]
    assert [s for _, s in g] == pytest.approx([s for _, s in b], abs=1e-5)
    assert len({len(t) for t, _ in g}) > 1


@torch.no_grad()
def test_greedy_scores_are_the_sum_of_the_chosen_log_probabilities():
    model = tiny_lm(seed=5)
    src = random_sources(1, seed=5)[0]
    (tokens, score), = greedy(model, [src], SEP, PAD, max_new_tokens=4)
    total, prefix = 0.0, []
    for t in tokens + ([SEP] if len(tokens) < 4 else []):
        logp = model.prefix_logits([src], [prefix], PAD).log_softmax(-1)[0]
        assert int(logp.argmax()) == t
        total += float(logp[t])
        prefix = prefix + [t]
    assert score == pytest.approx(total, abs=1e-5)


@pytest.mark.parametrize("beams", [1, 4])
def test_a_batch_decodes_each_source_as_it_would_alone(beams):
    model, sources = stopping_lm(), random_sources(6, seed=6)
    together = generate(model, sources, SEP, PAD, beams=beams, max_new_tokens=8)
    alone = [generate(model, [s], SEP, PAD, beams=beams, max_new_tokens=8)[0] for s in sources]
    assert [t for t, _ in together] == [t for t, _ in alone]
    assert [s for _, s in together] == pytest.approx([s for _, s in alone], abs=1e-4)


def test_beam_search_finds_at_least_the_greedy_score_when_ranked_by_the_plain_sum():
    model, sources = stopping_lm(), random_sources(6, seed=6)
    g = greedy(model, sources, SEP, PAD, max_new_tokens=6)
    b = beam_search(model, sources, SEP, PAD, beams=4, length_penalty=0.0, max_new_tokens=6)
    for (_, gs), (_, bs) in zip(g, b):
        assert bs >= gs - 1e-5


def test_nothing_to_decode():
    assert generate(tiny_lm(), [], SEP, PAD, beams=3) == []


def test_decoding_stops_at_the_models_last_position():
    model = tiny_lm(seed=8)
    long_source = [CLS] + [9] * 58 + [SEP]  # 60 of the 64 positions
    (tokens, _), = greedy(model, [long_source], SEP, PAD, max_new_tokens=50)
    assert len(tokens) <= 4


def test_decoding_and_the_training_forward_run_under_bf16_autocast():
    """--precision bf16 casts the -inf mask to bf16: no row is ever fully masked, so nothing turns NaN."""
    model, sources = stopping_lm(), random_sources(6, seed=6)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        for beams in (1, 3):
            found = generate(model, sources, SEP, PAD, beams=beams, max_new_tokens=6)
            assert all(torch.isfinite(torch.tensor(s)) for _, s in found)
        hidden = model(*packed(sources, [[5, 6, 7]] * len(sources)))
    assert torch.isfinite(hidden).all()

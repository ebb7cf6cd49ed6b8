"""minift.augment: EDA's operations keep to the sentence's own words at the rates they state (hypothesis and
large samples against the binomial), labels are never changed, the same seed gives the same rows, no output
is empty, and token masking never touches special tokens."""
import math
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minift.augment import (OPERATIONS, augment, augment_text, mask_tokens, random_deletion, random_insertion,
                            random_swap)

WORDS = st.lists(st.sampled_from(["the", "film", "was", "not", "good", "at", "all", "!"]), max_size=12)
RATE = st.sampled_from([0.0, 0.1, 0.5, 1.0]) | st.floats(0.0, 1.0)


def within_binomial(count, n, p, sigmas=5.0):
    """count is a plausible Binomial(n, p) draw: within `sigmas` standard deviations of n p."""
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1e-9


def is_subsequence(short, long):
    it = iter(long)
    return all(any(w == v for v in it) for w in short)


@settings(deadline=None, max_examples=150)
@given(words=WORDS, p=RATE, seed=st.integers(0, 2**32 - 1))
def test_each_operation_uses_only_the_sentences_words(words, p, seed):
    rng = np.random.default_rng(seed)
    k = max(1, int(p * len(words))) if p > 0 else 0
    deleted = random_deletion(words, p, rng)
    assert is_subsequence(deleted, words) and (len(deleted) >= 1 or not words)
    swapped = random_swap(words, p, rng)
    assert Counter(swapped) == Counter(words)
    assert sum(a != b for a, b in zip(swapped, words)) <= 2 * k
    inserted = random_insertion(words, p, rng)
    assert len(inserted) == len(words) + (k if words else 0)
    assert is_subsequence(words, inserted) and set(inserted) == set(words)
    if p == 0:
        assert deleted == swapped == inserted == words


@pytest.mark.parametrize("p", [0.05, 0.3, 0.8])
def test_random_deletion_drops_a_fraction_p_of_the_words(p):
    words = [f"w{i}" for i in range(20000)]
    kept = random_deletion(words, p, np.random.default_rng(1))
    assert within_binomial(len(words) - len(kept), len(words), p)


def test_random_deletion_of_everything_keeps_one_word():
    words = ["a", "b", "c"]
    assert [len(random_deletion(words, 1.0, np.random.default_rng(s))) for s in range(5)] == [1] * 5


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_swap_and_insertion_make_int_p_l_changes(p):
    words = [f"w{i}" for i in range(400)]  # all distinct, so every change shows
    rng = np.random.default_rng(2)
    assert len(random_insertion(words, p, rng)) - len(words) == int(p * 400)
    moved = sum(a != b for a, b in zip(random_swap(words, p, rng), words))
    assert 0 < moved <= 2 * int(p * 400)


def test_augment_text_draws_each_operation_about_a_third_of_the_time():
    rng, text = np.random.default_rng(3), " ".join(f"w{i}" for i in range(10))
    kinds = Counter()
    for _ in range(3000):
        out = augment_text(text, 0.3, rng).split()
        kinds["insert" if len(out) > 10 else "delete" if len(out) < 10 else "swap"] += 1
    # a deletion that drops nothing (0.7^10 = 2.8%) looks like a swap
    assert within_binomial(kinds["insert"], 3000, 1 / 3)
    assert within_binomial(kinds["delete"] + kinds["swap"], 3000, 2 / 3)
    assert augment_text("   ", 0.5, rng) == "   " and len(OPERATIONS) == 3


ROWS = st.lists(st.tuples(st.text(st.sampled_from("ab c"), max_size=15),
                          st.one_of(st.integers(0, 3), st.lists(st.integers(0, 1), max_size=3), st.floats(0, 5))),
                max_size=8)


@settings(deadline=None, max_examples=100)
@given(rows=ROWS, p=RATE, n=st.integers(0, 3), seed=st.integers(0, 1000))
def test_augment_keeps_the_originals_first_and_every_label_untouched(rows, p, n, seed):
    texts, labels = [t for t, _ in rows], [label for _, label in rows]
    out_texts, out_labels = augment(texts, labels, p, n, seed)
    assert len(out_texts) == len(out_labels) == len(rows) * (n + 1)
    assert out_texts[:len(rows)] == texts
    expected = labels + [label for label in labels for _ in range(n)]
    assert all(a is b for a, b in zip(out_labels, expected))  # the very same label objects
    for j, text in enumerate(out_texts[len(rows):]):
        source = texts[j // n]
        assert bool(text.split()) == bool(source.split())  # never empty unless the source had no words
        assert set(text.split()) <= set(source.split())
    assert augment(texts, labels, p, n, seed) == (out_texts, out_labels)  # deterministic per seed


def test_augment_seeds_and_rows_are_independent():
    texts = [" ".join(f"w{i}" for i in range(12))] * 3
    a = augment(texts, [0, 1, 2], 0.3, 4, seed=0)[0]
    assert augment(texts, [0, 1, 2], 0.3, 4, seed=1)[0] != a
    assert augment(texts[:1], [0], 0.3, 4, seed=0)[0] == [a[0]] + a[3:7]  # row 0's copies ignore rows 1, 2


def test_augment_argument_checks():
    with pytest.raises(ValueError, match="labels"):
        augment(["a"], [], 0.1, 1)
    with pytest.raises(ValueError, match="rate"):
        augment(["a"], [0], 1.5, 1)
    with pytest.raises(ValueError, match="copies"):
        augment(["a"], [0], 0.1, -1)


# ------------------------------------------------------------------------------------------ mask_tokens


@settings(deadline=None, max_examples=100)
@given(data=st.data(), b=st.integers(1, 4), t=st.integers(1, 12), fraction=RATE, seed=st.integers(0, 1000))
def test_mask_tokens_never_masks_specials_and_changes_nothing_else(data, b, t, fraction, seed):
    ids = torch.tensor(data.draw(st.lists(st.lists(st.integers(5, 99), min_size=t, max_size=t), min_size=b,
                                          max_size=b)))
    special = torch.tensor(data.draw(st.lists(st.lists(st.booleans(), min_size=t, max_size=t), min_size=b,
                                              max_size=b)))
    before = ids.clone()
    out = mask_tokens(ids, special, 103, fraction, torch.Generator().manual_seed(seed))
    assert torch.equal(ids, before)  # a copy
    changed = out != ids
    assert not (changed & special).any()
    assert (out[changed] == 103).all()
    if fraction == 1.0:
        assert torch.equal(changed, ~special)
    if fraction == 0.0:
        assert not changed.any()
    assert torch.equal(out, mask_tokens(ids, special, 103, fraction, torch.Generator().manual_seed(seed)))


@pytest.mark.parametrize("fraction", [0.05, 0.15, 0.5])
def test_mask_tokens_masks_the_fraction_asked_of_the_eligible_pieces(fraction):
    ids = torch.randint(5, 1000, (64, 128), generator=torch.Generator().manual_seed(0))
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True          # [CLS] ... [SEP]
    special[:, 100:] = True                        # padding
    out = mask_tokens(ids, special, 103, fraction, torch.Generator().manual_seed(1))
    eligible = int((~special).sum())
    assert within_binomial(int((out == 103).sum()), eligible, fraction)


def test_mask_tokens_argument_checks():
    ids = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="fraction"):
        mask_tokens(ids, ids.bool(), 103, 1.5)
    with pytest.raises(ValueError, match="shape"):
        mask_tokens(ids, ids[:1].bool(), 103, 0.1)

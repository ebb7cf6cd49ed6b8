"""Data augmentation for text classification, for training rows only: EDA's word operations and token masking.

References:
- Wei & Zou, "EDA: Easy Data Augmentation Techniques for Boosting Performance on Text Classification Tasks",
  EMNLP 2019, section 2: random deletion, random swap and random insertion. EDA inserts a *synonym* of a word
  (from WordNet); with no external data, random insertion here inserts a copy of a word of the same sentence.
  EDA's fourth operation, synonym replacement, needs WordNet and is left out.
- Token masking: replace word pieces by [MASK], the corruption of BERT's masked language model (Devlin et al.
  2019, section 3.1), used here as input noise for the classifier; BERT itself also keeps 10% of the chosen
  pieces and swaps 10% for random ones, which this does not.

With rate p, on a sentence of L words (split on whitespace, joined back with one space):

    random deletion   each word is dropped with probability p (if all are, one random word stays)
    random swap       k times, two distinct random positions swap their words
    random insertion  k times, a random word of the sentence is inserted at a random position
                      k = max(1, int(p * L)) for p > 0 (EDA's alpha * L, at least one), 0 for p = 0

`augment` makes n copies of each row, each by one operation drawn at random, with a generator seeded by
(seed, row), so a row's copies do not depend on the other rows. Labels are copied, never changed.
"""
import numpy as np
import torch


def random_deletion(words, p, rng):
    """Drop each word with probability p; never returns an empty list for a non-empty input."""
    if not words:
        return []
    kept = [w for w, r in zip(words, rng.random(len(words))) if r >= p]
    return kept or [words[rng.integers(len(words))]]


def _changes(n_words, p):
    """k, the number of swaps or insertions: max(1, int(p * L)) for p > 0, else 0."""
    return max(1, int(p * n_words)) if p > 0 else 0


def random_swap(words, p, rng):
    """Swap the words at two distinct random positions, k times."""
    out = list(words)
    if len(out) < 2:
        return out
    for _ in range(_changes(len(words), p)):
        i, j = rng.choice(len(out), size=2, replace=False)
        out[i], out[j] = out[j], out[i]
    return out


def random_insertion(words, p, rng):
    """Insert a random word of the original sentence at a random position (the end included), k times."""
    out = list(words)
    if not words:
        return out
    for _ in range(_changes(len(words), p)):
        out.insert(rng.integers(len(out) + 1), words[rng.integers(len(words))])
    return out


OPERATIONS = {"delete": random_deletion, "swap": random_swap, "insert": random_insertion}


def augment_text(text, p, rng):
    """One augmented copy of `text`: one of the three operations, drawn uniformly, at rate p.
    A text without words comes back unchanged."""
    words = text.split()
    if not words:
        return text
    operation = list(OPERATIONS.values())[rng.integers(len(OPERATIONS))]
    return " ".join(operation(words, p, rng))


def augment(texts, labels, p=0.1, n=1, seed=0):
    """The training rows plus n augmented copies of each: (texts, labels), the originals first in their order,
    then row 0's n copies, row 1's, and so on; each copy keeps its row's label (the same object)."""
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"the augmentation rate p must lie in [0, 1], got {p}")
    if n < 0 or int(n) != n:
        raise ValueError(f"the number of copies n must be a whole number >= 0, got {n}")
    out_texts, out_labels = list(texts), list(labels)
    for i, (text, label) in enumerate(zip(texts, labels)):
        rng = np.random.default_rng([seed, i])
        out_texts += [augment_text(text, p, rng) for _ in range(int(n))]
        out_labels += [label] * int(n)
    return out_texts, out_labels


def mask_tokens(input_ids, special_mask, mask_id, fraction, generator=None):
    """A copy of `input_ids` (any shape, e.g. (B, T)) in which each position whose `special_mask` is False is
    replaced by `mask_id` with probability `fraction`. Mark [CLS], [SEP] and padding True in `special_mask`:
    they are never masked."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"the masking fraction must lie in [0, 1], got {fraction}")
    if special_mask.shape != input_ids.shape:
        raise ValueError(f"special_mask shape {tuple(special_mask.shape)} != input_ids {tuple(input_ids.shape)}")
    chosen = torch.rand(input_ids.shape, generator=generator, device=input_ids.device) < fraction
    return input_ids.masked_fill(chosen & ~special_mask.bool(), mask_id)

"""ROUGE-1/2/L/Lsum against rouge-score: precision, recall and F of all four types (spec section 9)."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.stem.porter import PorterStemmer
from rouge_score import rouge_scorer

from minift.metrics import rouge, rouge_l, rouge_lsum, rouge_n, rouge_score, rouge_tokenize

TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
SCORER = rouge_scorer.RougeScorer(TYPES, use_stemmer=False)
STEM_SCORER = rouge_scorer.RougeScorer(TYPES, use_stemmer=True)
WORDS = ["The", "cat", "a", "sat", "ON", "mat", "b", "x1", "é", "-", ".", ",", "\n", "\n\n", "don't", "U.S."]
text = st.lists(st.sampled_from(WORDS), max_size=14).map(" ".join)


def assert_same(ours: dict, ref: dict):
    for kind in TYPES:
        assert tuple(ours[kind]) == pytest.approx(tuple(ref[kind]), abs=1e-12), kind


@settings(deadline=None, max_examples=300)
@given(target=text, prediction=text)
def test_rouge_matches_rouge_score(target, prediction):
    assert_same(rouge_score(prediction, target), SCORER.score(target, prediction))


@settings(deadline=None, max_examples=60)
@given(targets=st.lists(text, min_size=1, max_size=3), prediction=text)
def test_rouge_multi_reference_matches_score_multi(targets, prediction):
    assert_same(rouge_score(prediction, targets), SCORER.score_multi(targets, prediction))


@settings(deadline=None, max_examples=60)
@given(target=st.lists(st.sampled_from(["cats", "running", "runs", "this", "was", "ponies", "cat", "\n"]),
                       max_size=10).map(" ".join), prediction=text)
def test_injected_porter_stemmer_matches_use_stemmer(target, prediction):
    ours = rouge_score(prediction, target, stem=PorterStemmer().stem)
    assert_same(ours, STEM_SCORER.score(target, prediction))


@pytest.mark.parametrize("target, prediction, expected", [
    ("the cat sat on the mat", "the cat is on the mat",
     {"rouge1": (5 / 6,) * 3, "rouge2": (.6,) * 3, "rougeL": (5 / 6,) * 3, "rougeLsum": (5 / 6,) * 3}),
    ("the the cat", "the the the the", {"rouge1": (.5, 2 / 3, 4 / 7), "rouge2": (1 / 3, .5, .4)}),
    ("cat", "cat", {"rouge1": (1.0,) * 3, "rouge2": (0.0,) * 3}),          # no bigrams on either side
    ("中文 测试", "中文 测试", {k: (0.0,) * 3 for k in TYPES}),           # non-Latin text has no tokens
    ("The CAT", "the cat", {k: (1.0,) * 3 for k in TYPES}),
    ("the cat", "", {k: (0.0,) * 3 for k in TYPES}),
    ("", "the cat", {k: (0.0,) * 3 for k in TYPES}),
    ("", "", {k: (0.0,) * 3 for k in TYPES}),
    ("!!", "?", {k: (0.0,) * 3 for k in TYPES}),
    ("a b\r\nc d\n\n\ne f", "a b\nc d\ne f", {k: (1.0,) * 3 for k in TYPES}),
])
def test_rouge_spec_examples(target, prediction, expected):
    ours = rouge_score(prediction, target)
    for kind, values in expected.items():
        assert tuple(ours[kind]) == pytest.approx(values, abs=1e-12)
    assert_same(ours, SCORER.score(target, prediction))


def test_rouge_lsum_sentence_handling():
    # sentence order does not matter in Lsum
    assert rouge_score("g i h\na c e.", "a b c d e f.\ng h i")["rougeL"].fmeasure == pytest.approx(0.4)
    assert rouge_lsum("g i h\na c e.", "a b c d e f.\ng h i").fmeasure == pytest.approx(2 / 3)
    # without newlines Lsum equals L (evaluate#501)
    one_line = rouge_score("a c b d", "a b c d e")
    assert one_line["rougeLsum"] == one_line["rougeL"]
    # Lsum is asymmetric
    assert rouge_lsum("a b c b", "a b c\nb c a").fmeasure == pytest.approx(0.8)
    assert rouge_lsum("a b c\nb c a", "a b c b").fmeasure == pytest.approx(0.6)
    # rouge-score's LCS tie-break (a "left on ties" backtrack would give 0.4)
    assert rouge_lsum("a b", "b b\nb c a c c a").fmeasure == pytest.approx(0.2)


def test_rouge_tokenizer_and_parts():
    assert rouge_tokenize("Café don't U.S.A. x_y") == ["caf", "don", "t", "u", "s", "a", "x", "y"]
    assert rouge_tokenize("ÀB Ç 中文") == ["b"]
    stem = PorterStemmer().stem
    assert rouge_tokenize("the cats are running was this", stem) == ["the", "cat", "are", "run", "was", "thi"]
    assert rouge_score("the cat is run", "the cats are running")["rouge1"].fmeasure == pytest.approx(0.25)
    assert rouge_score("the cat is run", "the cats are running", stem=stem)["rouge1"].fmeasure == pytest.approx(.75)
    assert tuple(rouge_n(["a", "b", "a"], ["a", "a"], 1)) == pytest.approx((2 / 3, 1.0, 0.8))
    assert tuple(rouge_l(["a", "x", "b"], ["a", "b"])) == pytest.approx((2 / 3, 1.0, 0.8))
    with pytest.raises(ValueError):
        rouge_score("a", "a", rouge_types=["rougeX"])


def test_corpus_rouge_is_the_mean_of_pairs():
    preds, refs = ["the cat sat", "a dog\nran home", ""], ["the cat sat down", "a dog ran\nhome", "x"]
    out = rouge(preds, refs)
    for kind in TYPES:
        pairs = [SCORER.score(r, p)[kind] for p, r in zip(preds, refs)]
        for k in range(3):
            assert out[kind][k] == pytest.approx(sum(s[k] for s in pairs) / 3, abs=1e-12)
    with pytest.raises(ValueError):
        rouge(["a"], [])
    with pytest.raises(TypeError):
        rouge("a", "a")

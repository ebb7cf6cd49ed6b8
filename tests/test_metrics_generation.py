"""BLEU and the 13a tokenizer against sacrebleu; the generation summary (spec section 8)."""
import math
from itertools import zip_longest

import pytest
import sacrebleu
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

from minift.metrics import bleu, bleu_from_stats, generation_summary, sentence_bleu, tokenize_13a

VOCAB = ["the", "cat", "a", "dog", "sat", "on", "mat", "."]
SMOOTHS = ["exp", "floor", "add-k", "none"]
SCORERS = {(s, e): BLEU(smooth_method=s, effective_order=e) for s in SMOOTHS for e in (False, True)}
TOKENIZE_13A = Tokenizer13a()

sent = st.lists(st.sampled_from(VOCAB), min_size=0, max_size=9).map(" ".join)


@st.composite
def mutated(draw, ref):
    """A copy of ``ref`` with 1-2 tokens deleted, inserted or replaced: long matches happen."""
    toks = ref.split()
    for _ in range(draw(st.integers(1, 2))):
        op, word = draw(st.sampled_from(["del", "ins", "rep"])), draw(st.sampled_from(VOCAB))
        i = draw(st.integers(0, len(toks)))
        if op == "ins" or not toks:
            toks.insert(i, word)
        elif op == "del":
            del toks[min(i, len(toks) - 1)]
        else:
            toks[min(i, len(toks) - 1)] = word
    return " ".join(toks)


@st.composite
def corpus(draw):
    """(hypotheses, references per hypothesis): 1-4 segments, 1-3 references each."""
    n = draw(st.integers(1, 4))
    refs = [draw(st.lists(sent, min_size=1, max_size=3)) for _ in range(n)]
    hyps = [draw(st.one_of(sent, mutated(r[0]))) for r in refs]
    return hyps, refs


def streams(per_hyp):
    """minift's per-hypothesis reference lists -> sacrebleu's reference streams (None-padded)."""
    return [list(s) for s in zip_longest(*per_hyp)]


def close(a, b):
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@settings(deadline=None, max_examples=250)
@given(data=corpus(), smooth=st.sampled_from(SMOOTHS), effective_order=st.booleans())
def test_corpus_bleu_matches_sacrebleu(data, smooth, effective_order):
    hyps, refs = data
    ref = SCORERS[smooth, effective_order].corpus_score(hyps, streams(refs))
    ours = bleu(hyps, refs, smooth=smooth, effective_order=effective_order)
    assert close(ours.score, ref.score)
    assert close(ours.bp, ref.bp) and (ours.sys_len, ours.ref_len) == (ref.sys_len, ref.ref_len)
    assert all(close(a, b) for a, b in zip(ours.precisions, ref.precisions))
    if smooth != "add-k":  # sacrebleu reports add-k counts already incremented by k
        assert (ours.counts, ours.totals) == (list(ref.counts), list(ref.totals))


@settings(deadline=None, max_examples=100)
@given(refs=st.lists(sent, min_size=1, max_size=3), data=st.data())
def test_sentence_bleu_matches_sacrebleu(refs, data):
    hyp = data.draw(st.one_of(sent, mutated(refs[-1])))
    assert close(sentence_bleu(hyp, refs).score, sacrebleu.sentence_bleu(hyp, refs).score)


@settings(deadline=None, max_examples=400)
@given(line=st.text(alphabet="ab1 2.,-'\"()&;/$%é\n\t", max_size=20) | st.text(max_size=15))
def test_tokenize_13a_matches_sacrebleu(line):
    assert tokenize_13a(line) == TOKENIZE_13A(line)


@pytest.mark.parametrize("line, expected", [
    ("Hello, world!", "Hello , world !"),
    ("3.5 and 1,000 items.", "3.5 and 1,000 items ."),
    ("U.S.A. is big.", "U . S . A . is big ."),
    ("x-ray 5-6 well-known", "x-ray 5 - 6 well-known"),
    ("don't", "don't"), ("-5", "-5"), ("5-", "5 -"), ("$100 50%", "$ 100 50 %"),
    ("hy-\nphen", "hyphen"), ("中文，测试。", "中文，测试。"),
    ("&quot;a&amp;b", None), ("1.5. 3,000 5-6 x-ray", None), ("hy-\nphen <skipped>", None), (".5", None),
])
def test_tokenize_13a_examples(line, expected):
    assert tokenize_13a(line) == (expected if expected is not None else TOKENIZE_13A(line))


def test_bleu_spec_examples():
    hyps = ["the cat sat on the mat", "a quick brown fox"]
    refs = [["the cat is on the mat"], ["a fast brown fox jumps"]]
    out = bleu(hyps, refs)
    assert out.score == pytest.approx(27.3385, abs=1e-4)
    assert (out.counts, out.totals) == ([8, 4, 1, 0], [10, 8, 6, 4])
    assert out.precisions[3] == 12.5 and out.bp == pytest.approx(0.9048, abs=1e-4)
    assert out.score == pytest.approx(sacrebleu.corpus_bleu(hyps, streams(refs)).score, rel=1e-9)
    # sentence BLEU uses effective order; corpus BLEU does not
    assert sentence_bleu("the cat", ["the cat sat on the mat"]).score == pytest.approx(100 * math.exp(-2), rel=1e-9)
    assert bleu(["the cat"], [["the cat sat on the mat"]]).score == 0.0
    expected = {"exp": 14.0585, "floor": 7.0711, "add-k": 31.6228, "none": 0.0}
    for smooth, value in expected.items():
        assert bleu(["a b c d e"], [["a x c y e"]], smooth=smooth).score == pytest.approx(value, abs=1e-4)
    assert sentence_bleu("a b c d e", ["a x c y e"], smooth="none").score == 0.0


def test_bleu_edge_cases():
    assert bleu(["yes"], [["no"]]).score == 0.0                # no match at all: early exit (sacrebleu#141)
    empty_hyp = bleu([""], [["a b c"]])
    assert (empty_hyp.score, empty_hyp.bp) == (0.0, 0.0)
    empty_ref = bleu(["a b c"], [[""]])
    assert (empty_ref.score, empty_ref.bp) == (0.0, 1.0)
    assert bleu([""], [[""]]).score == 0.0
    same = bleu(["the cat sat on the mat"], [["the cat sat on the mat"]]).score
    assert same == pytest.approx(100.0, rel=1e-12)             # sacrebleu gives 100.00000000000004
    # closest reference length, ties to the shorter: hyp 6 tokens, refs 5 and 7 -> 5
    assert bleu(["a b c d e f"], [["a b c d e", "a b c d e f g"]]).ref_len == 5
    # clipping uses the maximum count over the references
    assert bleu(["the the the"], [["the cat", "the the dog"]]).counts[0] == 2
    upper = ["The Cat sat on the mat"]
    assert bleu(upper, [["the cat sat on the mat"]], lowercase=True).score == pytest.approx(100.0)
    assert bleu(upper, [["the cat sat on the mat"]]).score == pytest.approx(50.81, abs=1e-2)
    assert bleu(["Hello, world!"], [["Hello , world !"]], tokenize=False).score == 0.0
    assert bleu(["Hello, world!"], [["Hello , world !"]]).score == pytest.approx(100.0)
    hyphen = ["a b c d-\n"]                                    # the line is right-stripped first
    assert bleu(hyphen, [["a b c d -"]]).score == pytest.approx(sacrebleu.corpus_bleu(hyphen, [["a b c d -"]]).score)
    add_k = bleu_from_stats([5, 3, 2, 1], [6, 5, 4, 3], 6, 6, smooth="add-k")
    assert add_k.counts == [5, 3, 2, 1]                        # raw counts, unlike sacrebleu's .counts


def test_bleu_rejects_ambiguous_input():
    with pytest.raises(TypeError):
        bleu("a b c", [["a b c"]])                             # sacrebleu would score characters
    with pytest.raises(TypeError):
        bleu(["a b c d"], ["a b c d"])                         # flat references: sacrebleu silently 15.97
    with pytest.raises(ValueError):
        bleu(["a", "b"], [["a"]])                              # sacrebleu silently drops the 2nd hypothesis
    with pytest.raises(ValueError):
        bleu([], [])
    with pytest.raises(TypeError):
        sentence_bleu("a b", "a b")                            # a bare string as the reference list
    with pytest.raises(ValueError):
        bleu(["a"], [["a"]], smooth="laplace")


def test_generation_summary_matches_references():
    hyps = ["the cat sat on the mat", "a quick brown fox", "nothing here"]
    refs = [["the cat is on the mat", "a cat sat on a mat"], ["a fast brown fox jumps"], ["something else"]]
    out = generation_summary(hyps, refs)
    assert set(out) == {"bleu", "rouge1", "rouge2", "rougeL", "rougeLsum"}
    assert out["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, streams(refs)).score, rel=1e-9)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"])
    per_pair = [scorer.score_multi(r, h) for h, r in zip(hyps, refs)]
    for kind in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        expected = 100 * sum(s[kind].fmeasure for s in per_pair) / len(per_pair)   # 0-100 scale
        assert out[kind] == pytest.approx(expected, abs=1e-10)

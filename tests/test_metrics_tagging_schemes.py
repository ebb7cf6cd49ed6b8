"""Entity F1 in every tagging scheme against seqeval (spec/metrics.md section 11; seqeval.scheme).

Default mode over IOB1, IOB2, IOE1, IOE2, IOBES (= BIOES) and bare tags; strict mode over every scheme seqeval
reads strictly and minift supports (IOB2, IOE2, IOBES, BILOU), and a clear error for IOB1 / IOE1. Sentences
are either well-formed (random chunks written in the scheme, so touching chunks of one type occur) or drawn
tag by tag from the scheme's alphabet (ill-formed starts and ends), and predictions are the truth with a few
tags changed, so that most entities match and a wrong boundary rule shows in the score.
"""
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval import metrics as sq
from seqeval import scheme as sqs
from seqeval.metrics.sequence_labeling import get_entities as seqeval_entities

from minift.metrics.tagging import entity_scores, get_entities, tagging_report

TYPES = ["PER", "LOC"]
ALPHABET = {"IOB1": "BIO", "IOB2": "BIO", "IOE1": "IEO", "IOE2": "IEO", "IOBES": "BIOES", "BILOU": "BILOU",
            "bare": "BIO"}


def write_chunk(scheme, kind, n, touches_same):
    """The tags of one chunk of n tokens; touches_same = the chunk before it ends right here with this type."""
    if scheme == "IOB1":
        return [("B" if touches_same else "I") + "-" + kind] + ["I-" + kind] * (n - 1)
    if scheme == "IOE1":  # its E- goes on the chunk *before* a touching one of the same type (see sentence)
        return ["I-" + kind] * n
    if scheme in ("IOB2", "bare"):
        tags = ["B"] + ["I"] * (n - 1)
    elif scheme == "IOE2":
        tags = ["I"] * (n - 1) + ["E"]
    elif scheme in ("IOBES", "BILOU"):
        one, first, last = ("S", "B", "E") if scheme == "IOBES" else ("U", "B", "L")
        tags = [one] if n == 1 else [first] + ["I"] * (n - 2) + [last]
    return tags if scheme == "bare" else [t + "-" + kind for t in tags]


@st.composite
def sentence(draw, scheme):
    if draw(st.booleans()):  # tag by tag: any prefix of the scheme after any other
        kinds = ["_"] if scheme == "bare" else TYPES
        tags = draw(st.lists(st.tuples(st.sampled_from(ALPHABET[scheme]), st.sampled_from(kinds)), min_size=1,
                             max_size=8))
        return [p if p == "O" or scheme == "bare" else f"{p}-{k}" for p, k in tags]
    pieces = draw(st.lists(st.tuples(st.integers(0, 2), st.sampled_from(TYPES), st.integers(1, 3)), min_size=1,
                           max_size=4))  # (O tokens before, type, length) per chunk
    kinds = [k if scheme != "bare" else "_" for _, k, _ in pieces]
    tags, prev = [], None
    for (gap, _, n), kind in zip(pieces, kinds):
        tags += ["O"] * gap
        chunk = write_chunk(scheme, kind, n, touches_same=gap == 0 and prev == kind)
        if scheme == "IOE1" and gap == 0 and prev == kind:
            tags[-1] = "E-" + kind  # IOE1 marks the end of a chunk followed by one of its own type
        tags += chunk
        prev = kind
    return tags


def mutate(draw, sentences, scheme):
    """The same shape with up to two tags replaced by tags of the scheme."""
    out = [list(s) for s in sentences]
    for _ in range(draw(st.integers(0, 2))):
        i = draw(st.integers(0, len(out) - 1))
        j = draw(st.integers(0, len(out[i]) - 1))
        p = draw(st.sampled_from(ALPHABET[scheme]))
        out[i][j] = p if p == "O" or scheme == "bare" else f"{p}-{draw(st.sampled_from(TYPES))}"
    return out


@st.composite
def corpus(draw, schemes):
    scheme = draw(st.sampled_from(schemes))
    true = draw(st.lists(sentence(scheme), min_size=1, max_size=3))
    return scheme, true, mutate(draw, true, scheme)


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def close(a, b):
    return a == pytest.approx(b, abs=1e-12, nan_ok=True)


@settings(deadline=None, max_examples=200)
@given(case=corpus(["IOB1", "IOB2", "IOE1", "IOE2", "IOBES", "bare"]),
       average=st.sampled_from(["micro", "macro", "weighted"]), zd=st.sampled_from(["warn", 0, 1]))
def test_default_mode_matches_seqeval_in_every_scheme(case, average, zd):
    _, true, pred = case
    for side in (true, pred):
        assert set(get_entities(side)) == set(seqeval_entities(side)), side
    ours = quiet(entity_scores, true, pred, average, "default", zd)
    for name, fn in (("precision", sq.precision_score), ("recall", sq.recall_score), ("f1", sq.f1_score)):
        assert close(ours[name], quiet(fn, true, pred, average=average, zero_division=zd)), (name, true, pred)


STRICT = {"IOB2": sqs.IOB2, "IOE2": sqs.IOE2, "IOBES": sqs.IOBES, "BILOU": sqs.BILOU}


def seqeval_strict(sentences, scheme):
    """seqeval's strict entities as minift numbers them: positions in the sentences chained with an O between."""
    out, offset = set(), 0
    for sent, found in zip(sentences, sqs.Entities(sentences, STRICT[scheme]).entities):
        out |= {(e.tag, offset + e.start, offset + e.end - 1) for e in found}  # seqeval's end is exclusive
        offset += len(sent) + 1
    return out


@settings(deadline=None, max_examples=200)
@given(case=corpus(sorted(STRICT)), average=st.sampled_from(["micro", "macro", "weighted"]))
def test_strict_mode_matches_seqeval_in_every_strict_scheme(case, average):
    scheme, true, pred = case
    for side in (true, pred):
        assert set(get_entities(side, "strict", scheme)) == seqeval_strict(side, scheme), (scheme, side)
    ours = quiet(entity_scores, true, pred, average, "strict", 0, scheme)
    kw = dict(average=average, mode="strict", scheme=STRICT[scheme], zero_division=0)
    assert close(ours["f1"], quiet(sq.f1_score, true, pred, **kw)), (scheme, true, pred)
    assert close(ours["precision"], quiet(sq.precision_score, true, pred, **kw))
    report = tagging_report(true, pred, "strict", 0, scheme)
    theirs = quiet(sq.classification_report, true, pred, mode="strict", scheme=STRICT[scheme], zero_division=0,
                   output_dict=True)
    for kind in TYPES:
        if kind in theirs:
            assert close(report[kind]["f1"], theirs[kind]["f1-score"]), (scheme, kind, true, pred)
            assert report[kind]["support"] == theirs[kind]["support"]


@settings(deadline=None, max_examples=60)
@given(scheme=st.sampled_from(sorted(STRICT)),
       tags=st.lists(st.sampled_from(["B-PER", "I-PER", "E-PER", "S-PER", "L-PER", "U-PER", "O"]), min_size=1,
                     max_size=6))
def test_strict_mode_rejects_what_seqeval_rejects(scheme, tags):
    """A prefix outside the scheme (E- in IOB2, S- in BILOU, ...) is an error in both."""
    try:
        want = seqeval_strict([tags], scheme)
    except (ValueError, KeyError):
        with pytest.raises(ValueError, match=f"strict {scheme} scheme"):
            get_entities([tags], "strict", scheme)
        return
    assert set(get_entities([tags], "strict", scheme)) == want


@pytest.mark.parametrize("scheme", ["IOB1", "IOE1", "BIO"])
def test_strict_mode_says_which_schemes_it_reads(scheme):
    with pytest.raises(ValueError, match="IOB2.*mode='default'"):
        entity_scores([["B-PER"]], [["B-PER"]], mode="strict", scheme=scheme)


def test_single_token_chunks_count_in_every_scheme_that_has_them():
    """S-X (IOBES) and U-X (BILOU) open a chunk on their own; a reading that starts chunks at B- only misses them."""
    assert get_entities([["S-PER", "O", "B-LOC", "E-LOC"]]) == [("PER", 0, 0), ("LOC", 2, 3)]
    assert get_entities([["S-PER", "S-PER"]], "strict", "IOBES") == [("PER", 0, 0), ("PER", 1, 1)]
    assert get_entities([["U-PER", "B-LOC", "L-LOC"]], "strict", "BILOU") == [("PER", 0, 0), ("LOC", 1, 2)]

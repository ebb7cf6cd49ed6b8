"""Entity-level tagging scores against seqeval, default and strict IOB2 modes (spec section 11)."""
import math
import warnings

import pytest
import seqeval.metrics as sq
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics.sequence_labeling import get_entities as sq_get_entities
from seqeval.scheme import IOB2

from minift.metrics import (UndefinedMetricWarning, entity_scores, get_entities, ids_to_tags, split_tag,
                            tag_accuracy, tagging_report, tagging_summary)

TAGS = ["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
sents = st.lists(st.lists(st.sampled_from(TAGS), min_size=1, max_size=8), min_size=1, max_size=4)


@st.composite
def corpus_pair(draw):
    """(true, pred) with the same shape; pred is drawn independently, or copied and perturbed."""
    true = draw(sents)
    if draw(st.booleans()):
        pred = [[draw(st.sampled_from(TAGS)) for _ in s] for s in true]
    else:
        pred = [[t if draw(st.integers(0, 3)) else draw(st.sampled_from(TAGS)) for t in s] for s in true]
    return true, pred


def seqeval_kwargs(mode):
    return dict(mode="strict", scheme=IOB2) if mode == "strict" else {}   # never mode='strict' alone


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def close(a, b):
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=0, abs_tol=1e-12)


@settings(deadline=None, max_examples=200)
@given(pair=corpus_pair(), mode=st.sampled_from(["default", "strict"]),
       average=st.sampled_from(["micro", "macro", "weighted"]), zd=st.sampled_from([0, 1]))
def test_entity_scores_match_seqeval(pair, mode, average, zd):
    true, pred = pair
    kw = dict(average=average, zero_division=zd, **seqeval_kwargs(mode))
    ours = quiet(entity_scores, true, pred, average=average, mode=mode, zero_division=zd)
    assert close(ours["precision"], quiet(sq.precision_score, true, pred, **kw))
    assert close(ours["recall"], quiet(sq.recall_score, true, pred, **kw))
    assert close(ours["f1"], quiet(sq.f1_score, true, pred, **kw))


@settings(deadline=None, max_examples=80)
@given(pair=corpus_pair(), mode=st.sampled_from(["default", "strict"]))
def test_report_matches_seqeval_classification_report(pair, mode):
    true, pred = pair
    ref = quiet(sq.classification_report, true, pred, output_dict=True, zero_division=0, **seqeval_kwargs(mode))
    ours = tagging_report(true, pred, mode=mode, zero_division=0)
    assert set(ours) == set(ref)
    for key, row in ref.items():
        for field, ours_field in (("precision", "precision"), ("recall", "recall"), ("f1-score", "f1")):
            assert close(ours[key][ours_field], float(row[field])), (key, field)
        assert ours[key]["support"] == int(row["support"])
    if mode == "default":
        assert [tuple(e) for e in get_entities(true)] == sorted(sq_get_entities(true), key=lambda e: (e[1], e[2]))
    assert tag_accuracy(true, pred) == pytest.approx(sq.accuracy_score(true, pred), abs=1e-12)


@pytest.mark.parametrize("tags, default, strict", [
    (["B-PER", "I-PER", "O"], [("PER", 0, 1)], [("PER", 0, 1)]),
    (["O", "I-PER", "I-PER", "O"], [("PER", 1, 2)], []),
    (["I-PER", "O"], [("PER", 0, 0)], []),
    (["B-PER", "I-LOC", "O"], [("PER", 0, 0), ("LOC", 1, 1)], [("PER", 0, 0)]),
    (["B-PER", "B-PER"], [("PER", 0, 0), ("PER", 1, 1)], [("PER", 0, 0), ("PER", 1, 1)]),
    (["B-LOC", "O", "I-LOC"], [("LOC", 0, 0), ("LOC", 2, 2)], [("LOC", 0, 0)]),
    (["B-PER", "E-PER", "S-LOC", "O"], [("PER", 0, 1), ("LOC", 2, 2)], ValueError),
    (["B", "I", "O", "B"], [("_", 0, 1), ("_", 3, 3)], [("_", 0, 1), ("_", 3, 3)]),
    (["B-ORG-X", "I-ORG-X"], [("ORG-X", 0, 1)], [("ORG-X", 0, 1)]),
    (["PER", "O", "X-LOC"], [("ER", 0, 0), ("LOC", 2, 2)], ValueError),   # seqeval strict: KeyError
    (["O", "I", "I"], [("_", 1, 2)], []),                      # a bare I after O starts a chunk
    (["S-PER", "I-PER"], [("PER", 0, 0), ("PER", 1, 1)], ValueError),
    (["B-PER", "E-PER", "I-PER"], [("PER", 0, 1), ("PER", 2, 2)], ValueError),
])
def test_entity_extraction_examples(tags, default, strict):
    assert get_entities([tags]) == default
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                        # seqeval warns on "PER"
        assert default == sq_get_entities(tags)
    if strict is ValueError:
        with pytest.raises(ValueError):
            get_entities([tags], mode="strict")
    else:
        assert get_entities([tags], mode="strict") == strict


def test_entities_do_not_cross_sentences_and_split_tag():
    assert get_entities([["B-PER", "I-PER"], ["I-PER", "O"]]) == [("PER", 0, 1), ("PER", 3, 3)]
    assert [split_tag(t) for t in ("B-PER", "O", "B", "B-ORG-X")] == [("B", "PER"), ("O", "_"), ("B", "_"),
                                                                       ("B", "ORG-X")]


def test_spec_scores():
    true, pred = [["B-PER", "I-PER", "O", "B-LOC"]], [["I-PER", "I-PER", "O", "B-LOC"]]
    assert entity_scores(true, pred)["f1"] == 1.0
    assert entity_scores(true, pred, mode="strict")["f1"] == pytest.approx(2 / 3)
    true = [["B-PER", "I-PER", "O", "B-LOC", "O", "B-ORG"], ["B-LOC", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-LOC", "B-ORG", "I-ORG"], ["O", "O"]]
    assert entity_scores(true, pred) == pytest.approx({"precision": 2 / 3, "recall": 0.5, "f1": 4 / 7})
    assert entity_scores(true, pred, average="macro")["f1"] == pytest.approx(5 / 9)
    assert entity_scores(true, pred, average="weighted")["f1"] == pytest.approx(7 / 12)
    report = tagging_report(true, pred)
    assert [report[k]["f1"] for k in ("LOC", "ORG", "PER")] == pytest.approx([2 / 3, 0.0, 1.0])
    assert [report[k]["support"] for k in ("LOC", "ORG", "PER")] == [2, 1, 1]


def test_zero_division_cases():
    empty = [["O", "O"], ["O"]]
    with pytest.warns(UndefinedMetricWarning):
        assert entity_scores(empty, empty)["f1"] == 0.0
    assert entity_scores(empty, empty, zero_division=1)["f1"] == 1.0
    assert math.isnan(entity_scores(empty, empty, average="macro", zero_division=1)["f1"])
    assert entity_scores(empty, empty, average="weighted", zero_division=1)["f1"] == 1.0
    only_true = [["B-PER", "O"], ["O"]]
    assert entity_scores(only_true, empty, zero_division=1)["f1"] == 0.0
    assert entity_scores(empty, only_true, zero_division=1)["f1"] == 0.0
    weighted = entity_scores(empty, only_true, average="weighted", zero_division=1)
    assert weighted == {"precision": 0.0, "recall": 1.0, "f1": 0.0}


def test_input_checks():
    with pytest.raises(ValueError):
        entity_scores([["O", "O"]], [["O"]])                   # ragged lengths
    with pytest.raises(TypeError):
        entity_scores(["B-PER", "O"], ["B-PER", "O"])          # flat list, not a list of sentences
    with pytest.raises(TypeError):
        entity_scores([], [])
    with pytest.raises(ValueError):
        entity_scores([["O"]], [["O"]], average="samples")
    with pytest.raises(ValueError):
        get_entities([["O"]], mode="IOB1")
    assert tag_accuracy([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]]) == pytest.approx(2 / 3)


def test_ids_to_tags_drops_ignored_positions_and_summary():
    id2label = {0: "O", 1: "B-PER", 2: "I-PER"}
    labels = [[-100, 1, 2, -100, 0], [-100, 0, 1, -100, -100]]
    preds = [[0, 1, 1, 2, 0], [2, 0, 1, 0, 0]]
    true_tags, pred_tags = ids_to_tags(labels, preds, id2label)
    assert true_tags == [["B-PER", "I-PER", "O"], ["O", "B-PER"]]
    assert pred_tags == [["B-PER", "B-PER", "O"], ["O", "B-PER"]]
    out = tagging_summary(true_tags, pred_tags)
    assert out == pytest.approx({"precision": sq.precision_score(true_tags, pred_tags),
                                 "recall": sq.recall_score(true_tags, pred_tags),
                                 "f1": sq.f1_score(true_tags, pred_tags)}, abs=1e-12)
    assert out["f1"] == pytest.approx(0.4)                     # 1 of 3 predicted, 1 of 2 true

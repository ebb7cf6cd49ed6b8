"""SQuAD v1.1 exact match and F1: the golden table of spec section 10 and an oracle written from its rules.

No reference library is installed, so the golden values below are the contract, and a small
oracle, written independently from the spec's wording, is compared on random answers.
"""
import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minift.metrics import exact_match, normalize_answer, squad_scores, token_f1

GOLDEN = [  # pred, gold, normalized pred, normalized gold, EM, F1
    ("The Eiffel Tower", "eiffel tower", "eiffel tower", "eiffel tower", 1, 1.0),
    ("the cat", "a cat", "cat", "cat", 1, 1.0),
    ("Paris.", "paris", "paris", "paris", 1, 1.0),
    ("", "", "", "", 1, 0.0),                                  # v1.1: EM 1 but F1 0
    ("the", "a", "", "", 1, 0.0),
    ("An", "an", "", "", 1, 0.0),
    ("", "Paris", "", "paris", 0, 0.0),
    ("an apple an", "apple", "apple", "apple", 1, 1.0),
    ("theater", "the ater", "theater", "ater", 0, 0.0),
    ("A-B", "ab", "ab", "ab", 1, 1.0),
    ("A - B", "a b", "b", "b", 1, 1.0),                        # the letter "a" is an article
    ("“quoted”", "quoted", "“quoted”", "quoted", 0, 0.0),      # Unicode punctuation is kept
    ("café", "cafe", "café", "cafe", 0, 0.0),
    ("1,000", "1000", "1000", "1000", 1, 1.0),
    ("3.5", "35", "35", "35", 1, 1.0),
    ("the the cat cat", "cat", "cat cat", "cat", 0, 2 / 3),
    ("cat cat dog", "cat dog dog", None, None, 0, 2 / 3),
    ("a\tb\nc", "a b c", "b c", "b c", 1, 1.0),
    ("the_cat", "the cat", "thecat", "cat", 0, 0.0),
    ("don't", "dont", None, None, 1, 1.0),
    ("U.S.", "us", None, None, 1, 1.0),
    ("’s", "s", "’s", "s", 0, 0.0),
]


@pytest.mark.parametrize("pred, gold, norm_pred, norm_gold, em, f1", GOLDEN)
def test_golden_table(pred, gold, norm_pred, norm_gold, em, f1):
    if norm_pred is not None:
        assert (normalize_answer(pred), normalize_answer(gold)) == (norm_pred, norm_gold)
    assert exact_match(pred, gold) == em
    assert token_f1(pred, gold) == pytest.approx(f1, abs=1e-12)
    assert squad_scores([pred], [[gold]]) == pytest.approx({"exact_match": 100.0 * em, "f1": 100.0 * f1}, abs=1e-10)


def test_max_over_golds_and_dataset_mean():
    assert squad_scores(["big red barn"], [["red barn", "the big barn", "barn"]]) == \
        pytest.approx({"exact_match": 0.0, "f1": 80.0})
    preds, golds = ["Paris", "the cat", "dog"], [["paris", "Paris, France"], ["a cat"], ["cat"]]
    assert squad_scores(preds, golds) == pytest.approx({"exact_match": 200 / 3, "f1": 200 / 3})
    # dicts keyed by question id: a missing prediction counts as 0
    by_id = squad_scores({"q1": "Paris"}, {"q1": ["paris"], "q2": ["cat"]})
    assert by_id == {"exact_match": 50.0, "f1": 50.0}
    assert squad_scores([None, "cat"], [["x"], ["cat"]]) == {"exact_match": 50.0, "f1": 50.0}


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        squad_scores(["a"], [["a"], ["b"]])
    with pytest.raises(TypeError):
        squad_scores(["a"], ["a"])                             # golds must be lists of strings
    with pytest.raises(TypeError):
        squad_scores(["a"], [[]])
    with pytest.raises(ValueError):
        squad_scores([], [])


# ---- an oracle written from the spec's rules, in a different style -------------------------

def oracle_normalize(s: str) -> str:
    s = s.lower().translate(str.maketrans("", "", string.punctuation))
    s = re.sub(r"(?<!\w)(?:a|an|the)(?!\w)", " ", s)            # whole words only
    return " ".join(s.split())


def oracle_f1(p: str, g: str) -> float:
    pt, gt = oracle_normalize(p).split(), oracle_normalize(g).split()
    remaining, same = list(gt), 0
    for tok in pt:                                             # multiset intersection by removal
        if tok in remaining:
            remaining.remove(tok)
            same += 1
    if same == 0:
        return 0.0
    prec, rec = same / len(pt), same / len(gt)
    return 2 * prec * rec / (prec + rec)


W = ["The", "the", "A", "an", "AN", "theater", "another", "cat", "Cat.", "cat,", "dog", "“dog”", "’s", "1,000",
     "x-ray", "_", "  ", "\t", "é", "Ünï"]
text = st.lists(st.sampled_from(W), max_size=6).map(" ".join) | st.text(max_size=8)
golds = st.lists(text, min_size=1, max_size=3)


@settings(deadline=None, max_examples=250)
@given(pred=text, gold_list=golds)
def test_matches_oracle_and_invariants(pred, gold_list):
    em = max(float(oracle_normalize(pred) == oracle_normalize(g)) for g in gold_list)
    f1 = max(oracle_f1(pred, g) for g in gold_list)
    scores = squad_scores([pred], [gold_list])
    assert scores["exact_match"] == 100.0 * em
    assert scores["f1"] == pytest.approx(100.0 * f1, abs=1e-10)
    for g in gold_list:
        assert token_f1(pred, g) == pytest.approx(token_f1(g, pred), abs=1e-12)   # symmetric
        assert 0.0 <= token_f1(pred, g) <= 1.0
        if exact_match(pred, g):                               # EM implies F1 = 1, unless both are empty
            assert token_f1(pred, g) == (1.0 if normalize_answer(g) else 0.0)
    assert squad_scores([pred], [gold_list + [pred]])["exact_match"] == 100.0   # a gold equal to pred

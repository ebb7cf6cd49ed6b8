"""Extractive question answering: SQuAD v1.1 exact match and token F1.

Reference: Rajpurkar et al. 2016, "SQuAD: 100,000+ Questions for Machine Comprehension of
Text", and its official evaluation script v1.1 (also shipped as huggingface/evaluate
``metrics/squad``).  Written from the rules in spec/metrics.md section 10.

normalize(s): lowercase; delete the 32 ASCII punctuation characters of ``string.punctuation``
(Unicode quotes and dashes stay); replace the whole words a / an / the by a space; split on
whitespace and join with single spaces.

    EM(p, g) = [normalize(p) == normalize(g)]
    F1(p, g) = 2 P R / (P + R),   P = same / |p tokens|,  R = same / |g tokens|
               same = sum over tokens of min(count in p, count in g)   (0 if same = 0)

Two empty answers give EM 1 but F1 0 (v1.1; v2.0 would give F1 1).  With several gold
answers, EM and F1 each take their max over the golds.  The dataset score is 100 x the
mean over questions; an unanswered question scores 0.
"""
import re
import string
from collections import Counter

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """SQuAD answer normalization (see the module docstring)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 if the normalized strings are equal, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """Bag-of-tokens F1 between the normalized answers (0 if they share no token)."""
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(predictions, gold_answers) -> dict:
    """{"exact_match", "f1"} in percent (0-100), each the mean over questions of the max over golds.

    Either two aligned sequences (``predictions[i]`` a string or None for unanswered,
    ``gold_answers[i]`` a list of gold strings), or two dicts keyed by question id, where
    questions missing from ``predictions`` count as unanswered.
    """
    if isinstance(gold_answers, dict):
        if not isinstance(predictions, dict):
            raise TypeError("with gold answers keyed by id, predictions must be a dict too")
        ids = list(gold_answers)
        predictions = [predictions.get(i) for i in ids]
        gold_answers = [gold_answers[i] for i in ids]
    elif len(predictions) != len(gold_answers):
        raise ValueError(f"{len(predictions)} predictions but {len(gold_answers)} questions")
    if not gold_answers:
        raise ValueError("no questions to score")
    em = f1 = 0.0
    for prediction, golds in zip(predictions, gold_answers):
        if isinstance(golds, str) or not golds:
            raise TypeError("each question needs a non-empty list of gold answer strings")
        if prediction is None:                                 # unanswered: 0 for both
            continue
        em += max(exact_match(prediction, g) for g in golds)
        f1 += max(token_f1(prediction, g) for g in golds)
    n = len(gold_answers)
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n}

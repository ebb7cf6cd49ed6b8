"""ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum with the semantics of Google's rouge-score.

References: Lin 2004, "ROUGE: A Package for Automatic Evaluation of Summaries" (sections
2 and 3.2, summary-level LCS); the ``rouge_score`` package (``RougeScorer.score``), which
this module matches in precision, recall and F for all four types.

Tokens: lowercase, replace every run of characters outside [a-z0-9] by a space, split;
optionally stem tokens longer than 3 characters; keep tokens matching ^[a-z0-9]+$.
(So "café" -> "caf", "don't" -> "don t", and non-Latin text has no tokens at all.)

    ROUGE-N:  overlap = sum_g min(count_ref(g), count_pred(g)) over n-grams g
              P = overlap / max(#pred n-grams, 1),   R = overlap / max(#ref n-grams, 1)
    ROUGE-L:  P = LCS(ref, pred) / |pred|,  R = LCS / |ref|   (LCS = longest common subsequence)
    F = 2 P R / (P + R)  (0 when P + R = 0)

ROUGE-Lsum treats each text as sentences, split on "\\n" only (empty lines dropped).
For each reference sentence r, take one LCS between r and every predicted sentence,
as reference-token positions, and take the union of those positions.  Walk the union in
order: a token t is a hit while both budgets (count of t left in the whole reference and
in the whole prediction) are > 0, and each hit spends one of each.
    P = hits / #pred tokens,  R = hits / #ref tokens.
Which LCS is read out matters; as in rouge-score, backtrack from the end, take the
diagonal on equal tokens, else step left only if that cell is strictly larger, else up.

Several references: per type, keep the reference with the highest F (the first on ties).
A corpus score is the arithmetic mean of the per-pair P, R and F (no bootstrap).
Scores are on the 0-1 scale.
"""
import re
from collections import Counter
from typing import Callable, NamedTuple, Optional

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL", "rougeLsum")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_TOKEN = re.compile(r"^[a-z0-9]+$")


class Score(NamedTuple):
    precision: float
    recall: float
    fmeasure: float


def _fscore(precision: float, recall: float) -> Score:
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return Score(precision, recall, f)


def rouge_tokenize(text: str, stem: Optional[Callable[[str], str]] = None) -> list:
    """rouge-score tokens of ``text``; ``stem`` (e.g. a Porter stemmer's ``stem``) is optional."""
    tokens = _NON_ALNUM.sub(" ", text.lower()).split()
    if stem is not None:
        tokens = [stem(t) if len(t) > 3 else t for t in tokens]
    return [t for t in tokens if _TOKEN.match(t)]


def rouge_n(pred_tokens: list, ref_tokens: list, n: int) -> Score:
    """ROUGE-N from clipped n-gram overlap."""
    pred = Counter(tuple(pred_tokens[i:i + n]) for i in range(len(pred_tokens) - n + 1))
    ref = Counter(tuple(ref_tokens[i:i + n]) for i in range(len(ref_tokens) - n + 1))
    overlap = sum((pred & ref).values())                       # & keeps the min count
    return _fscore(overlap / max(sum(pred.values()), 1), overlap / max(sum(ref.values()), 1))


def lcs_table(a: list, b: list) -> list:
    """T[i][j] = length of the LCS of a[:i] and b[:j]  ((len a + 1) x (len b + 1))."""
    T = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            if a[i - 1] == b[j - 1]:
                T[i][j] = T[i - 1][j - 1] + 1
            else:
                T[i][j] = max(T[i - 1][j], T[i][j - 1])
    return T


def lcs_positions(ref: list, pred: list) -> list:
    """Positions in ``ref`` of one LCS with ``pred``, read out with rouge-score's tie-break."""
    T = lcs_table(ref, pred)
    i, j, positions = len(ref), len(pred), []
    while i > 0 and j > 0:
        if ref[i - 1] == pred[j - 1]:
            positions.append(i - 1)
            i, j = i - 1, j - 1
        elif T[i][j - 1] > T[i - 1][j]:
            j -= 1
        else:                                                  # ties move up (i - 1)
            i -= 1
    return positions[::-1]


def rouge_l(pred_tokens: list, ref_tokens: list) -> Score:
    """Sentence-level ROUGE-L from the LCS of the whole token sequences."""
    if not pred_tokens or not ref_tokens:
        return Score(0.0, 0.0, 0.0)
    lcs = lcs_table(ref_tokens, pred_tokens)[-1][-1]
    return _fscore(lcs / len(pred_tokens), lcs / len(ref_tokens))


def rouge_lsum(prediction: str, reference: str, stem=None) -> Score:
    """Summary-level ROUGE-L over newline-separated sentences (union LCS, see above)."""
    def sentences(text):
        return [rouge_tokenize(line, stem) for line in text.split("\n") if line]

    pred_sents, ref_sents = sentences(prediction), sentences(reference)
    n_pred = sum(len(s) for s in pred_sents)
    n_ref = sum(len(s) for s in ref_sents)
    if n_pred == 0 or n_ref == 0:
        return Score(0.0, 0.0, 0.0)
    pred_left = Counter(t for s in pred_sents for t in s)     # budgets of unmatched tokens
    ref_left = Counter(t for s in ref_sents for t in s)
    hits = 0
    for r in ref_sents:
        union = sorted(set().union(*(lcs_positions(r, c) for c in pred_sents)))
        for token in (r[i] for i in union):
            if pred_left[token] > 0 and ref_left[token] > 0:
                hits += 1
                pred_left[token] -= 1
                ref_left[token] -= 1
    return _fscore(hits / n_pred, hits / n_ref)


def rouge_score(prediction: str, reference, stem=None, rouge_types=ROUGE_TYPES) -> dict:
    """{type: Score} for one prediction; ``reference`` is a string or a list of strings."""
    if not isinstance(reference, str):                         # several references: best F
        if not reference:
            raise ValueError("need at least one reference")
        per_ref = [rouge_score(prediction, r, stem, rouge_types) for r in reference]
        return {t: max((s[t] for s in per_ref), key=lambda s: s.fmeasure) for t in rouge_types}
    pred, ref = rouge_tokenize(prediction, stem), rouge_tokenize(reference, stem)
    scores = {}
    for kind in rouge_types:
        if kind == "rougeL":
            scores[kind] = rouge_l(pred, ref)
        elif kind == "rougeLsum":
            scores[kind] = rouge_lsum(prediction, reference, stem)
        elif re.fullmatch(r"rouge[1-9]", kind):
            scores[kind] = rouge_n(pred, ref, int(kind[5:]))
        else:
            raise ValueError(f"unknown ROUGE type {kind!r}")
    return scores


def rouge(predictions, references, stem=None, rouge_types=ROUGE_TYPES) -> dict:
    """Corpus ROUGE: {type: Score} averaging P, R and F over the (prediction, reference) pairs."""
    if isinstance(predictions, str):
        raise TypeError("predictions must be a list of strings, not a single string")
    if len(predictions) != len(references) or not predictions:
        raise ValueError(f"need equally many (>= 1) predictions and references, got "
                         f"{len(predictions)} and {len(references)}")
    pairs = [rouge_score(p, r, stem, rouge_types) for p, r in zip(predictions, references)]
    return {t: Score(*(sum(s[t][k] for s in pairs) / len(pairs) for k in range(3)))
            for t in rouge_types}

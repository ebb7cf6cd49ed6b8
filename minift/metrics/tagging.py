"""Entity-level precision / recall / F1 for BIO-style sequence tagging, as seqeval scores it.

References: the CoNLL-2000 ``conlleval`` script (Tjong Kim Sang & Buchholz 2000) and the
``seqeval`` package: its default (conlleval-compatible) mode and its strict mode with the
IOB2, IOE2, IOBES and BILOU schemes (spec/metrics.md section 11; seqeval.scheme).

Input: a list of sentences, each a list of tags such as "B-PER", "I-PER", "O".  Sentences
are chained with an "O" between them, so no entity crosses a boundary.  An entity is
(type, start, end) with an inclusive span; a tag "B-PER" has prefix "B" and type "PER".

Default mode (conlleval): a chunk *starts* at B-X or S-X, at I-X / E-X after an O, E or S,
or at any non-O tag whose type differs from the previous one.  A chunk *ends* before B, S
or O, right after E or S, or where the type changes.  So a stray "I-PER" starts an entity
and "B-PER I-LOC" is two entities.
Strict mode (seqeval's ``mode="strict"`` with ``scheme=``) reads each sentence by one scheme's grammar:
a chunk opens at a *begin* prefix, goes on while each tag *continues* the previous one with the same type,
and counts only if its last tag may *end* a chunk; tags that fit nowhere are dropped:
    IOB2   B-X (I-X)*                          IOE2   (I-X)* E-X
    IOBES  S-X | B-X (I-X)* E-X                BILOU  U-X | B-X (I-X)* L-X
So in IOB2 a stray I-X is dropped, and in IOBES "B-X I-X" without its E-X is no entity.  Prefixes outside
the scheme are errors.  IOB1 and IOE1 (where B / E only separate two touching chunks) have no strict
reading here: seqeval marks its own IOE1 as unfinished; ask for one and the error says to use the default mode.

Per type, with TP = entities with identical type and span on both sides:
    P = TP / #predicted,  R = TP / #true   (0/0 -> zero_division),  F = 2 P R / (P + R), 0 if P + R = 0
F comes from P and R *after* the zero_division substitution.  micro pools TP / #pred / #true
over the types; macro is the mean over types (nan if there are none); weighted uses the
true counts as weights.
"""
import warnings

import numpy as np

from .classification import UndefinedMetricWarning

MODES = ("default", "strict")


def split_tag(tag: str) -> tuple[str, str]:
    """("B", "PER") for "B-PER"; a bare prefix like "B" or "O" gets the type "_"."""
    head, dash, rest = tag[1:].partition("-")
    return tag[:1], (rest if dash else head) or "_"


def _chain(sentences) -> list:
    """Validate a list of tag lists and join them with an "O" after every sentence."""
    if not isinstance(sentences, (list, tuple)) or not sentences \
            or not all(isinstance(s, (list, tuple)) for s in sentences):
        raise TypeError("expected a non-empty list of sentences, each a list of tags")
    return [tag for sentence in sentences for tag in list(sentence) + ["O"]]


def _entities_default(tags: list) -> set:
    entities, start = set(), 0
    prev_prefix, prev_type = "O", ""
    for i, (prefix, kind) in enumerate(map(split_tag, tags + ["O"])):  # the final O closes all
        type_change = prev_prefix != "O" and prev_type != kind
        ends = (prev_prefix in ("E", "S")
                or (prev_prefix in ("B", "I") and prefix in ("B", "S", "O"))
                or type_change)
        starts = (prefix in ("B", "S")
                  or (prefix in ("I", "E") and prev_prefix in ("O", "E", "S"))
                  or (prefix != "O" and prev_type != kind))
        if ends:
            entities.add((prev_type, start, i - 1))
        if starts:
            start = i
        prev_prefix, prev_type = prefix, kind
    return entities


# Strict grammars: the prefixes that begin a chunk, those that continue one after a given prefix
# (same type), and those a chunk may end on.  The outside tag "O" is in none of them.
SCHEMES = {
    "IOB2": dict(begin="B", go_on={"B": "I", "I": "I"}, end="BI"),
    "IOE2": dict(begin="IE", go_on={"I": "IE"}, end="E"),
    "IOBES": dict(begin="BS", go_on={"B": "IE", "I": "IE"}, end="ES"),
    "BILOU": dict(begin="BU", go_on={"B": "IL", "I": "IL"}, end="LU"),
}


def _entities_strict(tags: list, scheme: str) -> set:
    rules = SCHEMES[scheme]
    allowed = set(rules["begin"] + rules["end"] + "".join(rules["go_on"].values()) + "O")
    entities, current = set(), None                            # current = [type, start, last prefix] or None
    for i, (prefix, kind) in enumerate(map(split_tag, tags + ["O"])):
        if prefix not in allowed:
            raise ValueError(f"invalid tag {tags[i]!r} for the strict {scheme} scheme "
                             f"(prefixes {''.join(sorted(allowed))})")
        if current is not None and current[0] == kind and prefix in rules["go_on"].get(current[2], ""):
            current[2] = prefix                                # the chunk goes on
            continue
        if current is not None and current[2] in rules["end"]:  # anything else closes it
            entities.add((current[0], current[1], i - 1))
        current = [kind, i, prefix] if prefix in rules["begin"] else None  # a tag that fits nowhere is dropped
    return entities


def get_entities(sentences, mode="default", scheme="IOB2") -> list:
    """Sorted (type, start, end) entities of a list of tag sentences (positions in the chain);
    ``scheme`` (IOB2, IOE2, IOBES or BILOU) is read in strict mode only."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "strict" and scheme not in SCHEMES:
        raise ValueError(f"strict mode reads the schemes {sorted(SCHEMES)}, not {scheme!r}; "
                         "use mode='default' (conlleval's reading, which takes IOB1 and IOE1 too)")
    tags = _chain(sentences)
    found = _entities_strict(tags, scheme) if mode == "strict" else _entities_default(tags)
    return sorted(found, key=lambda e: (e[1], e[2], e[0]))


def _check(y_true, y_pred):
    t, p = _chain(y_true), _chain(y_pred)
    if [len(s) for s in y_true] != [len(s) for s in y_pred]:
        raise ValueError("y_true and y_pred have different numbers of sentences or tags")
    return t, p


def _counts(y_true, y_pred, mode, scheme):
    """Sorted types and per-type arrays (n_true, n_pred, tp)."""
    _check(y_true, y_pred)
    true, pred = set(get_entities(y_true, mode, scheme)), set(get_entities(y_pred, mode, scheme))
    types = sorted({e[0] for e in true | pred})
    n_true = np.array([sum(e[0] == k for e in true) for k in types], dtype=float)
    n_pred = np.array([sum(e[0] == k for e in pred) for k in types], dtype=float)
    tp = np.array([sum(e[0] == k for e in true & pred) for k in types], dtype=float)
    return types, n_true, n_pred, tp


def _prf(n_true, n_pred, tp, zero_division):
    """Per-entry P, R, F arrays (see the module docstring)."""
    if zero_division == "warn" and ((n_pred == 0).any() or (n_true == 0).any()):
        warnings.warn("precision or recall is 0/0 and set to 0.0; pass zero_division to silence",
                      UndefinedMetricWarning, stacklevel=4)
    fill = 0.0 if zero_division == "warn" else float(zero_division)
    p = np.where(n_pred == 0, fill, tp / np.where(n_pred == 0, 1, n_pred))
    r = np.where(n_true == 0, fill, tp / np.where(n_true == 0, 1, n_true))
    s = p + r
    f = np.where(s == 0, 0.0, 2 * p * r / np.where(s == 0, 1, s))
    return p, r, f


def _average(types, n_true, n_pred, tp, average, zero_division):
    if average == "micro":
        p, r, f = _prf(n_true.sum(keepdims=True), n_pred.sum(keepdims=True),
                       tp.sum(keepdims=True), zero_division)
        return float(p[0]), float(r[0]), float(f[0])
    p, r, f = _prf(n_true, n_pred, tp, zero_division)
    if average == "macro":
        if not types:
            return float("nan"), float("nan"), float("nan")
        return float(p.mean()), float(r.mean()), float(f.mean())
    if average == "weighted":
        if n_true.sum() == 0:
            zd = 0.0 if zero_division == "warn" else float(zero_division)
            none_predicted = n_pred.sum() == 0
            return (zd if none_predicted else 0.0), zd, (zd if none_predicted else 0.0)
        w = n_true / n_true.sum()
        return float(p @ w), float(r @ w), float(f @ w)
    raise ValueError(f"average must be 'micro', 'macro' or 'weighted', got {average!r}")


def entity_scores(y_true, y_pred, average="micro", mode="default", zero_division="warn", scheme="IOB2") -> dict:
    """{"precision", "recall", "f1"} over entities, averaged as ``average`` says."""
    p, r, f = _average(*_counts(y_true, y_pred, mode, scheme), average, zero_division)
    return {"precision": p, "recall": r, "f1": f}


def tagging_report(y_true, y_pred, mode="default", zero_division="warn", scheme="IOB2") -> dict:
    """Per-type {"precision", "recall", "f1", "support"} plus "micro avg", "macro avg", "weighted avg"."""
    types, n_true, n_pred, tp = _counts(y_true, y_pred, mode, scheme)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)   # one warning below is enough
        p, r, f = _prf(n_true, n_pred, tp, zero_division)
    report = {k: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                  "support": int(n_true[i])} for i, k in enumerate(types)}
    for average in ("micro", "macro", "weighted"):
        ap, ar, af = _average(types, n_true, n_pred, tp, average, zero_division)
        report[f"{average} avg"] = {"precision": ap, "recall": ar, "f1": af, "support": int(n_true.sum())}
    return report


def tag_accuracy(y_true, y_pred) -> float:
    """Token-level accuracy: the fraction of tags predicted exactly."""
    _check(y_true, y_pred)
    pairs = [(a, b) for ts, ps in zip(y_true, y_pred) for a, b in zip(ts, ps)]
    return float(np.mean([a == b for a, b in pairs])) if pairs else float("nan")


def ids_to_tags(label_ids, pred_ids, id2label, ignore_index=-100) -> tuple[list, list]:
    """Map (batch, length) id arrays to tag sentences, dropping positions labelled ``ignore_index``.

    Sub-word pieces and padding carry the label -100; they are removed from both sides.
    """
    true_tags, pred_tags = [], []
    for labels, preds in zip(label_ids, pred_ids):
        keep = [(int(l), int(p)) for l, p in zip(labels, preds) if int(l) != ignore_index]
        true_tags.append([id2label[l] for l, _ in keep])
        pred_tags.append([id2label[p] for _, p in keep])
    return true_tags, pred_tags


def tagging_summary(true_tags, pred_tags, mode="default") -> dict:
    """Headline numbers the training loop logs: entity-level micro {"precision", "recall", "f1"}."""
    return entity_scores(true_tags, pred_tags, "micro", mode, zero_division=0.0)

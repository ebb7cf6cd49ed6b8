"""BLEU for generated text, with sacrebleu's semantics, plus the generation summary.

References: Papineni et al. 2002, "BLEU: a method for automatic evaluation of machine
translation"; Post 2018, "A Call for Clarity in Reporting BLEU Scores" (sacrebleu), whose
13a tokenizer, closest-reference length and smoothing methods this module reproduces
(smoothing: Chen & Cherry 2014, "A Systematic Comparison of Smoothing Techniques").

From n-gram counts to the score, for orders n = 1..N (N = 4):
 1. Tokenize hypothesis and references (13a, below) and split on whitespace.
 2. For each segment, total_n  = number of hypothesis n-grams;
                       correct_n = sum over hypothesis n-grams g of
                                   min(count_hyp(g), max over references of count_ref(g))
    (the "clipped" count: a reference word can only be matched as often as it occurs).
 3. ref_len of a segment = length of the reference closest to the hypothesis length
    (ties -> the shorter one).  Corpus BLEU sums correct_n, total_n, sys_len (hypothesis
    tokens) and ref_len over all segments and scores once; it is not a mean of sentence BLEU.
 4. Brevity penalty  BP = 1 if sys_len >= ref_len, else exp(1 - ref_len / sys_len)
    (0 if sys_len = 0): precision alone would reward very short outputs.
 5. If no n-gram of any order matched, BLEU = 0.  Otherwise, order by order:
    add-k adds k to correct_n and total_n for n >= 2; if total_n = 0 stop (this order and
    the higher ones keep precision 0); p_n = 100 correct_n / total_n, and when correct_n = 0:
        exp:   the k-th such order gets p_n = 100 / (2^k total_n)
        floor: p_n = 100 k / total_n         none / add-k: p_n = 0
 6. BLEU = BP * exp( (1/order) sum_{n <= order} log p_n ),  with log 0 taken as -9999999999,
    order = N, or (effective_order) the number of orders the hypothesis has n-grams for.
The scale is 0-100.  Corpus BLEU defaults to exp smoothing; sentence BLEU also turns on
effective_order, so that a short sentence is not scored 0 for lacking 4-grams.

13a tokenizer (mteval-v13a.pl): delete "<skipped>" and "-\\n", turn "\\n" into a space, unescape
&quot; &amp; &lt; &gt;, put spaces around every ASCII symbol except ' , - . ; split "." and ","
off unless preceded by a digit, and also when followed by a non-digit; split "-" off after
a digit; collapse whitespace.  So "3.5" and "1,000" stay whole but "U.S.A." does not.
"""
import math
import re
from collections import Counter
from typing import NamedTuple

MAX_ORDER = 4
SMOOTH_DEFAULTS = {"exp": None, "floor": 0.1, "add-k": 1, "none": None}
LOG_ZERO = -9999999999  # sacrebleu's stand-in for log(0): makes the score 0

_SYMBOL = re.compile(r"""([!"#$%&()*+/:;<=>?@\[\\\]^_`{|}~])""")  # ASCII symbols except ' , - .
_PUNCT_AFTER_NON_DIGIT = re.compile(r"([^0-9])([.,])")
_PUNCT_BEFORE_NON_DIGIT = re.compile(r"([.,])([^0-9])")
_DASH_AFTER_DIGIT = re.compile(r"([0-9])(-)")


def tokenize_13a(line: str) -> str:
    """The 13a tokenization of one line, returned as a space-joined string."""
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    for escaped, char in (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
        line = line.replace(escaped, char)
    line = f" {line} "  # padding: a leading "." counts as preceded by a non-digit
    line = _SYMBOL.sub(r" \1 ", line)
    line = _PUNCT_AFTER_NON_DIGIT.sub(r"\1 \2 ", line)
    line = _PUNCT_BEFORE_NON_DIGIT.sub(r" \1 \2", line)
    line = _DASH_AFTER_DIGIT.sub(r"\1 \2 ", line)
    return " ".join(line.split())


class BLEUScore(NamedTuple):
    score: float             # 0-100
    counts: list             # correct_n, clipped matches per order (before add-k)
    totals: list             # total_n, hypothesis n-grams per order (before add-k)
    precisions: list         # p_n in percent, after smoothing
    bp: float                # brevity penalty
    sys_len: int
    ref_len: int


def _ngrams(tokens: list, max_order: int) -> Counter:
    """Counter of all n-grams (as tuples) of orders 1..max_order."""
    return Counter(tuple(tokens[i:i + n]) for n in range(1, max_order + 1)
                   for i in range(len(tokens) - n + 1))


def _segment_stats(hyp: list, refs: list, max_order: int):
    """(correct[N], total[N], hyp length, closest ref length) for one tokenized segment."""
    max_ref_counts = Counter()
    for ref in refs:
        max_ref_counts |= _ngrams(ref, max_order)          # | keeps the max count per n-gram
    correct, total = [0] * max_order, [0] * max_order
    for gram, count in _ngrams(hyp, max_order).items():
        n = len(gram)
        total[n - 1] += count
        correct[n - 1] += min(count, max_ref_counts[gram])
    ref_len = min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]  # closest, then shorter
    return correct, total, len(hyp), ref_len


def bleu_from_stats(correct, total, sys_len, ref_len, smooth="exp", smooth_value=None,
                    effective_order=False) -> BLEUScore:
    """Steps 4-6 above: brevity penalty, smoothed precisions and their geometric mean."""
    if smooth not in SMOOTH_DEFAULTS:
        raise ValueError(f"smooth must be one of {list(SMOOTH_DEFAULTS)}, got {smooth!r}")
    k = SMOOTH_DEFAULTS[smooth] if smooth_value is None else smooth_value
    max_order = len(correct)
    if sys_len < ref_len:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    else:
        bp = 1.0
    precisions = [0.0] * max_order
    if not any(correct):                                       # nothing matched at all
        return BLEUScore(0.0, list(correct), list(total), precisions, bp, sys_len, ref_len)
    order, zero_matches = max_order, 0
    for n in range(1, max_order + 1):
        c, t = correct[n - 1], total[n - 1]
        if smooth == "add-k" and n > 1:
            c, t = c + k, t + k
        if t == 0:
            break                                              # no n-grams of this length
        if effective_order:
            order = n
        if c > 0:
            precisions[n - 1] = 100.0 * c / t
        elif smooth == "exp":
            zero_matches += 1
            precisions[n - 1] = 100.0 / (2 ** zero_matches * t)
        elif smooth == "floor":
            precisions[n - 1] = 100.0 * k / t
    log_sum = sum(math.log(p) if p > 0 else LOG_ZERO for p in precisions[:order])
    score = bp * math.exp(log_sum / order)
    return BLEUScore(score, list(correct), list(total), precisions, bp, sys_len, ref_len)


def _check_references(hypotheses, references):
    if isinstance(hypotheses, str):
        raise TypeError("hypotheses must be a list of strings, not a single string")
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    for refs in references:
        if isinstance(refs, str) or not refs:
            raise TypeError("each hypothesis needs a non-empty list of reference strings, e.g. [[ref], ...]")


def bleu(hypotheses, references, smooth="exp", smooth_value=None, effective_order=False,
         lowercase=False, tokenize=True, max_order=MAX_ORDER) -> BLEUScore:
    """Corpus BLEU (sacrebleu ``corpus_bleu``).

    ``references[i]`` is the list of reference strings for ``hypotheses[i]`` (any number >= 1;
    sacrebleu instead takes one list per reference *stream*).  ``tokenize=False`` only splits
    on whitespace (sacrebleu's tokenize="none").
    """
    _check_references(hypotheses, references)
    if not hypotheses:
        raise ValueError("no hypotheses to score")

    def prepare(text: str) -> list:
        text = text.lower() if lowercase else text
        return (tokenize_13a(text.rstrip()) if tokenize else text).split()

    correct, total = [0] * max_order, [0] * max_order
    sys_len = ref_len = 0
    for hyp, refs in zip(hypotheses, references):
        c, t, h_len, r_len = _segment_stats(prepare(hyp), [prepare(r) for r in refs], max_order)
        correct = [a + b for a, b in zip(correct, c)]
        total = [a + b for a, b in zip(total, t)]
        sys_len, ref_len = sys_len + h_len, ref_len + r_len
    return bleu_from_stats(correct, total, sys_len, ref_len, smooth, smooth_value, effective_order)


def sentence_bleu(hypothesis: str, references, smooth="exp", smooth_value=None,
                  effective_order=True, **kwargs) -> BLEUScore:
    """BLEU of one sentence against its references (a list of strings), effective order on."""
    if not isinstance(hypothesis, str):
        raise TypeError("hypothesis must be a string")
    return bleu([hypothesis], [references], smooth, smooth_value, effective_order, **kwargs)


def generation_summary(hypotheses, references) -> dict:
    """Headline numbers the training loop logs, all on the 0-100 scale.

    {"bleu": corpus BLEU, "rouge1", "rouge2", "rougeL", "rougeLsum": mean ROUGE F-measure x 100}.
    ``references[i]`` is the list of references of ``hypotheses[i]``; ROUGE keeps, per type,
    the best-scoring reference.
    """
    from .rouge import rouge  # local import: rouge.py is independent of BLEU

    result = {"bleu": bleu(hypotheses, references).score}
    for kind, score in rouge(hypotheses, references).items():
        result[kind] = 100.0 * score.fmeasure
    return result

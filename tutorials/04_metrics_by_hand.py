"""Lesson 4: the metrics by hand: accuracy, precision, recall, F1 and AUC on an imbalanced set, the confusion
matrix, Pearson, Spearman and R², BLEU and ROUGE worked through one sentence, and what each one hides.

Run:  python tutorials/04_metrics_by_hand.py
(no model and no data: a second. There is no --full mode: a metric is a formula, checked here on cases small
enough to count by hand; the flag is accepted and runs the same checks. Lessons 10-15 apply them to real runs.)

Every number is first counted by hand, then asserted equal to minift.metrics (which tests/test_metrics_*.py
check against scikit-learn, scipy, sacrebleu and rouge-score).

Read beside it: minift/metrics/classification.py (accuracy, precision_recall_f1, confusion_matrix, roc_auc),
minift/metrics/regression.py (pearson, spearman, r2), minift/metrics/generation.py (bleu),
minift/metrics/rouge.py (rouge_score).
"""
import math
from collections import Counter

import numpy as np

from course import arguments
from minift import metrics

arguments(__doc__).parse_args()
rng = np.random.default_rng(0)

# 1. An imbalanced test set: 200 reviews, 20 of them complaints (class 1, the one we care about). A lazy model
#    that always says "not a complaint" is 90 % accurate and finds none of them. Accuracy hides the rare class.
y = np.array([1] * 20 + [0] * 180)
lazy = np.zeros(200, dtype=int)
print(f"always 0: accuracy {metrics.accuracy(y, lazy):.2f}, recall of class 1 "
      f"{metrics.recall(y, lazy, zero_division=0):.2f}, F1 {metrics.f1(y, lazy, zero_division=0):.2f}")
assert metrics.accuracy(y, lazy) == 0.9 and metrics.f1(y, lazy, zero_division=0) == 0

# 2. A real model gives a score per review; the decision is score > 0.5. Count the four outcomes by hand:
#    the confusion matrix, rows the true class, columns the predicted one.
scores = np.concatenate([rng.normal(0.62, 0.15, 20), rng.normal(0.35, 0.15, 180)]).clip(0, 1)
pred = (scores > 0.5).astype(int)
tp, fn = int(((y == 1) & (pred == 1)).sum()), int(((y == 1) & (pred == 0)).sum())
fp, tn = int(((y == 0) & (pred == 1)).sum()), int(((y == 0) & (pred == 0)).sum())
print(f"confusion matrix (rows true 0/1, columns predicted 0/1):\n{metrics.confusion_matrix(y, pred)}")
assert (metrics.confusion_matrix(y, pred) == np.array([[tn, fp], [fn, tp]])).all()

#    Precision: of the reviews flagged, how many are complaints, tp / (tp + fp). Recall: of the complaints, how
#    many were flagged, tp / (tp + fn). F1, their harmonic mean 2PR / (P + R) = 2 tp / (2 tp + fp + fn), is low
#    when either is. Accuracy (tp + tn) / n is dominated by the 180 easy negatives.
P, R = tp / (tp + fp), tp / (tp + fn)
F = 2 * P * R / (P + R)
acc = (tp + tn) / 200
print(f"model: tp {tp} fp {fp} fn {fn} tn {tn}: accuracy {acc:.3f}, precision {P:.3f}, recall {R:.3f}, F1 {F:.3f}")
assert math.isclose(acc, metrics.accuracy(y, pred))
assert np.allclose((P, R, F), metrics.precision_recall_f1(y, pred)[:3])
assert F < acc < metrics.accuracy(y, lazy), "the model that finds 17 of 20 complaints is less accurate than none"
print(f"  the lazy model is more accurate ({metrics.accuracy(y, lazy):.2f}) than the one that finds the complaints")

#    Macro F1 averages the per-class F1s (each class counts the same); micro F1 pools the counts, and for
#    single-label data equals accuracy. Which one a paper reports changes the number a lot on imbalanced data.
F0 = 2 * tn / (2 * tn + fn + fp)  # class 0 seen as the positive class
assert math.isclose((F + F0) / 2, metrics.f1(y, pred, average="macro"))
assert math.isclose(metrics.f1(y, pred, average="micro"), acc)
print(f"  macro F1 {(F + F0) / 2:.3f}, micro F1 {acc:.3f} (= accuracy)")

# 3. AUC ignores the threshold: it is the chance that a random complaint scores above a random non-complaint
#    (ties count half), counted here over all 20 x 180 pairs. What it hides is the threshold itself: shift every
#    score by -0.2 and the ranking, so the AUC, is unchanged, while F1 at the 0.5 threshold falls.
pos, neg = scores[y == 1], scores[y == 0]
pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
auc = pairs / (len(pos) * len(neg))
shifted = scores - 0.2
F_shifted = metrics.f1(y, (shifted > 0.5).astype(int), zero_division=0)
print(f"AUC by counting pairs {auc:.4f}; after shifting the scores: AUC {metrics.roc_auc(y, shifted):.4f}, "
      f"F1 at 0.5 {F:.3f} -> {F_shifted:.3f}")
assert math.isclose(auc, metrics.roc_auc(y, scores)) and math.isclose(auc, metrics.roc_auc(y, shifted))
assert F_shifted < 0.75 * F

# 4. Regression: a similarity score from 0 to 5 (as STS-B). Pearson r = cov(x, y) / (sd x sd y) measures a
#    straight-line fit; Spearman is Pearson on the ranks; R² = 1 - SS_res / SS_tot compares the squared error
#    with always predicting the mean. A prediction 2x + 1 of the truth has Pearson and Spearman exactly 1 and a
#    terrible R²: correlations hide scale and offset. exp(truth) keeps Spearman at 1 and lowers Pearson.
gold = np.array([0.0, 0.8, 1.5, 2.2, 3.0, 3.6, 4.1, 5.0])
guess = gold + rng.normal(0, 0.5, len(gold))
d, g = gold - gold.mean(), guess - guess.mean()
r = (d * g).sum() / math.sqrt((d * d).sum() * (g * g).sum())
ranks = lambda v: np.argsort(np.argsort(v)).astype(float)  # no ties here, so plain ranks
rd, rg = ranks(gold) - ranks(gold).mean(), ranks(guess) - ranks(guess).mean()
rho = (rd * rg).sum() / math.sqrt((rd * rd).sum() * (rg * rg).sum())
R2 = 1 - ((gold - guess) ** 2).sum() / (d * d).sum()
print(f"regression: Pearson {r:.4f}, Spearman {rho:.4f}, R² {R2:.4f}")
assert math.isclose(r, metrics.pearson(gold, guess)) and math.isclose(rho, metrics.spearman(gold, guess))
assert math.isclose(R2, metrics.r2(gold, guess))
scaled, curved = 2 * gold + 1, np.exp(gold)
print(f"  2x+1: Pearson {metrics.pearson(gold, scaled):.3f}, R² {metrics.r2(gold, scaled):.2f};  "
      f"exp(x): Spearman {metrics.spearman(gold, curved):.3f}, Pearson {metrics.pearson(gold, curved):.3f}")
assert math.isclose(metrics.pearson(gold, scaled), 1) and metrics.r2(gold, scaled) < 0
assert math.isclose(metrics.spearman(gold, curved), 1) and metrics.pearson(gold, curved) < 0.95

# 5. BLEU, one sentence through. For n = 1..4: count the output's n-grams, clip each count at the times it
#    appears in the reference ("the the the" cannot score three "the"s), precision p_n = clipped / total. Then
#    the geometric mean of p_1..p_4, times a brevity penalty BP = exp(1 - ref_len / out_len) for outputs shorter
#    than the reference (precision alone would reward saying little). 100 x BP x (p1 p2 p3 p4)^(1/4).
ref = "the olive is an italian restaurant by the river in the city centre"
out = "the olive is an italian place by the river"
o, t = out.split(), ref.split()
p = []
for n in range(1, 5):
    grams, ref_grams = Counter(zip(*[o[i:] for i in range(n)])), Counter(zip(*[t[i:] for i in range(n)]))
    clipped = sum(min(c, ref_grams[gram]) for gram, c in grams.items())
    p.append(clipped / sum(grams.values()))
    print(f"  {n}-grams: {clipped} of {sum(grams.values())} in the reference")
bp = math.exp(1 - len(t) / len(o)) if len(o) < len(t) else 1.0
by_hand = 100 * bp * math.exp(sum(map(math.log, p)) / 4)
score = metrics.bleu([out], [[ref]], tokenize=False)
print(f"BLEU by hand {by_hand:.2f} (BP {bp:.3f}); minift {score.score:.2f}")
assert math.isclose(by_hand, score.score) and math.isclose(bp, score.bp)

#    What BLEU hides: meaning. One word that flips it costs little; a faithful paraphrase scores low.
negated = "the olive is not an italian restaurant by the river in the city centre"
paraphrase = "in the middle of town , next to the river , you will find olive , which serves italian food"
b_neg, b_par = (metrics.bleu([s], [[ref]], tokenize=False).score for s in (negated, paraphrase))
print(f"  BLEU of the negated sentence {b_neg:.1f}; of a faithful paraphrase {b_par:.1f}")
assert b_neg > 60 > 20 > b_par

# 6. ROUGE counts from the reference's side too. ROUGE-1: unigram overlap, as recall (of the reference's words)
#    and precision (of the output's), F their harmonic mean. ROUGE-L: the longest common subsequence (in order,
#    gaps allowed), found by dynamic programming, LCS / ref_len and LCS / out_len. ROUGE-1 hides word order:
#    the same words shuffled score the same; ROUGE-L does not.
def lcs_length(a: list, b: list) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a)):
        for j in range(len(b)):
            table[i + 1][j + 1] = table[i][j] + 1 if a[i] == b[j] else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


reordered = "by the river the olive is an italian place"
for sentence in (out, reordered):
    words = sentence.split()
    rouge = metrics.rouge_score(sentence, ref)
    print(f"{sentence!r}:")
    for name, hits in (("rouge1", sum((Counter(words) & Counter(t)).values())), ("rougeL", lcs_length(words, t))):
        prec, rec = hits / len(words), hits / len(t)
        f = 2 * prec * rec / (prec + rec)
        print(f"  {name}: {hits} shared, precision {prec:.3f}, recall {rec:.3f}, F {f:.3f}")
        assert np.allclose((prec, rec, f), rouge[name])
same_words, shuffled = metrics.rouge_score(out, ref), metrics.rouge_score(reordered, ref)
assert same_words["rouge1"] == shuffled["rouge1"] and shuffled["rougeL"].fmeasure < same_words["rougeL"].fmeasure
assert same_words["rouge1"].precision > same_words["rouge1"].recall, "a short output: precise, recalls little"

# Exercises (worked solutions in tutorials/solutions/04_metrics_by_hand.py)
# 1. Compute the Matthews correlation coefficient by hand from the four counts, for the lazy model and the
#    real one; check with metrics.matthews_corrcoef. What does it say about the lazy model that accuracy hides?
# 2. Choose the threshold that maximises F1 of class 1 on `scores`. How much does F1 gain, and the AUC?
#    Why is choosing it on the test set cheating (lesson 11 chooses it on validation data)?
# 3. Corpus BLEU is not the mean of sentence BLEUs: show it on `out` and `negated` against `ref`, and explain
#    from the formula which counts are pooled.

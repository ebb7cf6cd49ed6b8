"""Worked solutions to the exercises of lesson 4 (tutorials/04_metrics_by_hand.py).

Run:  python tutorials/solutions/04_metrics_by_hand.py
"""
import math

import numpy as np

from minift import metrics

rng = np.random.default_rng(0)  # the lesson's data, drawn the same way
y = np.array([1] * 20 + [0] * 180)
scores = np.concatenate([rng.normal(0.62, 0.15, 20), rng.normal(0.35, 0.15, 180)]).clip(0, 1)


# 1. MCC = (tp tn - fp fn) / sqrt((tp + fp)(tp + fn)(tn + fp)(tn + fn)): the correlation between truth and
#    prediction. A constant prediction has a zero in the denominator: it is defined as 0, no better than chance,
#    which is what the lazy model's 90 % accuracy hides.
def mcc(pred):
    tp, tn = int(((y == 1) & (pred == 1)).sum()), int(((y == 0) & (pred == 0)).sum())
    fp, fn = int(((y == 0) & (pred == 1)).sum()), int(((y == 1) & (pred == 0)).sum())
    den = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return 0.0 if den == 0 else (tp * tn - fp * fn) / den


lazy, model = np.zeros(200, dtype=int), (scores > 0.5).astype(int)
print(f"MCC: lazy {mcc(lazy):.3f}, model {mcc(model):.3f}")
assert mcc(lazy) == metrics.matthews_corrcoef(y, lazy) == 0
assert math.isclose(mcc(model), metrics.matthews_corrcoef(y, model)) and mcc(model) > 0.4

# 2. The best threshold: try every score as a cut-off (F1 only changes at a score). The AUC does not move, as it
#    never used a threshold. Choosing the cut-off on test data fits it to the test set: the F1 found is optimistic;
#    choose it on validation data and report test F1 at that threshold.
f1_at = {t: metrics.f1(y, (scores >= t).astype(int), zero_division=0) for t in np.unique(scores)}
best = max(f1_at, key=f1_at.get)
print(f"F1 at 0.5 {metrics.f1(y, model):.3f}; best threshold {best:.3f} gives F1 {f1_at[best]:.3f}; "
      f"AUC {metrics.roc_auc(y, scores):.4f} either way")
assert f1_at[best] > metrics.f1(y, model)

# 3. Corpus BLEU pools the n-gram counts and lengths of all sentences, then takes one geometric mean and one
#    brevity penalty; the mean of sentence BLEUs averages per-sentence scores, each with its own penalty.
ref = "the olive is an italian restaurant by the river in the city centre"
outs = ["the olive is an italian place by the river", "the olive is not an italian restaurant by the river in the "
        "city centre"]
corpus = metrics.bleu(outs, [[ref], [ref]], tokenize=False).score
mean = sum(metrics.bleu([o], [[ref]], tokenize=False).score for o in outs) / 2
print(f"corpus BLEU {corpus:.2f}; mean of sentence BLEUs {mean:.2f}")
assert abs(corpus - mean) > 1

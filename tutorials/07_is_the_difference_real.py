"""Lesson 7: is one score better than another, or was it luck? Validation noise and its standard error.

Run:  python tutorials/07_is_the_difference_real.py

A validation accuracy is an average over n rows, so it is itself a random number: other rows (another split) or
another seed (another head initialisation, batch order, dropout) give another value. How far apart two scores
must be before the difference means something follows from the binomial standard error

    SE(accuracy) = sqrt(p (1 - p) / n)          p the accuracy, n the number of validation rows

and, for the difference of two independent scores, SE(a - b) = sqrt(SE(a)^2 + SE(b)^2). A gap under about
two SE(a - b) is what chance alone gives one time in twenty; average over seeds before calling a winner.

This lesson measures the spread directly: it embeds the bundled reviews once with the frozen encoder (mean
pooling), then trains a linear head (a linear probe, as `--freeze encoder`) on 8 different stratified splits
and compares the spread of the 8 accuracies with the formula. Read beside it: benchmarks/README.md
(`sentence_tasks.py --seeds`, and `loop_vs_trainer.py`, which removes the randomness to compare two loops).
"""
import math
import statistics
from importlib import resources

import torch

from minift import Encoder, Tokenizer, optim
from minift.data import LabelMap, encode_labels, read_table, stratified_split
from minift.heads import pool
from minift.losses import cross_entropy

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
torch.manual_seed(0)

# 1. One vector per review: the frozen encoder's mean of its token vectors, (N, H). Computed once.
examples = read_table(resources.files("minift") / "bundled" / "sentiment.csv", "text", "label")
labels = LabelMap.from_labels([e.label for e in examples])
y = encode_labels(examples, labels)  # (N,)
tokenizer, encoder = Tokenizer.from_pretrained(MODEL), Encoder.from_pretrained(MODEL).eval()
batch = tokenizer([e.text for e in examples], max_length=64)
with torch.no_grad():
    hidden = encoder(batch["input_ids"], batch["attention_mask"])  # (N, T, H)
    x = pool(encoder, hidden, batch["attention_mask"], "mean")  # (N, H)


def probe_accuracy(split_seed: int) -> tuple[float, int]:
    """Train a linear head on one split's training rows; return (validation accuracy, validation rows)."""
    tr, va = stratified_split([e.label for e in examples], 0.25, seed=split_seed)
    head = torch.nn.Linear(x.shape[1], len(labels))
    opt = optim.AdamW(head.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(200):  # full-batch steps: the probe's loss is convex, so this converges
        loss = cross_entropy(head(x[tr]), y[tr])
        loss.backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        return float((head(x[va]).argmax(-1) == y[va]).float().mean()), len(va)


# 2. The same recipe on 8 splits: only the rows differ.
runs = [probe_accuracy(seed) for seed in range(8)]
accs, n = [a for a, _ in runs], runs[0][1]
mean, spread = statistics.mean(accs), statistics.stdev(accs)
se = math.sqrt(mean * (1 - mean) / n)
print("accuracy on 8 splits:", " ".join(f"{a:.3f}" for a in accs))
print(f"mean {mean:.3f}, observed spread (std) {spread:.3f}; the formula sqrt(p(1-p)/n) with n={n}: {se:.3f}")
assert mean > 0.75, "the frozen encoder's sentence vectors should separate the reviews"
assert 0.25 * se < spread < 4 * se, "the spread should be of the size the binomial formula predicts"

# 3. The same arithmetic for a real comparison: SST-2, 2,000 held-out rows, both systems near 0.91.
p, n_sst2 = 0.91, 2000
se_one = math.sqrt(p * (1 - p) / n_sst2)
se_diff = math.sqrt(2) * se_one
print(f"SST-2: one score's SE {100 * se_one:.2f} points; a difference of two runs {100 * se_diff:.2f} points, "
      f"so gaps under about {200 * se_diff:.1f} points need several seeds before they mean anything")
assert abs(100 * se_one - 0.64) < 0.01

# Exercises (worked solutions in tutorials/solutions/07_is_the_difference_real.py)
# 1. How many validation rows does a 0.91 accuracy need for its SE to be half a point (0.005)?
# 2. Two runs score 0.900 and 0.910 on the same 2,000 rows. How many standard errors apart are they? Would you
#    report one as better?

"""Worked solutions to the exercises of lesson 12 (tutorials/12_multilabel_and_regression.py).

Run:  python tutorials/solutions/12_multilabel_and_regression.py

No encoder here: random scores and small synthetic vectors are enough to check what thresholds, sigmoids and
correlations do.
"""
import numpy as np
import torch

from minift import losses
from minift.metrics import best_threshold, f1, mse, pearson

# 1. best_threshold against a brute force. For each random problem: every threshold halfway between two sorted
#    distinct scores (and one below the lowest), predict score > t, keep the best F1; best_threshold's t must
#    reach it.
rng = np.random.default_rng(0)
for trial in range(200):
    n = int(rng.integers(2, 40))
    positive = rng.random(n) < rng.uniform(0.05, 0.6)
    if not positive.any():
        continue
    scores = np.round(rng.random(n), 2)  # rounded: ties happen
    s = np.unique(scores)
    cuts = np.r_[s[0] - 1, (s[:-1] + s[1:]) / 2]
    brute = max(f1(positive.astype(int), (scores > t).astype(int), zero_division=0.0) for t in cuts)
    t = best_threshold(positive, scores)
    assert abs(f1(positive.astype(int), (scores > t).astype(int), zero_division=0.0) - brute) < 1e-12, trial
print("1. best_threshold reaches the brute-force best F1 on 200 random problems (with ties)")

# 2. Softmax probabilities sum to 1, so two of them above 0.5 would sum past 1: impossible, whatever the logits.
#    Search hard anyway: many random logit vectors, scaled up to extreme sizes.
z = torch.randn(100_000, 3) * torch.logspace(-1, 2, 100_000)[:, None]
assert int(((z.softmax(-1) > 0.5).sum(-1) >= 2).sum()) == 0
assert bool((torch.tensor([4.0, 3.0, 2.0]).sigmoid() > 0.5).all())  # sigmoids: all three at once
#    BCE's gradient for one cell is sigmoid(z) - y: the same simple form as softmax cross-entropy's p - y, one
#    label at a time. minift's loss, summed, through autograd:
logits = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
target = (torch.rand(6, 4, dtype=torch.float64) < 0.3).double()
losses.binary_cross_entropy_with_logits(logits, target, reduction="sum").backward()
assert torch.allclose(logits.grad, logits.detach().sigmoid() - target)
print("2. no softmax gives two labels above 0.5 (100,000 tries); d BCE / dz = sigmoid(z) - y")

# 3. Pearson ignores a x + b, MSE does not. A predictor on the wrong scale (a cosine in [-1, 1] for a 0-5
#    similarity) is refitted by least squares on training rows: Pearson unchanged, MSE far lower.
gold = torch.rand(400, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 5
noise = torch.randn(400, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
cosine = (gold / 5) * 0.6 + 0.2 + 0.08 * noise  # a similarity on the wrong scale
fit, held = slice(0, 300), slice(300, None)
A = torch.stack([cosine[fit], torch.ones(300, dtype=torch.float64)], -1)  # (300, 2)
a, b = torch.linalg.lstsq(A, gold[fit, None]).solution[:, 0]
rescaled = a * cosine + b
print(f"3. a = {float(a):.2f}, b = {float(b):.2f}: held-out Pearson {pearson(cosine[held], gold[held]):.4f} -> "
      f"{pearson(rescaled[held], gold[held]):.4f}, MSE {mse(gold[held], cosine[held]):.3f} -> "
      f"{mse(gold[held], rescaled[held]):.3f}")
assert abs(pearson(rescaled[held], gold[held]) - pearson(cosine[held], gold[held])) < 1e-12
assert mse(gold[held], rescaled[held]) < 0.2 * mse(gold[held], cosine[held])  # typically ~0.1: five times is safe

"""Worked solutions to the exercises of lesson 11 (tutorials/11_imbalanced_data.py).

Run:  python tutorials/solutions/11_imbalanced_data.py

Exercises 1 and 3 use the lesson's set-up, in short: the bundled reviews embedded once by the frozen encoder,
made 1:9 (every negative, 23 positives drawn per seed), split 49 / 21 / 30, a linear head with an L2 penalty.
"""
from importlib import resources
from itertools import pairwise

import numpy as np
import torch

from minift import Encoder, Tokenizer, losses, optim
from minift.batching import balanced_class_weights
from minift.data import LabelMap, encode_labels, read_table
from minift.heads import pool
from minift.metrics import precision, recall
from minift.splits import stratified_split

MODEL = "sentence-transformers/all-MiniLM-L6-v2"

rows = read_table(resources.files("minift") / "bundled" / "sentiment.csv", "text", "label")
labels = LabelMap.from_labels([e.label for e in rows])
MIN, y_all = labels.encode("positive"), encode_labels(rows, labels)
tokenizer, encoder = Tokenizer.from_pretrained(MODEL), Encoder.from_pretrained(MODEL).eval()
b = tokenizer([e.text for e in rows], max_length=64)
with torch.no_grad():
    X_all = pool(encoder, encoder(b["input_ids"], b["attention_mask"]), b["attention_mask"], "mean")  # (N, H)


def draw(seed: int) -> dict:
    """As the lesson: every majority row, one minority row for nine; 30 % test, 30 % of the rest validation."""
    major, minor = np.flatnonzero(y_all != MIN), np.flatnonzero(y_all == MIN)
    chosen = np.sort(np.concatenate([major, np.random.default_rng(seed).choice(minor, round(len(major) / 9), False)]))
    y = y_all[chosen].tolist()
    rest, test = stratified_split(y, 0.3, seed)
    train, valid = stratified_split([y[i] for i in rest], 0.3, seed)
    return {"train": chosen[[rest[i] for i in train]], "valid": chosen[[rest[i] for i in valid]],
            "test": chosen[test]}


def fit(loss_fn, idx, seed: int) -> torch.nn.Linear:
    torch.manual_seed(seed)
    head = torch.nn.Linear(X_all.shape[1], 2)
    opt = optim.AdamW(optim.param_groups(head, lr=1e-2, weight_decay=0.0))
    for _ in range(100):
        (loss_fn(head(X_all[idx]), y_all[idx]) + 0.03 * losses.l2_penalty([head.weight])).backward()
        opt.step()
        opt.zero_grad()
    return head


def minority_probability(head, idx) -> np.ndarray:
    with torch.no_grad():
        return head(X_all[idx]).softmax(-1)[:, MIN].numpy()


# 1. Focal loss with alpha. Alone, focal loss re-weights rows by how badly they are classified; alpha_c, one factor
#    per class, re-weights by class, as the cross-entropy's class weights do. With alpha = the balanced weights the
#    minority is found as often as with weighted cross-entropy, and far more often than with focal loss alone.
def focal(z, y):
    return losses.focal_loss(z, y, gamma=2.0)


def focal_alpha(z, y):
    return losses.focal_loss(z, y, gamma=2.0, alpha=balanced_class_weights(y.tolist(), 2))


def weighted(z, y):
    return losses.cross_entropy(z, y, weight=balanced_class_weights(y.tolist(), 2))


found = {name: [] for name in ("focal", "focal, alpha = class weights", "cross-entropy, class weights")}
for seed in range(10):
    s = draw(seed)
    for name, loss_fn in zip(found, (focal, focal_alpha, weighted)):
        pred = np.where(minority_probability(fit(loss_fn, s["train"], seed), s["test"]) >= 0.5, MIN, 1 - MIN)
        found[name].append(recall(y_all[s["test"]].numpy(), pred, pos_label=MIN, zero_division=0.0))
mean = {name: float(np.mean(r)) for name, r in found.items()}
print("minority recall on test, 10 seeds:", {name: round(m, 3) for name, m in mean.items()})
assert mean["focal, alpha = class weights"] > mean["focal"] + 0.1
assert abs(mean["focal, alpha = class weights"] - mean["cross-entropy, class weights"]) < 0.15

# 2. Class weights are oversampling made exact. Repeat every minority row 9 times: the plain mean cross-entropy over
#    the repeated rows, sum of 9 copies of each minority loss + the majority losses, over 9 n_min + n_maj rows, is
#    the weighted mean with w = (1, 9), which divides by the same sum of weights. Same loss, so same gradients.
g = torch.Generator().manual_seed(0)
x, y = torch.randn(20, 384, generator=g), torch.tensor([0] * 18 + [1] * 2)  # 1:9
head = torch.nn.Linear(384, 2)
repeated = torch.cat([torch.arange(18), torch.arange(18, 20).repeat(9)])
loss_rep = losses.cross_entropy(head(x[repeated]), y[repeated])
grad_rep = torch.autograd.grad(loss_rep, head.weight)[0]
loss_w = losses.cross_entropy(head(x), y, weight=torch.tensor([1.0, 9.0]))
grad_w = torch.autograd.grad(loss_w, head.weight)[0]
print(f"repeated rows: loss {loss_rep.item():.6f}; weights (1, 9): loss {loss_w.item():.6f}; "
      f"largest gradient difference {float((grad_rep - grad_w).abs().max()):.1e}")
assert torch.allclose(loss_rep, loss_w) and torch.allclose(grad_rep, grad_w, atol=1e-7)
#    Random oversampling (minift's --oversample) draws the repeats at random each epoch: the same in expectation,
#    noisier step by step; balanced weights n / (C n_c) are (1, 9) up to a common factor, which the mean cancels.

# 3. The trade-off a threshold makes, on the plain head's validation probabilities, pooled over 10 seeds (a seed's
#    validation set holds about 5 minority rows). Lowering the threshold can only find more of the minority (recall
#    never falls), and it buys them with majority rows taken for minority (precision tends to fall).
p_valid, y_valid = [], []
for seed in range(10):
    s = draw(seed)
    p_valid.append(minority_probability(fit(losses.cross_entropy, s["train"], seed), s["valid"]))
    y_valid.append(y_all[s["valid"]].numpy())
p_valid, y_valid = np.concatenate(p_valid), np.concatenate(y_valid)
sweep = {}
for t in np.round(np.arange(0.05, 0.96, 0.05), 2):
    pred = np.where(p_valid >= t, MIN, 1 - MIN)
    sweep[t] = (precision(y_valid, pred, pos_label=MIN, zero_division=0.0),
                recall(y_valid, pred, pos_label=MIN, zero_division=0.0))
    print(f"  threshold {t:.2f}: minority precision {sweep[t][0]:.3f}, recall {sweep[t][1]:.3f}")
ts = list(sweep)
assert all(sweep[a][1] >= sweep[b][1] for a, b in pairwise(ts))  # recall never rises with the threshold
highest = max(t for t in ts if sweep[t][1] >= 0.8)
print(f"the highest threshold that finds 80 % of the minority (on validation): {highest:.2f}; its precision "
      f"{sweep[highest][0]:.3f}, against {sweep[0.5][0]:.3f} at 0.5 (which finds {sweep[0.5][1]:.0%})")
assert highest < 0.5

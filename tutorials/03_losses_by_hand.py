"""Lesson 3: the losses by hand: cross-entropy from log-softmax, label smoothing, class weights, BCE for
multi-label, MSE for regression, and why every head outputs logits rather than probabilities.

Run:  python tutorials/03_losses_by_hand.py
(no model and no data: a second. There is no --full mode: nothing here depends on data, so there is nothing
to measure at scale; the flag is accepted and runs the same checks.)

Each loss is written out from its formula on a tiny batch, then checked against minift.losses and against
torch.nn.functional, in value and in gradient, in float64 so that any difference is a mistake, not rounding.

Read beside it: minift/losses.py (log_softmax, cross_entropy, binary_cross_entropy_with_logits, mse),
minift/batching.py (balanced_class_weights).
"""
import math

import torch
import torch.nn.functional as F

from course import arguments
from minift import losses
from minift.batching import balanced_class_weights

arguments(__doc__).parse_args()
torch.manual_seed(0)


def same(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    """Assert two values agree to float64 rounding, and say so."""
    assert torch.allclose(a, b, rtol=1e-10, atol=1e-12), (what, a, b)
    print(f"  {what}: equal (largest difference {float((a - b).abs().max()):.1e})")


def grad(loss_fn, x: torch.Tensor) -> torch.Tensor:
    """d loss / d x."""
    x = x.detach().requires_grad_()
    return torch.autograd.grad(loss_fn(x), x)[0]


# 1. Cross-entropy. A classifier head outputs logits x (N, C), one score per class. Softmax makes them
#    probabilities p_c = e^{x_c} / sum_c' e^{x_c'}; the loss is the mean of -log p_y, the surprise at the right
#    class. Written as log-probabilities, log p_c = x_c - log sum_c' e^{x_c'}: one subtraction, no division.
#    Its gradient is famous and worth checking: d loss / d x = (p - onehot(y)) / N.
x = torch.randn(5, 3, dtype=torch.float64)  # (N, C) logits
y = torch.tensor([0, 2, 1, 2, 0])  # (N,) classes
log_p = x - x.exp().sum(-1, keepdim=True).log()  # (N, C)
by_hand = -log_p[torch.arange(5), y].mean()
print(f"cross-entropy by hand {float(by_hand):.6f}")
same(by_hand, losses.cross_entropy(x, y), "minift.losses.cross_entropy")
same(by_hand, F.cross_entropy(x, y), "torch F.cross_entropy")
same(grad(lambda z: losses.cross_entropy(z, y), x), (log_p.exp() - F.one_hot(y, 3)) / 5, "gradient = (p - y) / N")
same(grad(lambda z: losses.cross_entropy(z, y), x), grad(lambda z: F.cross_entropy(z, y), x), "gradient vs torch")

# 2. Why log_softmax subtracts the max first. e^{x} overflows float32 above x = 88; logits that large happen
#    (a confident head, or fp16). Shifting by m = max_c x_c changes nothing mathematically (it cancels), but then
#    every exponent is <= 0 and the sum is between 1 and C: the log-sum-exp trick.
big = torch.tensor([[1000.0, 990.0, 0.0]])  # float32
naive = big - big.exp().sum(-1, keepdim=True).log()
stable = losses.log_softmax(big)
print(f"log-softmax of {big.tolist()[0]}: naive {naive.tolist()[0]}, shifted {stable.tolist()[0]}")
assert torch.isnan(naive).any() or torch.isinf(naive).any()
assert torch.allclose(stable, F.log_softmax(big, -1)) and torch.isfinite(stable).all()

# 3. Label smoothing (Szegedy et al. 2016): train towards q = (1 - eps) onehot(y) + eps / C instead of the
#    one-hot, so the loss is -sum_c q_c log p_c. Plain cross-entropy keeps rewarding a bigger margin forever; the
#    smoothed one is smallest at a finite margin. With two classes the best p_y is 1 - eps/2, so the best logit
#    gap is log((1 - eps/2) / (eps/2)): the gradient there is zero.
eps = 0.1
q = (1 - eps) * F.one_hot(y, 3).double() + eps / 3
by_hand = -(q * log_p).sum(-1).mean()
print(f"label-smoothed cross-entropy (eps={eps}) by hand {float(by_hand):.6f}")
same(by_hand, losses.cross_entropy(x, y, label_smoothing=eps), "minift, label_smoothing=0.1")
same(by_hand, F.cross_entropy(x, y, label_smoothing=eps), "torch, label_smoothing=0.1")
gap = math.log((1 - eps / 2) / (eps / 2))
at_gap = grad(lambda z: losses.cross_entropy(z, torch.tensor([0]), label_smoothing=eps),
              torch.tensor([[gap, 0.0]], dtype=torch.float64))
print(f"  two classes: the best gap is {gap:.3f} logits; the gradient there {at_gap.tolist()[0]}")
assert at_gap.abs().max() < 1e-12

# 4. Class weights. A rare class can be made to count more: L = sum_i w_{y_i} (-log p_{i,y_i}) / sum_i w_{y_i},
#    a weighted mean (the denominator is the weights, not N, so the loss keeps its scale). "Balanced" weights
#    n / (C n_c) make every class weigh the same in total (lesson 11 measures what that does to training).
y_rare = torch.tensor([0, 0, 0, 0, 1])  # 4 of class 0, 1 of class 1
x2 = torch.randn(5, 2, dtype=torch.float64)
w = balanced_class_weights(y_rare.tolist(), 2).double()  # (C,): 5/(2*4), 5/(2*1)
print(f"balanced weights for 4:1 {w.tolist()}")
assert torch.allclose(w, torch.tensor([5 / 8, 5 / 2], dtype=torch.float64))
nll = -(x2 - x2.exp().sum(-1, keepdim=True).log())[torch.arange(5), y_rare]
by_hand = (w[y_rare] * nll).sum() / w[y_rare].sum()
same(by_hand, losses.cross_entropy(x2, y_rare, weight=w), "minift, class weights")
same(by_hand, F.cross_entropy(x2, y_rare, weight=w), "torch, class weights")
same(grad(lambda z: losses.cross_entropy(z, y_rare, weight=w), x2),
     grad(lambda z: F.cross_entropy(z, y_rare, weight=w), x2), "gradient vs torch")

# 5. Multi-label: each of L labels is its own yes/no question (a text can be both "joy" and "gratitude"), so
#    a sigmoid per label, not a softmax over them, and binary cross-entropy averaged over all N x L entries:
#    -[y log s(x) + (1 - y) log(1 - s(x))], s the sigmoid. Its gradient is (s(x) - y) / (N L).
logits = torch.randn(4, 3, dtype=torch.float64)  # (N, L)
multi_hot = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]], dtype=torch.float64)
s = torch.sigmoid(logits)
by_hand = -(multi_hot * s.log() + (1 - multi_hot) * (1 - s).log()).mean()
print(f"multi-label BCE by hand {float(by_hand):.6f}")
same(by_hand, losses.binary_cross_entropy_with_logits(logits, multi_hot), "minift binary_cross_entropy_with_logits")
same(by_hand, F.binary_cross_entropy_with_logits(logits, multi_hot), "torch")
same(grad(lambda z: losses.binary_cross_entropy_with_logits(z, multi_hot), logits), (s - multi_hot) / 12,
     "gradient = (s - y) / (N L)")

# 6. Why heads output logits. Take a confident, wrong prediction: logit -120 for a true label (float32). The
#    sigmoid 1 / (1 + e^120) is about e^-120, which float32 cannot hold (e^120 is already inf), so it is 0:
#    log 0 = -inf, and the gradient is lost. torch's probability-space BCE hides this by clamping log at -100:
#    a finite but wrong loss of 100.
#    On logits, -log s(x) = softplus(-x) = max(-x, 0) + log(1 + e^-|x|): exactly 120, and gradient -1.
x_bad, target = torch.tensor([-120.0], requires_grad=True), torch.tensor([1.0])
prob = torch.sigmoid(x_bad)
via_prob = -(prob.log())
clamped = F.binary_cross_entropy(prob, target)
on_logits = losses.binary_cross_entropy_with_logits(x_bad, target)
(g,) = torch.autograd.grad(on_logits, x_bad)
print(f"logit -120, true label: sigmoid {prob.item():.1e}; -log(sigmoid) {via_prob.item():.0f}; torch BCE on the "
      f"probability {clamped.item():.0f}; on the logit {on_logits.item():.1f} with gradient {g.item():.1f}")
assert prob == 0 and torch.isinf(via_prob).all() and clamped == 100
assert on_logits == 120 and g == -1

# 7. Regression (a similarity score, a rating): one output per example and the mean squared error,
#    mean((x - y)^2), with gradient 2 (x - y) / N. One trap: a head gives (N, 1), the targets are (N,), and
#    (N, 1) - (N,) broadcasts to (N, N): every prediction against every target. torch only warns; minift refuses.
pred, score = torch.randn(4, 1, dtype=torch.float64), torch.tensor([0.5, 3.0, 4.2, 1.0], dtype=torch.float64)
by_hand = ((pred.squeeze(1) - score) ** 2).mean()
same(by_hand, losses.mse(pred.squeeze(1), score), "minift mse")
same(by_hand, F.mse_loss(pred.squeeze(1), score), "torch mse_loss")
same(grad(lambda z: losses.mse(z, score), pred.squeeze(1)), 2 * (pred.squeeze(1) - score) / 4, "gradient 2(x-y)/N")
broadcast = ((pred - score) ** 2).mean()
print(f"  (N, 1) against (N,) broadcast: {float(broadcast):.3f} instead of {float(by_hand):.3f}")
assert not torch.isclose(broadcast, by_hand)
try:
    losses.mse(pred, score)
    raise AssertionError("minift should refuse mismatched shapes")
except ValueError as e:
    print(f"  minift: {e}")

# Exercises (worked solutions in tutorials/solutions/03_losses_by_hand.py)
# 1. Two-class cross-entropy is binary cross-entropy in disguise: show that cross_entropy on logits (x0, x1)
#    equals binary_cross_entropy_with_logits on x1 - x0, in value and in gradient.
# 2. Integer class weights are repeated examples: show that cross-entropy with weights w equals the plain mean
#    over a batch where every example of class c appears w_c times.
# 3. Find the logit at which sigmoid-then-log first gives inf in float32, and in float64. Which logits do real
#    heads reach? (Hint: look at a trained model's largest logit in lesson 5.)

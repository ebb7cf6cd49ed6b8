"""Worked solutions to the exercises of lesson 3 (tutorials/03_losses_by_hand.py).

Run:  python tutorials/solutions/03_losses_by_hand.py
"""
import torch

from minift import losses

torch.manual_seed(0)

# 1. Two-class cross-entropy is BCE on the logit difference: p_1 = e^{x1} / (e^{x0} + e^{x1}) = sigmoid(x1 - x0),
#    so -log p_y is -log sigmoid(d) for y = 1 and -log(1 - sigmoid(d)) for y = 0, d = x1 - x0.
x = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)
y = torch.tensor([0, 1, 1, 0, 1, 0])
ce = losses.cross_entropy(x, y)
bce = losses.binary_cross_entropy_with_logits(x[:, 1] - x[:, 0], y.double())
g_ce, = torch.autograd.grad(ce, x)
g_bce, = torch.autograd.grad(bce, x)
print(f"two-class cross-entropy {ce.item():.6f} = BCE on x1 - x0 {bce.item():.6f}")
assert torch.allclose(ce, bce) and torch.allclose(g_ce, g_bce)

# 2. Integer class weights = repeated examples: sum_i w_{y_i} l_i / sum_i w_{y_i} is the plain mean over a batch
#    holding each example w_{y_i} times.
w = torch.tensor([1.0, 3.0], dtype=torch.float64)
repeat = w[y].long()
weighted = losses.cross_entropy(x, y, weight=w)
repeated = losses.cross_entropy(x.repeat_interleave(repeat, dim=0), y.repeat_interleave(repeat))
print(f"weights (1, 3): {weighted.item():.6f}; class 1 repeated three times: {repeated.item():.6f}")
assert torch.allclose(weighted, repeated)


# 3. sigmoid(x) = 1 / (1 + e^-x). For x << 0, e^-x overflows to inf once -x passes log of the largest number
#    of the dtype (88.7 in float32, 709.8 in float64), and 1 / inf = 0. (Even computed as e^x / (1 + e^x) it
#    would reach 0 a little later, below the smallest subnormal: e^-103.3, e^-744.4.) Bisect for the cliff.
def first_inf(dtype) -> float:
    lo, hi = -2000.0, 0.0  # log(sigmoid(lo)) is -inf, log(sigmoid(hi)) is finite
    for _ in range(60):
        mid = (lo + hi) / 2
        if torch.isinf(torch.sigmoid(torch.tensor(mid, dtype=dtype)).log()):
            lo = mid
        else:
            hi = mid
    return lo


x32, x64 = first_inf(torch.float32), first_inf(torch.float64)
print(f"log(sigmoid(x)) is -inf below x = {x32:.1f} in float32 and {x64:.1f} in float64")
assert -104 < x32 < -88 and -745 < x64 < -709
#    Fine-tuned heads rarely pass |logit| 20; the danger is in fp16 / bf16, whose exponent range is far smaller,
#    and in losses written by hand: on logits (softplus) there is no such cliff at all.
assert losses.binary_cross_entropy_with_logits(torch.tensor([x32 - 10]), torch.tensor([1.0])).isfinite()

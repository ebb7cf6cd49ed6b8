"""Worked solutions to the exercises of lesson 9 (tutorials/09_overfitting.py).

Run:  python tutorials/solutions/09_overfitting.py

No encoder here: random vectors with a label that depends on a few of their coordinates stand in for the
sentence vectors, which is enough to see what each penalty does to the weights.
"""
import torch

from minift import losses, optim

g = torch.Generator().manual_seed(0)
x = torch.randn(40, 384, generator=g)  # (N, H): 40 rows, as the lesson's smallest set
y = (x[:, :5].sum(-1) > 0).long()  # the label depends on 5 of the 384 coordinates


def first_layer(l1=0.0, l2=0.0, epochs=300) -> torch.Tensor:
    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.Linear(384, 256), torch.nn.GELU(), torch.nn.Linear(256, 2))
    opt = optim.AdamW(optim.param_groups(head, lr=1e-3, weight_decay=0.0))
    for _ in range(epochs):
        params = optim.decayed_params(head)
        loss = losses.cross_entropy(head(x), y) + l1 * losses.l1_penalty(params) + l2 * losses.l2_penalty(params)
        loss.backward()
        opt.step()
        opt.zero_grad()
    return head[0].weight.detach()


# 1. L1's gradient is l1 * sign(w), the same size however small w is, so it drives weights that the loss does not
#    need all the way to 0 (Adam's steps then hover within about lr of it); L2's gradient 2 l2 w fades as w
#    shrinks, so weights only approach 0. Count the near-zero weights of the first layer: L2 brings many of them
#    near 0, L1 nearly all (only 5 of the 384 inputs matter to the label).
tiny = {name: int((first_layer(**kw).abs() < 1e-3).sum()) for name, kw in
        (("none", {}), ("L2 0.01", {"l2": 0.01}), ("L1 0.01", {"l1": 0.01}))}
print("first-layer weights below 1e-3 of", 384 * 256, ":", tiny)
assert tiny["L1 0.01"] > 0.9 * 384 * 256 and tiny["L1 0.01"] > 2 * tiny["L2 0.01"] > 2 * tiny["none"]


# 2. Under SGD, the L2 penalty lambda * sum w² and weight_decay 2 lambda are the same update at every step, so
#    they stay equal (to rounding) over any number of steps.
def sgd_path(l2=0.0, weight_decay=0.0, steps=10) -> torch.Tensor:
    torch.manual_seed(0)
    head = torch.nn.Linear(384, 2)
    opt = optim.SGD([head.weight], lr=0.1, momentum=0.9, weight_decay=weight_decay)
    for _ in range(steps):
        (losses.cross_entropy(head(x), y) + l2 * losses.l2_penalty([head.weight])).backward()
        opt.step()
        opt.zero_grad()
    return head.weight.detach()


lam = 0.05
a, b = sgd_path(l2=lam), sgd_path(weight_decay=2 * lam)
print(f"SGD with momentum, 10 steps: L2 {lam} vs weight_decay {2 * lam}: "
      f"largest difference {float((a - b).abs().max()):.1e}")
assert torch.allclose(a, b, atol=1e-6)

"""Worked solutions to the exercises of lesson 6 (tutorials/06_optimisers_and_learning_rates.py).

Run:  python tutorials/solutions/06_optimisers_and_learning_rates.py
"""
import torch

from minift import Encoder, optim
from minift.tasks.sentence import SentenceModel

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def descend(f, make_optimizer, steps: int) -> torch.Tensor:
    w = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    opt = make_optimizer([w])
    for _ in range(steps):
        opt.zero_grad()
        f(w).backward()
        opt.step()
    return w.detach()


def f(w):
    return 0.5 * (w[0] ** 2 + 100 * w[1] ** 2)


# 1. SGD on w2: w2 <- w2 - lr * 100 w2 = (1 - 100 lr) w2. It shrinks iff |1 - 100 lr| < 1, i.e. 0 < lr < 2 / 100:
#    at lr = 0.02 it flips sign at the same size forever, above it grows. Either side of the border, 200 steps:
below = descend(f, lambda p: optim.SGD(p, lr=0.019), 200)
at = descend(f, lambda p: optim.SGD(p, lr=0.02), 200)
above = descend(f, lambda p: optim.SGD(p, lr=0.021), 200)
print(f"w2 after 200 steps: lr 0.019 {below[1]:.2e}, lr 0.02 {at[1]:.2e}, lr 0.021 {above[1]:.2e}")
assert abs(below[1]) < 1e-6 and abs(at[1]) == 1.0 and abs(above[1]) > 1e6


# 2. Scale the loss by 1,000: SGD's step lr * g is 1,000 times larger, so lr must shrink 1,000 times (to 1e-5) to
#    take the step that lr 0.01 took on f; Adam's first step is lr * g / |g|, the same as before (up to eps).
def f1000(w):
    return 1000 * f(w)


sgd_step = 1 - descend(f1000, lambda p: optim.SGD(p, lr=1e-5), 1)
adam_step, adam_step_1000 = (1 - descend(g, lambda p: optim.Adam(p, lr=0.1), 1) for g in (f, f1000))
print(f"first steps, loss x1000: SGD lr 1e-5 {sgd_step.tolist()}, Adam {adam_step_1000.tolist()} "
      f"(Adam on f: {adam_step.tolist()})")
assert torch.allclose(sgd_step, torch.tensor([0.01, 1.0], dtype=torch.float64))
assert torch.allclose(adam_step, adam_step_1000, atol=1e-9)

# 3. Layer-wise decay 0.8: depth k gets lr * 0.8^(L + 1 - k), L = 6: head and pooler (depth 7) lr, layer 5
#    (depth 6) 0.8 lr, ..., embeddings (depth 0) 0.8^7 lr, 4.8 times smaller than the head's.
model = SentenceModel(Encoder.from_pretrained(MODEL), num_outputs=2)
groups = optim.param_groups(model, lr=1e-4, weight_decay=0.01, layer_decay=0.8)
rates = {optim.layer_depth(g["param_names"][0], 6): g["lr"] for g in groups}  # depth -> learning rate
for depth, rate in sorted(rates.items()):
    print(f"  depth {depth} ({['embeddings', *[f'layer {i}' for i in range(6)], 'pooler and head'][depth]}): "
          f"lr {rate:.3e}")
assert abs(rates[7] - 1e-4) < 1e-15 and abs(rates[6] - 0.8e-4) < 1e-15 and abs(rates[0] - 1e-4 * 0.8 ** 7) < 1e-15
assert any("head.out.weight" in g["param_names"] and g["lr"] == rates[7] for g in groups)
print(f"head / embeddings = {rates[7] / rates[0]:.2f}")

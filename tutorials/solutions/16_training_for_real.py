"""Worked solutions to the exercises of lesson 16 (tutorials/16_training_for_real.py).

Run:  python tutorials/solutions/16_training_for_real.py

No model: each answer needs only a few tensors.
"""
import torch

from minift import losses

# 1. A token-level loss over two micro-batches of 3 and 30 tokens. The weight each token's loss gets in the
#    update is d(update loss) / d(that token's loss): averaging each micro-batch and then the two averages gives
#    1 / (2 * 3) to a token of the short one and 1 / (2 * 30) to one of the long one, ten times less; minift sums
#    every token's loss and divides once by the 33 tokens, so each gets 1 / 33, as one batch of 33 would.
g = torch.Generator().manual_seed(0)
logits = [torch.randn(n, 5, generator=g, requires_grad=True) for n in (3, 30)]  # (tokens, classes) each
labels = [torch.randint(0, 5, (n,), generator=g) for n in (3, 30)]


def token_weights(update_loss) -> list[torch.Tensor]:
    """How much each token's own loss counts in `update_loss(per_token_losses)`, by autograd."""
    per_token = [losses.cross_entropy(z, y, reduction="none").detach().requires_grad_() for z, y in zip(logits, labels)]
    update_loss(per_token).backward()
    return [t.grad for t in per_token]


mean_of_means = token_weights(lambda ls: (ls[0].mean() + ls[1].mean()) / 2)
sum_over_count = token_weights(lambda ls: (ls[0].sum() + ls[1].sum()) / (len(ls[0]) + len(ls[1])))
ratio = float(mean_of_means[0][0] / mean_of_means[1][0])
print(f"1. mean of means: a short-batch token weighs {ratio:.0f}x a long-batch one; sum / count: every token 1/33 "
      f"({float(sum_over_count[0][0]):.5f})")
assert abs(ratio - 10) < 1e-6
assert all(torch.allclose(w, torch.full_like(w, 1 / 33)) for w in sum_over_count)

# 2. Dropout draws its mask from torch's generator. Save its state, draw, restore it, draw again: the same masks,
#    which is what rng.safetensors in a checkpoint gives a resumed run. Without the restore, other masks.
dropout = torch.nn.Dropout(0.1)
x = torch.ones(1000)
state = torch.get_rng_state()
first = dropout(x)
torch.set_rng_state(state)
again = dropout(x)
other = dropout(x)
print(f"2. masks after restoring the state equal: {torch.equal(first, again)}; the next draw equal: "
      f"{torch.equal(first, other)}")
assert torch.equal(first, again) and not torch.equal(first, other)

# 3. The smallest x with 1 + x != 1 is the type's eps (the gap after 1): bf16 has 7 mantissa bits, fp16 10, fp32
#    23. The largest finite value shows the range: bf16 reaches float32's 3.4e38, fp16 only 65504, and its smallest
#    normal number is 6.1e-5: small gradients underflow to 0 in fp16 unless the loss is scaled up first (the
#    GradScaler of minift/precision.py), which bf16 does not need.
for dtype in (torch.bfloat16, torch.float16, torch.float32):
    info = torch.finfo(dtype)
    x = torch.tensor(1.0, dtype=dtype)
    while 1 + x / 2 != 1:  # halve until 1 + x/2 rounds back to 1
        x = x / 2
    assert float(x) == info.eps and float(torch.tensor(1, dtype=dtype) + x) != 1
    print(f"3. {dtype!s:15} eps {info.eps:.1e}  largest {info.max:.1e}  smallest normal {info.tiny:.1e}")
assert torch.finfo(torch.bfloat16).max > 1e38 > torch.finfo(torch.float16).max

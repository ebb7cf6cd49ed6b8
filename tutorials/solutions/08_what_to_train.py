"""Worked solutions to the exercises of lesson 8 (tutorials/08_what_to_train.py).

Run:  python tutorials/solutions/08_what_to_train.py
"""
import copy
from collections import Counter

from minift import Encoder, optim
from minift.freeze import apply_freeze, count_parameters, gradual_unfreeze
from minift.lora import apply_lora
from minift.tasks.sentence import SentenceModel

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
pretrained = Encoder.from_pretrained(MODEL)
H, I, L, head = 384, 1536, 6, 384 * 2 + 2  # hidden size, feed-forward size, layers, the head's parameters


def fresh() -> SentenceModel:
    return SentenceModel(copy.deepcopy(pretrained), num_outputs=2, pooling="mean")


# 1. LoRA adds r x (in + out) per adapted matrix. Per layer with r = 4: query, key, value and the attention output
#    are H -> H (4 x 768 each); the feed-forward up is H -> I and down I -> H (4 x 1,920 each).
r = 4
per_layer = 4 * r * (H + H) + 2 * r * (H + I)
by_hand = L * per_layer + head
model = apply_lora(fresh(), r=r, alpha=8, targets="all")
print(f"LoRA r=4 on all six targets: {per_layer:,} per layer, {by_hand:,} with the head; "
      f"count_parameters: {count_parameters(model)[0]:,}")
assert count_parameters(model)[0] == by_hand == 166_658

# 2. Step 3 of 10 is unfreezing stage 3 * 8 // 10 = 2: parameters of depth >= L + 1 - 2 = 5 train, that is
#    layers 4 and 5 (depths 5, 6), the pooler (7), and the head (outside the encoder, always).
model = gradual_unfreeze(fresh(), 3 * 8 // 10)
depths = sorted({optim.layer_depth(n, L) for n, p in model.encoder.named_parameters() if p.requires_grad})
print(f"training at step 3: encoder depths {depths} and the head")
assert depths == [5, 6, 7] and all(p.requires_grad for p in model.head.parameters())

# 3. The encoder's biases, by kind: per layer 4 x 384 in attention, 1,536 + 384 in the feed-forward, 2 x 384 in
#    the LayerNorms; then the embeddings' LayerNorm and the pooler. The feed-forward up bias is the largest.
kinds = Counter()
for name, p in pretrained.named_parameters():
    if name.endswith(".bias"):
        kinds[name.split(".", 2)[-1] if name.startswith("layers.") else name] += p.numel()
for kind, n in kinds.most_common():
    print(f"  {kind:24} {n:7,}")
total = sum(kinds.values())
print(f"encoder biases: {total:,}; BitFit trains them and the head: {total + head:,}")
assert total == L * (4 * H + I + H + 2 * H) + 2 * H == 26_112
assert count_parameters(apply_freeze(fresh(), "bias-only"))[0] == total + head
assert kinds.most_common(1)[0][0] == "ffn.up.bias"

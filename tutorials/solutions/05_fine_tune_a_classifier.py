"""Worked solutions to the exercises of lesson 5 (tutorials/05_fine_tune_a_classifier.py).

Run:  python tutorials/solutions/05_fine_tune_a_classifier.py
"""
from minift import Encoder, optim
from minift.tasks.sentence import SentenceModel

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
model = SentenceModel(Encoder.from_pretrained(MODEL), num_outputs=2)

# 1. The head is one linear layer H -> C: 384 x 2 weights and 2 biases, next to about 22.7 million pretrained ones.
encoder_n = sum(p.numel() for p in model.encoder.parameters())
head_n = sum(p.numel() for p in model.head.parameters())
print(f"encoder {encoder_n:,} parameters, head {head_n:,}: the new part is {100 * head_n / (encoder_n + head_n):.4f} %")
assert head_n == 384 * 2 + 2 and encoder_n > 20_000_000

# 2. No weight decay on anything with fewer than two dimensions: biases and LayerNorm scales and shifts.
groups = optim.param_groups(model, lr=1e-4, weight_decay=0.01)
exempt = [name for g in groups if g["weight_decay"] == 0 for name in g["param_names"]]
print(f"{len(exempt)} tensors without weight decay, e.g. {exempt[:3]}")
assert exempt and all(name.endswith("bias") or "norm" in name.lower() for name in exempt)

# 3. Linear warmup over 3 steps, then linear decay to 0 at step 30: the first update has multiplier 0, the peak
#    (1.0) is at step 3.
multipliers = [optim.linear(step, 30, 3) for step in range(30)]
print("multipliers:", " ".join(f"{m:.2f}" for m in multipliers))
assert multipliers[0] == 0 and max(multipliers) == multipliers[3] == 1.0

"""Worked solutions to the exercises of lesson 1 (tutorials/01_what_the_encoder_computes.py).

Run:  python tutorials/solutions/01_what_the_encoder_computes.py
"""
import torch
import torch.nn.functional as F

from minift import Encoder, Tokenizer
from minift.encoder import additive_mask, attention_reference
from minift.heads import pool

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
tokenizer, encoder = Tokenizer.from_pretrained(MODEL), Encoder.from_pretrained(MODEL).eval()


def vectors(sentences, how):
    b = tokenizer(sentences)
    with torch.no_grad():
        h = encoder(b["input_ids"], b["attention_mask"])
    return F.normalize(pool(encoder, h, b["attention_mask"], how), dim=-1), h, b


# 1. [CLS] against the mean. Both rank the paraphrase first here, but the mean separates them by more: the model
#    was trained (by sentence-transformers) to make mean vectors comparable, not [CLS] vectors.
sentences = ["A cat sits on the mat.", "A kitten is sitting on a rug.", "Stock prices fell sharply today."]
gaps = {}
for how in ("mean", "cls"):
    v = vectors(sentences, how)[0]
    sim = v @ v.T
    gaps[how] = float(sim[0, 1] - sim[0, 2])
    print(f"{how:4}: cat/kitten {float(sim[0, 1]):.3f}, cat/stocks {float(sim[0, 2]):.3f}")
assert gaps["mean"] > 0 and gaps["mean"] > gaps["cls"]

# 2. Word order. Position vectors are added to the word vectors, so the same words in another order give other
#    token vectors; the mean of them stays close, though: a mean-pooled vector is nearly a bag of words.
v, h, b = vectors(["the dog bit the man", "the man bit the dog"], "mean")
dog = tokenizer.token_to_id("dog")
i, j = (b["input_ids"][k].tolist().index(dog) for k in range(2))
token_cos = float(F.cosine_similarity(h[0, i], h[1, j], dim=0))
print(f"mean vectors: cosine {float(v[0] @ v[1]):.3f}; the vector of 'dog' in each: cosine {token_cos:.3f}")
assert float(v[0] @ v[1]) > 0.9 and token_cos < float(v[0] @ v[1])

# 3. The formula against torch's fused kernel, with the last two keys of the second row masked.
q, k, v = (torch.randn(2, 3, 5, 8) for _ in range(3))  # (B, heads, T, d)
mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
additive = additive_mask(mask, torch.float32)  # (B, 1, 1, T)
ours = attention_reference(q, k, v, additive)
theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=additive)
print(f"attention_reference vs scaled_dot_product_attention: {float((ours - theirs).abs().max()):.1e}")
assert torch.allclose(ours, theirs, atol=1e-6)

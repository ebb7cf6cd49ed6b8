"""Lesson 1: what a pretrained encoder computes, and how we know minift computes it right.

Run:  python tutorials/01_what_the_encoder_computes.py
(needs the all-MiniLM-L6-v2 checkpoint: from the Hub, or offline with HF_HUB_CACHE pointing at a cache)

Read beside it: minift/tokenizer.py, minift/encoder.py.
"""
import torch

from minift import Encoder, Tokenizer
from minift.encoder import additive_mask, attention_reference

MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# 1. Text becomes token ids. WordPiece splits rare words into pieces ("##" marks a continuation), and the
#    tokenizer adds [CLS] at the start and [SEP] at the end. Shorter rows are padded; the attention mask says
#    which positions are real (1) and which are padding (0).
tokenizer = Tokenizer.from_pretrained(MODEL)
batch = tokenizer(["Fine-tuning is easy.", "Tokenizers split unbelievably long words."])
for ids in batch["input_ids"]:
    print(tokenizer.convert_ids_to_tokens(ids))
print("attention mask:", batch["attention_mask"].tolist())

# 2. The encoder turns every token into a vector that depends on the whole sentence: (B, T) -> (B, T, H).
encoder = Encoder.from_pretrained(MODEL).eval()
with torch.no_grad():
    hidden = encoder(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
print("hidden states:", tuple(hidden.shape), "= (sentences, tokens, hidden size)")

# 3. Inside every layer, attention mixes the tokens: softmax(Q Kᵀ / √d + mask) V. minift has the formula written
#    out (attention_reference) and a fast fused kernel (scaled_dot_product_attention); they agree.
with torch.no_grad():
    fast = encoder(batch["input_ids"], batch["attention_mask"])
    slow = encoder.use_reference_attention(True)(batch["input_ids"], batch["attention_mask"])
    encoder.use_reference_attention(False)
real = batch["attention_mask"].bool()
print("fast vs formula, largest difference on real tokens:", float((fast[real] - slow[real]).abs().max()))
assert (fast[real] - slow[real]).abs().max() < 1e-5

# 4. The padding mask in action: a padded position gets -inf-like scores, so it receives no attention weight.
q = k = v = torch.randn(1, 1, 3, 4)
mask = additive_mask(torch.tensor([[1, 1, 0]]), torch.float32)  # the third token is padding
weights = (q @ k.transpose(-2, -1) / 2 + mask).softmax(-1)
print("attention weights on the padded token:", weights[0, 0, :, 2].tolist())
assert weights[0, 0, :, 2].max() == 0
assert torch.allclose(attention_reference(q, k, v, mask), weights @ v)

# 5. One vector per sentence: the pretrained pooler reads the [CLS] vector; the mean of real tokens is what
#    sentence-transformers trained this model for. Similar sentences get similar mean vectors.
sentences = ["A cat sits on the mat.", "A kitten is sitting on a rug.", "Stock prices fell sharply today."]
b = tokenizer(sentences)
with torch.no_grad():
    h = encoder(b["input_ids"], b["attention_mask"])
m = b["attention_mask"].unsqueeze(-1).float()
mean = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1)
similarity = mean @ mean.T
print("cosine similarity cat/kitten:", round(float(similarity[0, 1]), 3), " cat/stocks:",
      round(float(similarity[0, 2]), 3))
assert similarity[0, 1] > similarity[0, 2]

# Exercises (worked solutions in tutorials/solutions/01_what_the_encoder_computes.py)
# 1. Pool with the [CLS] vector instead of the mean (minift.heads.pool(encoder, h, mask, "cls")). Does it still
#    rank cat/kitten above cat/stocks? By how much less? (This model was trained for the mean.)
# 2. Does the encoder see word order? Compare "the dog bit the man" with "the man bit the dog": the cosine of their
#    mean vectors, and the vector of "dog" in each.
# 3. Check attention_reference against torch's scaled_dot_product_attention on random q, k, v with a padding mask.

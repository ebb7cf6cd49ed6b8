"""Lesson 1: what a pretrained encoder computes, and how we know minift computes it right.

Run:  python tutorials/01_what_the_encoder_computes.py          (seconds: a handful of sentences)
      python tutorials/01_what_the_encoder_computes.py --full   (1,000 SST-2 sentences against Hugging Face's
                                                                 tokenizer and transformers' BertModel; writes
                                                                 tutorials/results/01_what_the_encoder_computes.json)
(needs the all-MiniLM-L6-v2 checkpoint: from the Hub, or offline with HF_HUB_CACHE pointing at a cache; --full
also needs transformers, the oracle, a test-only extra)

Read beside it: minift/tokenizer.py, minift/encoder.py.

The measurement, from tutorials/results/01_what_the_encoder_computes.json (the --full command above, on an AMD EPYC
with 2 cores shared with other jobs, one torch thread, torch 2.13.0+cpu; 36 CPU seconds): 1,000 SST-2 sentences
(13,091 real tokens), all 1,000 tokenized to the same ids as Hugging Face's tokenizer; the largest difference of
any hidden-state value on a real token from transformers' BertModel 5.1e-6, and between the fast attention and the
formula 5.7e-6: float32 rounding, nothing more.
"""
import random

import torch

from course import MODEL, arguments, load, save
from minift import Encoder, Tokenizer
from minift.data import read_table
from minift.encoder import additive_mask, attention_reference

args = arguments(__doc__).parse_args()

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

# 6. The same checks at scale, on real text (--full): 1,000 SST-2 sentences drawn with seed 0, 50 at a time.
#    minift's tokenizer against Hugging Face's (the same ids?), minift's hidden states against transformers'
#    BertModel loaded from the same checkpoint and fed the same ids, and the fast attention against the formula.
#    Float32 sums in a different order differ in the last bits, so "the same" means a difference near 1e-6.


def compare(texts: list[str], hf_tokenizer, hf_model) -> dict:
    """Token ids equal to Hugging Face's (count of rows), and the largest |difference| on real tokens of the last
    hidden states, (N, T, H), minift vs transformers and fast vs formula attention."""
    same, vs_hf, vs_formula, tokens = 0, 0.0, 0.0, 0
    for i in range(0, len(texts), 50):
        chunk = texts[i:i + 50]
        b = tokenizer(chunk, max_length=128)
        theirs = hf_tokenizer(chunk, max_length=128, truncation=True)["input_ids"]
        ours = [ids[:int(m.sum())] for ids, m in zip(b["input_ids"].tolist(), b["attention_mask"])]
        same += sum(a == t for a, t in zip(ours, theirs))
        real = b["attention_mask"].bool()  # (B, T)
        with torch.no_grad():
            fast = encoder(b["input_ids"], b["attention_mask"], b["token_type_ids"])  # (B, T, H)
            slow = encoder.use_reference_attention(True)(b["input_ids"], b["attention_mask"], b["token_type_ids"])
            encoder.use_reference_attention(False)
            hf = hf_model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                          token_type_ids=b["token_type_ids"]).last_hidden_state  # (B, T, H)
        vs_hf = max(vs_hf, float((fast[real] - hf[real]).abs().max()))
        vs_formula = max(vs_formula, float((fast[real] - slow[real]).abs().max()))
        tokens += int(real.sum())
    return {"sentences": len(texts), "tokens": tokens, "same_token_ids": same,
            "max_abs_difference_vs_transformers": vs_hf, "max_abs_difference_fast_vs_formula": vs_formula}


if args.full:
    # transformers is the oracle here; minift itself never imports it
    from transformers import AutoModel, AutoTokenizer
    rows = read_table(args.data_dir / "sst2" / "train.tsv", "sentence", "label")
    texts = [e.text for e in random.Random(0).sample(rows, 1000)]
    result = compare(texts, AutoTokenizer.from_pretrained(MODEL), AutoModel.from_pretrained(MODEL).eval())
    print(result)
    assert result["same_token_ids"] == len(texts)
    assert result["max_abs_difference_vs_transformers"] < 1e-5 and result["max_abs_difference_fast_vs_formula"] < 1e-5
    save("01_what_the_encoder_computes", {"data": "SST-2 train.tsv, 1,000 sentences drawn with seed 0, max_length 128",
                                           "oracle": "transformers AutoTokenizer and AutoModel (BertModel), same "
                                                     "checkpoint", **result})
else:
    committed = load("01_what_the_encoder_computes")
    if committed:
        print(f"the committed --full run: {committed['same_token_ids']} of {committed['sentences']} SST-2 sentences "
              f"tokenized alike; largest difference from transformers "
              f"{committed['max_abs_difference_vs_transformers']:.1e}")

# Exercises (worked solutions in tutorials/solutions/01_what_the_encoder_computes.py)
# 1. Pool with the [CLS] vector instead of the mean (minift.heads.pool(encoder, h, mask, "cls")). Does it still
#    rank cat/kitten above cat/stocks? By how much less? (This model was trained for the mean.)
# 2. Does the encoder see word order? Compare "the dog bit the man" with "the man bit the dog": the cosine of their
#    mean vectors, and the vector of "dog" in each.
# 3. Check attention_reference against torch's scaled_dot_product_attention on random q, k, v with a padding mask.

"""Worked solutions to the exercises of lesson 2 (tutorials/02_tokenization_and_padding.py).

Run:  python tutorials/solutions/02_tokenization_and_padding.py
"""
from importlib import resources

import torch

from minift import Encoder, Tokenizer
from minift.batching import length_bucketed_batches, random_batches
from minift.data import read_table

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
tokenizer = Tokenizer.from_pretrained(MODEL)


def tokens(text):
    return tokenizer.convert_ids_to_tokens(tokenizer(text, return_tensors=None)["input_ids"][0])[1:-1]


# 1. The normalizer lower-cases and strips accents before WordPiece sees the text (BertNormalizer with
#    lowercase=True; strip_accents follows lowercase), so "Café" and "cafe" are the same token. A made-up word
#    falls apart into pieces the vocabulary has; it never becomes [UNK] while single letters are in the vocabulary.
print("Café ->", tokens("Café"), "  cafe ->", tokens("cafe"))
assert tokens("Café") == tokens("cafe") == ["cafe"]
print("Zyxtrobulate ->", tokens("Zyxtrobulate"))
assert len(tokens("Zyxtrobulate")) > 1 and tokenizer.unk_token not in tokens("Zyxtrobulate")

# 2. Left padding. BERT's position ids are 0, 1, 2, ... over the whole row, so pads in front push every real
#    token to a later position: it gets another position vector, and the output changes. The mask alone cannot
#    fix it; the position ids would have to count real tokens only (cumsum(mask) - 1, as RoBERTa does, and as
#    decoders do when they batch prompts padded on the left). Right padding, minift's choice, needs nothing.
encoder = Encoder.from_pretrained(MODEL).eval()
ids = tokenizer("A quiet film.")["input_ids"]  # (1, n)
n, pad = ids.shape[1], 4
left = torch.cat([torch.full((1, pad), tokenizer.pad_id), ids], dim=1)
mask = torch.cat([torch.zeros(1, pad, dtype=torch.long), torch.ones(1, n, dtype=torch.long)], dim=1)
with torch.no_grad():
    alone = encoder(ids)[0]
    shifted = encoder(left, mask)[0, pad:]
print(f"left-padded by {pad}: largest difference on the real tokens {float((alone - shifted).abs().max()):.2f}")
assert (alone - shifted).abs().max() > 1e-2

# 3. chunk_batches. Each chunk of chunk_batches x batch_size shuffled examples is sorted by length before it is
#    cut, so bigger chunks give batches of more similar lengths (less padding) but a less random epoch. With a
#    chunk of one batch, sorting inside a batch changes nothing: the padding of random batches, exactly.
texts = [e.text for e in read_table(resources.files("minift") / "bundled" / "sentiment.csv", "text", "label")]
lengths = [len(x) for x in tokenizer(texts, padding=False, return_tensors=None)["input_ids"]]


def padding_share(batches):
    computed = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1 - sum(lengths) / computed


shares = {chunk: padding_share(length_bucketed_batches(lengths, 16, 0, 0, chunk_batches=chunk))
          for chunk in (1, 5, 10, 50)}
print("padding share by chunk_batches:", {k: round(v, 3) for k, v in shares.items()})
assert shares[1] == padding_share(random_batches(len(lengths), 16, 0, 0))
assert shares[1] > shares[5] > shares[10] >= shares[50]

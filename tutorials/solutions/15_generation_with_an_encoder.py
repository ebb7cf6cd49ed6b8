"""Worked solutions to the exercises of lesson 15 (tutorials/15_generation_with_an_encoder.py).

Run:  python tutorials/solutions/15_generation_with_an_encoder.py
"""
from importlib import resources

import torch

from minift import Encoder, Tokenizer
from minift.generate import beam_search, greedy
from minift.tasks.seq2seq import Seq2SeqTask
from minift.unilm import seq2seq_mask

MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# 1. Row 0: S = 2, L = 4 (two pads); row 1: S = 3, L = 6. Against a causal mask (j <= i on the real tokens), the
#    differences are the source cells above the diagonal: a source token may read source tokens after it, since
#    the whole source is given before generation starts (it is encoded bidirectionally, like BERT reads).
masks = seq2seq_mask(torch.tensor([2, 3]), torch.tensor([4, 6]), 6).int()  # (2, T, T)
for b, (S, L) in enumerate(((2, 4), (3, 6))):
    print(f"row {b} (S = {S}, L = {L}):")
    for row in masks[b].tolist():
        print("   ", row)
    causal = torch.tensor([[int(j <= i < L or i == j) for j in range(6)] for i in range(6)])
    differ = (masks[b] != causal).nonzero().tolist()
    print(f"  cells that differ from causal: {differ}")
    assert differ == [[i, j] for i in range(S) for j in range(S) if j > i]

# 2. Beam search keeps the K best prefixes; with K = 1 it keeps the best one, as greedy does: the same tokens.
#    (The pretrained model, untrained for the task, is enough to check that: the outputs need not be good.)
tokenizer = Tokenizer.from_pretrained(MODEL)
task = Seq2SeqTask("seq2seq", tokenizer, {"text": "source", "label": "target"}, max_length=64, max_target_length=12)
rows = task.read(resources.files("minift") / "bundled" / "generation.csv")[:4]
model = task.build_model(Encoder.from_pretrained(MODEL)).eval()
sources = [f["source_ids"] for f in task.featurize(rows, with_labels=False)]
g = greedy(model, sources, tokenizer.sep_id, tokenizer.pad_id, max_new_tokens=12)
b = beam_search(model, sources, tokenizer.sep_id, tokenizer.pad_id, beams=1, max_new_tokens=12)
print("greedy:", [tokenizer.decode(ids) for ids, _ in g][:2])
assert [ids for ids, _ in g] == [ids for ids, _ in b]
print("beam search with one beam = greedy on", len(sources), "sources")

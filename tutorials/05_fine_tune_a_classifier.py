"""Lesson 5: fine-tuning, step by step: a head on the encoder, a loss, AdamW, and a few hundred sentences.

Run:  python tutorials/05_fine_tune_a_classifier.py [--steps 30]
`python -m minift.train` does the same with every option; this lesson writes the loop out in a page.

Read beside it: minift/tasks/sentence.py, minift/optim.py, minift/train.py.
"""
import argparse
import math
from importlib import resources

import torch

from minift import Encoder, Tokenizer, optim
from minift.batching import random_batches, collate
from minift.data import LabelMap, encode_labels, read_table, stratified_split
from minift.losses import cross_entropy
from minift.tasks.sentence import SentenceModel

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=30)
args = ap.parse_args()
torch.manual_seed(0)

# 1. Data: the bundled reviews, labels mapped to ids, a stratified 80/20 split.
examples = read_table(resources.files("minift") / "bundled" / "sentiment.csv", "text", "label")
labels = LabelMap.from_labels([e.label for e in examples])
y = encode_labels(examples, labels)
train_idx, valid_idx = stratified_split([e.label for e in examples], 0.2, seed=0)
tokenizer = Tokenizer.from_pretrained(MODEL)
enc = tokenizer([e.text for e in examples], max_length=64, padding=False, return_tensors=None)
features = [{"input_ids": ids, "labels": y[i]} for i, ids in enumerate(enc["input_ids"])]
print(f"{len(train_idx)} training and {len(valid_idx)} validation sentences; labels {labels.names}")

# 2. The model: the pretrained encoder plus a new linear layer on the pooled [CLS] vector: (B, T) -> (B, 2).
model = SentenceModel(Encoder.from_pretrained(MODEL), num_outputs=len(labels))


def accuracy() -> float:
    model.eval()
    batch = collate([features[i] for i in valid_idx])
    with torch.no_grad():
        logits = model(batch["input_ids"], batch["attention_mask"])
    model.train()
    return float((logits.argmax(-1) == batch["labels"]).float().mean())


print(f"validation accuracy before fine-tuning: {accuracy():.3f} (the head is random)")

# 3. AdamW with a small learning rate; no weight decay on biases and LayerNorm; linear warmup then decay.
#    The head is new and the encoder is not: `param_groups(..., lr_head=1e-3)` (`--lr-head` of minift.train) gives
#    the `head.*` parameters their own, higher rate; set_lr scales every group by its own base, so the ratio holds.
#    `python -m minift.train` takes both rates, and the rest, from the task's recipe unless flags say otherwise.
opt = optim.AdamW(optim.param_groups(model, lr=1e-4, weight_decay=0.01), lr=1e-4)
step, warmup = 0, max(1, args.steps // 10)
model.train()
for epoch in range(math.ceil(args.steps * 16 / len(train_idx)) + 1):
    for idx in random_batches(len(train_idx), 16, seed=0, epoch=epoch):
        batch = collate([features[train_idx[i]] for i in idx])
        loss = cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        loss.backward()  # gradients of the mean loss over the batch
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.set_lr(opt, optim.linear(step, args.steps, warmup))
        opt.step()
        opt.zero_grad()
        step += 1
        if step % 10 == 0:
            print(f"step {step:3d}  loss {loss.item():.4f}")
        if step == args.steps:
            break
    if step == args.steps:
        break

final = accuracy()
print(f"validation accuracy after {step} steps: {final:.3f}")
assert final > 0.75, "fine-tuning should beat chance by far on these sentences"

# Exercises (worked solutions in tutorials/solutions/05_fine_tune_a_classifier.py)
# 1. Count the parameters: how many does the encoder hold, how many the new head? What share of the model is new?
# 2. Which parameters does param_groups exempt from weight decay? List them and check each is a bias or a LayerNorm
#    weight (decaying those towards 0 would fight the normalisation rather than regularise).
# 3. Tabulate the learning-rate multiplier optim.linear(step, 30, 3) over the 30 steps. At which step does it
#    peak, and what is it at the first update? (Lesson 6 plots the schedules.)

"""Lesson 8: what to train: a linear probe, the top layers, BitFit, gradual unfreezing, layer-wise learning-rate
decay, LoRA and full fine-tuning, side by side: accuracy, trainable parameters, optimiser memory, time.

Run:  python tutorials/08_what_to_train.py           (seconds: the bundled reviews, 10 steps per method)
      python tutorials/08_what_to_train.py --full    (SST-2, 1,000 training and 500 validation sentences, 40 steps
                                                      per method; writes tutorials/results/08_what_to_train.json, .png)

Fine-tuning need not move all 22.7 million weights of MiniLM. What trains is chosen by `requires_grad`: a frozen
parameter gets no gradient, the optimiser leaves it out, and it does not change by a single bit. Fewer trainable
parameters mean less optimiser memory (AdamW keeps two moments per trainable number), a smaller file to save per
task, and (when nothing below a point trains) a backward pass that stops early. What they cost in accuracy is the
measurement.

Read beside it: minift/freeze.py (apply_freeze and its specs, gradual_unfreeze, count_parameters, describe),
minift/optim.py (param_groups with layer_decay), minift/lora.py (apply_lora, merge_lora, LoRALinear, LoRAEmbedding), and
`python -m minift.train --help` (--freeze, --gradual-unfreeze, --layer-decay).

The measurement, from tutorials/results/08_what_to_train.json (the --full command above, on an AMD EPYC with
2 cores shared with other jobs, one torch thread, torch 2.13.0+cpu; 94 CPU seconds in all), 40 steps of 16 on
1,000 SST-2 sentences, accuracy on 500 others (majority class 0.560), trainable parameters, CPU seconds of
training: linear probe 0.792 (770, 5.1 s); top 2 layers 0.794 (3,697,538, 6.6 s); BitFit 0.790 (26,882, 8.3 s);
gradual unfreezing 0.828 (all 22,713,986 by the end, 9.4 s); layer-wise decay 0.8 0.842 (all, 19.9 s); LoRA r=8
0.822 (74,498, 8.5 s); full fine-tuning 0.830 (all, 19.5 s). On 500 rows one standard error of a difference is
about 2.5 points (lesson 7), so this one run separates the groups (the frozen methods near 0.79, the others near
0.83) but not the methods within a group; the time is what freezing buys: the probe trains in a quarter of the
time of full fine-tuning, and AdamW's state shrinks from 260 MB to under 1 MB. Figure: 08_what_to_train.png.

At a larger scale (benchmarks/README.md, `lora_sst2.py`: 20,000 SST-2 rows, one epoch, four seeds) LoRA r=8 on all
six linear layers of every layer (1.44% trainable) stays 1.7 points under full fine-tuning, whatever its α, rate or
variant; what it cannot move is the word-embedding table, half the model. A rank-4 LoRA on that table as well
(`--lora-targets all,embeddings`: LoRAEmbedding, E' = E + (α/r)(B·A)ᵀ; 1.97% trainable) lands 0.25 points under.
Not everywhere: on GoEmotions it scored lower than the layers' adapters alone (benchmarks/README.md). Measure.
"""
import copy
import random
import time
from importlib import resources

import torch

from course import MODEL, RESULTS, arguments, load, save
from minift import Encoder, Tokenizer, optim
from minift.batching import collate, random_batches
from minift.data import LabelMap, encode_labels, read_table
from minift.freeze import apply_freeze, count_parameters, gradual_unfreeze
from minift.lora import apply_lora, lora_modules, merge_lora
from minift.losses import cross_entropy
from minift.splits import stratified_split
from minift.tasks.sentence import SentenceModel

args = arguments(__doc__).parse_args()
tokenizer, pretrained = Tokenizer.from_pretrained(MODEL), Encoder.from_pretrained(MODEL)

# 1. The data, as in lesson 6: fast, the bundled reviews (80/20); --full, 1,500 SST-2 sentences (1,000 / 500).
if args.full:
    rows = random.Random(0).sample(read_table(args.data_dir / "sst2" / "train.tsv", "sentence", "label"), 1500)
    steps = 40
else:
    rows = read_table(resources.files("minift") / "bundled" / "sentiment.csv", "text", "label")
    steps = 10
labels = LabelMap.from_labels([e.label for e in rows])
y = encode_labels(rows, labels)
train_idx, valid_idx = stratified_split([e.label for e in rows], 500 / 1500 if args.full else 0.2, seed=0)
ids = tokenizer([e.text for e in rows], max_length=64, padding=False, return_tensors=None)["input_ids"]
features = [{"input_ids": x, "labels": y[i]} for i, x in enumerate(ids)]


# 2. The methods. Each takes a fresh copy of the pretrained model with a new head (the same head: seed 0) and
#    returns (optimiser groups, a function called before each step). Learning rates differ because what trains
#    differs: a head alone or a few biases need a larger rate than the whole network (lesson 6's sweep, per method).
#    The sentence vector is the mean of the token vectors (pooling="mean", as lesson 7's probe): all-MiniLM-L6-v2
#    was trained that way, and its pooler layer was not, so a frozen pooler would hand the head poor features.
def probe(model):  # only the head: the pretrained features as they are (--freeze encoder)
    apply_freeze(model, "encoder")
    return optim.param_groups(model, lr=3e-2, weight_decay=0.01), None


def top_two(model):  # the top 2 of 6 layers and the head; embeddings and layers 0-3 frozen
    apply_freeze(model, "layers:0-3")
    model.encoder.embeddings.requires_grad_(False)  # the spec leaves them trainable; freeze them too
    return optim.param_groups(model, lr=3e-4, weight_decay=0.01), None


def bitfit(model):  # every bias of the encoder, and the head (--freeze bias-only)
    apply_freeze(model, "bias-only")
    return optim.param_groups(model, lr=1e-2, weight_decay=0.01), None


def gradual(model):  # ULMFiT: the head first, then one more layer from the top every steps / 8 steps
    groups = optim.param_groups(model, lr=3e-4, weight_decay=0.01)  # built while everything trains
    return groups, lambda step: gradual_unfreeze(model, step * 8 // steps)


def layer_decay(model):  # everything trains; each layer down learns at 0.8 x the rate of the one above
    return optim.param_groups(model, lr=3e-4, weight_decay=0.01, layer_decay=0.8), None


def lora(model):  # rank-8 updates of the query and value projections, and the head; the rest frozen
    apply_lora(model, r=8, alpha=16, targets=("query", "value"))
    return optim.param_groups(model, lr=5e-3, weight_decay=0.01), None


def full(model):  # everything trains
    return optim.param_groups(model, lr=3e-4, weight_decay=0.01), None


METHODS = {"linear probe": probe, "top 2 layers": top_two, "BitFit": bitfit, "gradual unfreezing": gradual,
           "layer-wise lr decay 0.8": layer_decay, "LoRA r=8 (query, value)": lora, "full fine-tuning": full}


def accuracy(model) -> float:
    model.eval()
    batch = collate([features[i] for i in valid_idx])
    with torch.no_grad():
        predicted = model(batch["input_ids"], batch["attention_mask"]).argmax(-1)
    return float((predicted == batch["labels"]).float().mean())


def train(method) -> tuple[dict, SentenceModel]:
    torch.manual_seed(0)
    model = SentenceModel(copy.deepcopy(pretrained), num_outputs=len(labels), pooling="mean").train()
    groups, before_step = method(model)
    opt = optim.AdamW(groups)
    start, step, epoch = time.process_time(), 0, 0
    while step < steps:
        for idx in random_batches(len(train_idx), 16, seed=0, epoch=epoch):
            if before_step:
                before_step(step)
            batch = collate([features[train_idx[i]] for i in idx])
            optim.set_lr(opt, optim.linear(step, steps, max(1, steps // 10)))
            cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"]).backward()
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
            opt.step()
            opt.zero_grad()
            step += 1
            if step == steps:
                break
        epoch += 1
    seconds = time.process_time() - start
    trainable, total = count_parameters(model)
    # AdamW's state: two float32 moments per trainable number, plus the gradient itself: 12 bytes each.
    return {"accuracy": accuracy(model), "trainable": trainable, "total": total,
            "optimiser_and_gradient_MB": 12 * trainable / 2 ** 20, "cpu_seconds": seconds}, model


# 3. Train each one, the same batches in the same order, and tabulate.
results, models = {}, {}
for name, method in METHODS.items():
    results[name], models[name] = train(method)
print(f"{len(train_idx)} training / {len(valid_idx)} validation sentences, {steps} steps of 16 each:")
print(f"  {'method':26} {'accuracy':>8} {'trainable':>12} {'share':>7} {'Adam+grad MB':>12} {'CPU s':>6}")
for name, r in results.items():
    print(f"  {name:26} {r['accuracy']:8.3f} {r['trainable']:12,} {100 * r['trainable'] / r['total']:6.2f}% "
          f"{r['optimiser_and_gradient_MB']:12.1f} {r['cpu_seconds']:6.1f}")

#    What the counts say (exact, whatever the data): the probe trains 384 x 2 + 2 numbers; BitFit adds the
#    encoder's biases; LoRA adds r x (384 + 384) per adapted matrix, 2 per layer; the top 2 layers are two
#    sixths of the layers but no embeddings (the word table alone is 30,522 x 384 = 11.7 M, half the model).
trainable = {name: r["trainable"] for name, r in results.items()}
head = 384 * 2 + 2
assert trainable["linear probe"] == head
assert trainable["LoRA r=8 (query, value)"] == head + 6 * 2 * 8 * (384 + 384)
assert trainable["linear probe"] < trainable["BitFit"] < trainable["LoRA r=8 (query, value)"] \
    < trainable["top 2 layers"] < trainable["full fine-tuning"]
assert trainable["full fine-tuning"] == trainable["layer-wise lr decay 0.8"] == trainable["gradual unfreezing"]

# 4. A frozen weight does not move by a single bit: compare the probe's encoder with the pretrained one.
same = all(torch.equal(a, b) for a, b in zip(models["linear probe"].encoder.parameters(), pretrained.parameters()))
moved = not all(torch.equal(a, b) for a, b in zip(models["full fine-tuning"].encoder.parameters(),
                                                  pretrained.parameters()))
print(f"linear probe's encoder identical to the pretrained one: {same}; full fine-tuning's moved: {moved}")
assert same and moved

# 5. LoRA leaves no trace at inference: merge_lora folds (alpha / r) B A into each weight, and the model is a plain
#    encoder again (the same parameter names as before apply_lora) that predicts the same logits.
model = models["LoRA r=8 (query, value)"].eval()
batch = collate([features[i] for i in valid_idx[:16]])
with torch.no_grad():
    before = model(batch["input_ids"], batch["attention_mask"])
    merge_lora(model)
    after = model(batch["input_ids"], batch["attention_mask"])
print(f"LoRA merged: {len(lora_modules(model))} adapters left; "
      f"logits differ by {float((before - after).abs().max()):.1e}")
assert not lora_modules(model) and torch.allclose(before, after, atol=1e-5)
assert [n for n, _ in model.encoder.named_parameters()] == [n for n, _ in pretrained.named_parameters()]

#    Accuracy: every method beats chance after a few steps, and nothing here is a claim about which is best; at
#    10 steps on 83 validation sentences one row is 1.2 points and lesson 7's standard error is about 4 points.
#    The --full run (more steps, 500 validation rows) is the comparison; its numbers are below when committed.
majority = float(torch.bincount(y[valid_idx]).max()) / len(valid_idx)
assert all(r["accuracy"] > majority + 0.15 for r in results.values())
if args.full:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, r in results.items():
        ax.scatter(r["trainable"], r["accuracy"])
        ax.annotate(name, (r["trainable"], r["accuracy"]), fontsize=8)
    ax.axhline(majority, color="grey", ls=":")
    ax.set(xscale="log", xlabel="trainable parameters", ylabel="validation accuracy",
           title=f"SST-2, 1,000 training sentences, {steps} steps of 16")
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "08_what_to_train.png", dpi=120)
    save("08_what_to_train", {"data": "SST-2 train.tsv, 1,000 training and 500 validation rows drawn with seed 0",
                              "steps": steps, "batch_size": 16, "majority_accuracy": majority, "methods": results})
else:
    committed = load("08_what_to_train")
    if committed:
        print("the committed --full run on SST-2:", ", ".join(
            f"{name} {r['accuracy']:.3f}" for name, r in committed["methods"].items()))

# Exercises (worked solutions in tutorials/solutions/08_what_to_train.py)
# 1. How many parameters does LoRA train with r = 4 on all six targets ("all")? Work it out, then check it with
#    apply_lora and count_parameters.
# 2. With gradual unfreezing as above, which parameters train at step 3 of 10? Name the depths.
# 3. BitFit trains the biases: how many bias numbers does the encoder hold, and where are most of them?

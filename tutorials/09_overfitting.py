"""Lesson 9: overfitting: learning curves, and what dropout, L2, decoupled weight decay, L1, augmentation and early
stopping do to the gap between training and validation.

Run:  python tutorials/09_overfitting.py           (seconds: the bundled reviews, 20 / 60 / 291 training rows)
      python tutorials/09_overfitting.py --full    (SST-2 at 100 / 1,000 / 10,000 training rows, 1,000 validation;
                                                    writes tutorials/results/09_overfitting.json and .png)

A model overfits when it learns its training rows rather than the task: the training loss keeps falling while the
validation loss, after a point, rises. The gap between the two is what to measure. To make hundreds of epochs
cost seconds, this lesson embeds every sentence once with the frozen encoder (mean pooling, as lesson 7) and
trains a head on the vectors: a two-layer MLP of 99,074 weights, wide enough to memorise a few hundred rows.
Everything here acts on fine-tuning the whole encoder in the same way (`--dropout`, `--weight-decay` and the
penalties reach every layer), only slower.

Read beside it: minift/losses.py (l2_penalty, l1_penalty), minift/optim.py (AdamW's decoupled decay, Adam's
coupled one, decayed_params), minift/augment.py (augment), and `python -m minift.train --help`.

The measurement, from tutorials/results/09_overfitting.json (the --full command above, on an AMD EPYC with 2 cores
shared with other jobs, one torch thread, torch 2.13.0+cpu; 133 CPU seconds), SST-2 with 1,000 validation rows.
Learning curves after 200 epochs, training / validation accuracy: 100 rows 1.000 / 0.694, 1,000 rows
1.000 / 0.774, 10,000 rows 0.946 / 0.844; the accuracy gap falls from 0.31 to 0.23 to 0.10 (figure:
09_overfitting.png). On 100 rows the validation loss is lowest (0.520) at epoch 22 and 1.248 at epoch 200.
The regularisers on those 100 rows, validation loss / accuracy at epoch 200: none 1.248 / 0.694, dropout 0.5
0.824 / 0.725, AdamW weight decay 1.0 1.098 / 0.693, L2 penalty 0.01 0.633 / 0.705, L1 penalty 0.001
0.651 / 0.696, augmentation x3 1.456 / 0.684; early stopping alone reaches 0.520 / 0.730. Ten times the data did
more than any regulariser.
"""
import random
from importlib import resources

import torch

import course
from course import MODEL, RESULTS, arguments, load, save
from minift import Encoder, Tokenizer, losses, optim
from minift.augment import augment
from minift.data import LabelMap, encode_labels, read_table
from minift.splits import stratified_split

args = arguments(__doc__).parse_args()
tokenizer, encoder = Tokenizer.from_pretrained(MODEL), Encoder.from_pretrained(MODEL).eval()


def embed(texts: list[str]) -> torch.Tensor:
    """(N, H): the frozen encoder's mean-pooled vector of each text (course.embed, max 64 tokens)."""
    return course.embed(tokenizer, encoder, texts, max_length=64)


# 1. Data. Fast: the bundled reviews, 30 % held out. --full: SST-2, 1,000 validation rows and up to 10,000
#    training rows drawn from train.tsv (its dev split is kept apart, see ../shared/data/README.md).
if args.full:
    rows = random.Random(0).sample(read_table(args.data_dir / "sst2" / "train.tsv", "sentence", "label"), 11_000)
    sizes, small = [100, 1000, 10_000], 100
else:
    rows = read_table(resources.files("minift") / "bundled" / "sentiment.csv", "text", "label")
    sizes, small = [20, 60, None], 40  # None: every training row
labels = LabelMap.from_labels([e.label for e in rows])
y = encode_labels(rows, labels)
train_idx, valid_idx = stratified_split([e.label for e in rows], 1000 / 11_000 if args.full else 0.3, seed=0)
X = embed([e.text for e in rows])  # (N, H), computed once
sizes = [s or len(train_idx) for s in sizes]
print(f"{len(rows)} sentences embedded; {len(train_idx)} for training, {len(valid_idx)} for validation")


def train(idx, epochs=200, dropout=0.0, weight_decay=0.0, l2=0.0, l1=0.0, x=None, targets=None) -> list[dict]:
    """Full-batch AdamW (lr 1e-3) on the rows `idx` (or on given vectors x and targets); after every epoch the
    loss and accuracy on those training rows and on the validation rows, dropout off."""
    torch.manual_seed(0)
    head = torch.nn.Sequential(torch.nn.Dropout(dropout), torch.nn.Linear(384, 256), torch.nn.GELU(),
                               torch.nn.Dropout(dropout), torch.nn.Linear(256, 2))
    opt = optim.AdamW(optim.param_groups(head, lr=1e-3, weight_decay=weight_decay))
    x, targets = (X[idx], y[idx]) if x is None else (x, targets)
    history = []
    for _ in range(epochs):
        head.train()
        loss = losses.cross_entropy(head(x), targets)
        penalty = l2 * losses.l2_penalty(optim.decayed_params(head)) \
            + l1 * losses.l1_penalty(optim.decayed_params(head))  # coupled: part of the loss, so of the gradient
        (loss + penalty).backward()
        opt.step()
        opt.zero_grad()
        head.eval()
        with torch.no_grad():
            history.append({part: {"loss": float(losses.cross_entropy(head(X[r]), y[r])),
                                   "accuracy": float((head(X[r]).argmax(-1) == y[r]).float().mean())}
                            for part, r in (("train", idx), ("valid", valid_idx))})
    return history


def gap(h: dict) -> str:
    train_, valid = h["train"], h["valid"]
    return (f"train loss {train_['loss']:.3f} acc {train_['accuracy']:.3f} | valid loss {valid['loss']:.3f} "
            f"acc {valid['accuracy']:.3f} | gap {valid['loss'] - train_['loss']:.3f}")


# 2. Learning curves: the same head on more and more rows, 200 epochs each. With few rows it learns them
#    perfectly (training accuracy 1) and validation lags far behind; more rows close the gap and lift validation.
curves = {n: train(train_idx[:n]) for n in sizes}
for n, h in curves.items():
    print(f"  {n:6,} rows: {gap(h[-1])}")
acc_gap = {n: h[-1]["train"]["accuracy"] - h[-1]["valid"]["accuracy"] for n, h in curves.items()}
assert acc_gap[sizes[0]] > acc_gap[sizes[-1]]
assert curves[sizes[-1]][-1]["valid"]["accuracy"] > curves[sizes[0]][-1]["valid"]["accuracy"]

# 3. The moment it starts: on the smallest set the validation loss bottoms out after a few dozen epochs and then
#    climbs, while the training loss goes on to 0. Early stopping keeps the model of the best validation epoch
#    (minift.train's --patience stops when it has not improved for that many evaluations).
h = curves[sizes[0]]
best = min(range(len(h)), key=lambda e: h[e]["valid"]["loss"])
print(f"{sizes[0]} rows: best validation loss {h[best]['valid']['loss']:.3f} at epoch {best + 1}; at epoch 200 "
      f"{h[-1]['valid']['loss']:.3f} while the training loss fell from {h[best]['train']['loss']:.3f} "
      f"to {h[-1]['train']['loss']:.4f}")
assert best < 100 and h[-1]["valid"]["loss"] > 1.2 * h[best]["valid"]["loss"]

# 4. L2 (coupled) against weight decay (decoupled). Adding lambda * sum w² to the loss puts 2 lambda w into the
#    gradient. Under SGD that is exactly weight decay 2 lambda; under Adam the extra gradient is divided by
#    sqrt(v) like the rest, so weights with large gradients are barely decayed, which is why AdamW decays the
#    weights directly instead (Loshchilov & Hutter 2019). One step, three ways, on the same head:
lam, w0 = 0.05, torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
g = torch.tensor([[10.0, 0.1, 1.0]] * 4)  # gradients of very different sizes


def one_step(make, l2=0.0):
    w = torch.nn.Parameter(w0.clone())
    opt = make([w])
    ((g * w).sum() + l2 * losses.l2_penalty([w])).backward()  # d/dw = g + 2 l2 w
    opt.step()
    return w.detach()


sgd_l2 = one_step(lambda p: optim.SGD(p, lr=0.1), l2=lam)
sgd_wd = one_step(lambda p: optim.SGD(p, lr=0.1, weight_decay=2 * lam))
adam_l2 = one_step(lambda p: optim.Adam(p, lr=0.1), l2=lam)
adam_wd = one_step(lambda p: optim.Adam(p, lr=0.1, weight_decay=2 * lam))
adamw = one_step(lambda p: optim.AdamW(p, lr=0.1, weight_decay=2 * lam))
print(f"one step: SGD + L2 = SGD weight_decay 2 lambda: {torch.allclose(sgd_l2, sgd_wd)}; Adam + L2 = Adam "
      f"weight_decay 2 lambda: {torch.allclose(adam_l2, adam_wd)}; = AdamW: {torch.allclose(adam_l2, adamw)}")
assert torch.allclose(sgd_l2, sgd_wd) and torch.allclose(adam_l2, adam_wd) and not torch.allclose(adam_l2, adamw)

# 5. The regularisers on the smallest set, each alone: validation loss and accuracy at the end, and the best
#    epoch's validation loss (what early stopping keeps). Augmentation adds 3 copies of each training sentence
#    with words deleted, swapped or repeated (minift.augment, rate 0.2), embedded like the originals.
idx = train_idx[:small]
texts, targets = augment([rows[i].text for i in idx], [int(y[i]) for i in idx], p=0.2, n=3, seed=0)
print(f"augmented: {texts[0]!r}\n       -> {texts[len(idx)]!r}")  # the originals come first, then the copies
runs = {"none": train(idx), "dropout 0.5": train(idx, dropout=0.5),
        "AdamW weight decay 1.0": train(idx, weight_decay=1.0), "L2 penalty 0.01 (coupled)": train(idx, l2=0.01),
        "L1 penalty 0.001": train(idx, l1=0.001),
        "augmentation x3": train(idx, x=embed(texts), targets=torch.tensor(targets))}
table = {}
for name, h in runs.items():
    best = min(h, key=lambda e: e["valid"]["loss"])
    table[name] = {"final": h[-1], "early_stopping": best}
    print(f"  {name:26} {gap(h[-1])} | early stopping: valid loss {best['valid']['loss']:.3f} "
          f"acc {best['valid']['accuracy']:.3f}")
final_loss = {name: t["final"]["valid"]["loss"] for name, t in table.items()}
assert final_loss["L2 penalty 0.01 (coupled)"] < final_loss["none"] > final_loss["L1 penalty 0.001"]
assert all(t["early_stopping"]["valid"]["loss"] <= t["final"]["valid"]["loss"] for t in table.values())
#    What the table shows: the penalties keep the weights small, so the head's confidence (and with it the
#    validation loss on the rows it gets wrong) stays bounded; decoupled decay at lr 1e-3 shrinks each weight by
#    only lr x wd = 0.1 % per step and so acts slowly; the accuracy moves much less than the loss. Augmented copies
#    this close to their originals embed close to them too, so they add little that the head has not seen. Early
#    stopping is the cheapest of all: it needs only a validation set, and every other regulariser still wants it.

if args.full:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(sizes), figsize=(12, 3.5), sharey=True)
    for ax, (n, h) in zip(axes, curves.items()):
        for part in ("train", "valid"):
            ax.plot([e[part]["loss"] for e in h], label=part)
        ax.set(title=f"{n:,} training rows", xlabel="epoch")
    axes[0].set_ylabel("cross-entropy")
    axes[0].legend()
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "09_overfitting.png", dpi=120)
    save("09_overfitting", {"data": "SST-2 train.tsv, 11,000 rows drawn with seed 0, 1,000 of them for validation",
                            "features": "frozen all-MiniLM-L6-v2, mean pooling; head MLP 384-256-2, AdamW lr 1e-3, "
                                        "full batch, 200 epochs",
                            "learning_curves": {str(n): h[-1] for n, h in curves.items()},
                            "regularisers_at": small, "regularisers": table})
else:
    committed = load("09_overfitting")
    if committed:
        print("the committed --full run on SST-2:", ", ".join(
            f"{n} rows valid acc {r['valid']['accuracy']:.3f}" for n, r in committed["learning_curves"].items()))

# Exercises (worked solutions in tutorials/solutions/09_overfitting.py)
# 1. L1 pushes weights to exactly 0, L2 only towards it. Train the head on the smallest set with each (l1=0.01,
#    l2=0.01) and count the first layer's weights below 1e-3 in size.
# 2. Under SGD, show that l2_penalty with lambda and SGD(weight_decay=2 lambda) stay equal over 10 steps, not one.

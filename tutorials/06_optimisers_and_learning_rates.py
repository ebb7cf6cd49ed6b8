"""Lesson 6: optimisers and learning rates: AdamW step by step, against Adam and SGD; warmup and decay; what a
learning rate too high or too low does to a real fine-tune.

Run:  python tutorials/06_optimisers_and_learning_rates.py           (seconds: a toy problem, the bundled reviews)
      python tutorials/06_optimisers_and_learning_rates.py --full    (a learning-rate sweep on SST-2; writes
                                                                      tutorials/results/06_lr_sweep.json and .png,
                                                                      and 06_schedules.png)

An optimiser turns a gradient into a step. SGD steps against the gradient, scaled by the learning rate; Adam
divides each coordinate's step by a running estimate of that coordinate's gradient size, so every parameter moves
at about the learning rate whatever its gradient's scale; AdamW is Adam with weight decay taken out of the
gradient (lesson 9 measures why that matters). The schedule multiplies the learning rate step by step: warm up
from 0, then decay. The sweep at the end is the measurement every fine-tune needs first.

Read beside it: minift/optim.py (AdamW, Adam, SGD, param_groups, the schedules constant / linear / cosine /
exponential, SCHEDULES, set_lr), `Recipe` in minift/tasks/__init__.py, and `python -m minift.train --help` (--lr,
--lr-head, --schedule, --warmup).

The measured sweep, from tutorials/results/06_lr_sweep.json (the --full command above, on an AMD EPYC with 2 cores
shared with other jobs, one torch thread, torch 2.13.0+cpu; 100 CPU seconds): 30 steps of 16 on 1,000 SST-2
sentences, accuracy on 500 others, where always answering the majority class scores 0.560. Peak rate 1e-6: 0.442,
1e-5: 0.554, 1e-4: 0.756, 3e-4: 0.756, 1e-3: 0.772, 1e-2: 0.560; the training loss of the last three batches
0.696, 0.691, 0.623, 0.350, 0.443, 0.710 (from 0.69, the loss of a coin). At 1e-6 and 1e-5 the model is still
about where it started; at 1e-2 it has collapsed to predicting one class. The curves: 06_lr_sweep.png; the
schedules: 06_schedules.png.
"""
import copy
import random
from importlib import resources

import torch

from course import MODEL, RESULTS, arguments, load, save
from minift import Encoder, Tokenizer, optim
from minift.batching import collate, random_batches
from minift.data import LabelMap, encode_labels, read_table
from minift.losses import cross_entropy
from minift.splits import stratified_split
from minift.tasks import TASKS
from minift.tasks.sentence import SentenceModel

args = arguments(__doc__).parse_args()
torch.manual_seed(0)


# 1. A two-parameter problem with two very different curvatures: f(w) = (w1² + 100 w2²) / 2, gradient
#    (w1, 100 w2). First AdamW by hand, line for line the docstring of minift.optim.AdamW, for three steps; then
#    minift's AdamW and torch's take the same three steps. float64, so any difference would be a mistake.
def f(w: torch.Tensor) -> torch.Tensor:
    return 0.5 * (w[0] ** 2 + 100 * w[1] ** 2)


def descend(make_optimizer, steps: int) -> list[torch.Tensor]:
    """Run an optimiser on f from w = (1, 1); return w after each step."""
    w = torch.tensor([1.0, 1.0], dtype=torch.float64, requires_grad=True)
    opt, path = make_optimizer([w]), []
    for _ in range(steps):
        opt.zero_grad()
        f(w).backward()
        opt.step()
        path.append(w.detach().clone())
    return path


lr, wd, (b1, b2), eps = 0.1, 0.01, (0.9, 0.999), 1e-8
w, m, v = torch.tensor([1.0, 1.0], dtype=torch.float64), torch.zeros(2, dtype=torch.float64), 0
by_hand = []
for t in range(1, 4):
    g = torch.stack([w[0], 100 * w[1]])  # the gradient of f
    w = w * (1 - lr * wd)  # decoupled weight decay: shrink first, outside the gradient
    m = b1 * m + (1 - b1) * g  # running mean of g
    v = b2 * v + (1 - b2) * g * g  # running mean of g²
    m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)  # both start at 0: undo that bias
    w = w - lr * m_hat / (v_hat.sqrt() + eps)
    by_hand.append(w)
    print(f"step {t}: g = ({g[0]:.3f}, {g[1]:.3f})  m^/sqrt(v^) = ({float(m_hat[0] / v_hat[0].sqrt()):.3f}, "
          f"{float(m_hat[1] / v_hat[1].sqrt()):.3f})  w = ({w[0]:.4f}, {w[1]:.4f})")
mine = descend(lambda p: optim.AdamW(p, lr=lr, weight_decay=wd), 3)
theirs = descend(lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=wd), 3)
assert all(torch.allclose(a, b, rtol=1e-12) and torch.allclose(a, c, rtol=1e-12)
           for a, b, c in zip(by_hand, mine, theirs))
print("by hand = minift.optim.AdamW = torch.optim.AdamW for 3 steps")

#    Look at m^/sqrt(v^) above: on the first step it is g / |g| = 1 for both coordinates, although one gradient is
#    100 times the other. Adam's step is about lr in every coordinate: it is invariant to each gradient's scale.
#    SGD's step is lr * g, 100 times larger in w2.
first_sgd = descend(lambda p: optim.SGD(p, lr=0.01), 1)[0]
print(f"first step from (1, 1): AdamW moves by {(1 - mine[0]).tolist()}, SGD (lr 0.01) by {(1 - first_sgd).tolist()}")
assert torch.allclose(1 - first_sgd, torch.tensor([0.01, 1.0], dtype=torch.float64))

# 2. The race: 100 steps each. SGD is stable only while lr < 2 / (largest curvature) = 2 / 100: just below that
#    it converges in w2 but crawls in w1 (curvature 1); just above, w2 overshoots further each step and diverges.
#    Momentum (0.9) carries speed along the shallow direction. Adam (without decay: then it *is* AdamW, the two
#    differ only in how they decay) moves both coordinates at the same pace: w1 and w2 stay equal.
runs = {"SGD lr 0.019": descend(lambda p: optim.SGD(p, lr=0.019), 100),
        "SGD lr 0.021": descend(lambda p: optim.SGD(p, lr=0.021), 100),
        "SGD lr 0.01, momentum 0.9": descend(lambda p: optim.SGD(p, lr=0.01, momentum=0.9), 100),
        "Adam lr 0.1": descend(lambda p: optim.Adam(p, lr=0.1), 100),
        "AdamW lr 0.1, no decay": descend(lambda p: optim.AdamW(p, lr=0.1, weight_decay=0.0), 100)}
final = {name: float(f(path[-1])) for name, path in runs.items()}
for name, path in runs.items():
    print(f"  {name:27} f after 100 steps {final[name]:10.3g}   w = ({path[-1][0]:.4f}, {path[-1][1]:.4f})")
assert final["SGD lr 0.021"] > 1e6  # diverged
assert 1e-2 < final["SGD lr 0.019"] < 0.02 and abs(runs["SGD lr 0.019"][-1][1]) < 1e-3  # w2 done, w1 crawling
assert final["SGD lr 0.01, momentum 0.9"] < 1e-3 and final["Adam lr 0.1"] < 1e-3
assert all(torch.equal(a, b) for a, b in zip(runs["Adam lr 0.1"], runs["AdamW lr 0.1, no decay"]))
assert all(abs(float(w[0] - w[1])) < 1e-6 for w in runs["Adam lr 0.1"])  # equal but for eps

# 3. Schedules. The learning rate at step s is lr x multiplier(s). Warmup rises linearly from 0 over W steps
#    (Adam's first moments are noisy, and a new random head sends large gradients into the pretrained weights:
#    a gentle start protects them); then linear decay to 0 at the last step T, half a cosine (slow, fast, slow),
#    or exponential decay gamma^(s - W), which never reaches 0. They are pure functions of the step; the loop
#    calls optim.set_lr(opt, multiplier) before each update. Checked against the schedules of `transformers`.
from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup  # the oracle

T, W = 100, 10
table = {name: [fn(s, T, W) for s in range(T + 1)] for name, fn in optim.SCHEDULES.items()}
print("step " + "".join(f"{name:>12}" for name in table))
for s in (0, 5, 10, 30, 55, 80, 99, 100):
    print(f"{s:4d} " + "".join(f"{values[s]:12.3f}" for values in table.values()))
assert all(values[0] == 0 and values[W] == 1 for values in table.values())  # the first update does nothing
assert table["linear"][T] == 0 and table["cosine"][T] == 0 and abs(table["cosine"][W + (T - W) // 2] - 0.5) < 1e-12
assert abs(table["exponential"][T] - 0.999 ** (T - W)) < 1e-12
dummy = [torch.nn.Parameter(torch.zeros(1))]
for name, make in (("linear", get_linear_schedule_with_warmup), ("cosine", get_cosine_schedule_with_warmup)):
    hf = make(torch.optim.SGD(dummy, lr=1.0), W, T).lr_lambdas[0]  # step -> multiplier
    assert all(abs(hf(s) - table[name][s]) < 1e-12 for s in range(T + 1)), name
print("linear and cosine equal transformers' get_*_schedule_with_warmup at every step")

if args.full:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, values in table.items():
        ax.plot(values, label=name)
    ax.set(xlabel=f"step (warmup {W}, total {T})", ylabel="learning-rate multiplier",
           title="minift.optim.SCHEDULES (exponential: gamma 0.999)")
    ax.legend()
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "06_schedules.png", dpi=120)

# 4. A real fine-tune at three learning rates: the pretrained encoder plus a new head, AdamW with linear warmup
#    and decay, the same batches in the same order each time; only the rate differs. Fast: the bundled reviews.
#    --full: SST-2, 1,000 training and 500 validation sentences drawn from train.tsv, six rates.
tokenizer, pretrained = Tokenizer.from_pretrained(MODEL), Encoder.from_pretrained(MODEL)
if args.full:
    rows = read_table(args.data_dir / "sst2" / "train.tsv", "sentence", "label")
    rows = random.Random(0).sample(rows, 1500)
    rates, steps = [1e-6, 1e-5, 1e-4, 3e-4, 1e-3, 1e-2], 30
else:
    rows = read_table(resources.files("minift") / "bundled" / "sentiment.csv", "text", "label")
    rates, steps = [1e-6, 3e-4, 1e-2], 12
labels = LabelMap.from_labels([e.label for e in rows])
y = encode_labels(rows, labels)
train_idx, valid_idx = stratified_split([e.label for e in rows], 500 / 1500 if args.full else 0.2, seed=0)
ids = tokenizer([e.text for e in rows], max_length=64, padding=False, return_tensors=None)["input_ids"]
features = [{"input_ids": x, "labels": y[i]} for i, x in enumerate(ids)]


def fine_tune(lr: float) -> dict:
    """`steps` AdamW updates at peak rate lr (warmup 10 %, linear decay); the loss of every batch, and validation
    accuracy at the end."""
    torch.manual_seed(0)  # the same new head every time
    model = SentenceModel(copy.deepcopy(pretrained), num_outputs=len(labels)).train()
    opt = optim.AdamW(optim.param_groups(model, lr=lr, weight_decay=0.01))
    losses, epoch = [], 0
    while len(losses) < steps:
        for idx in random_batches(len(train_idx), 16, seed=0, epoch=epoch):
            batch = collate([features[train_idx[i]] for i in idx])
            optim.set_lr(opt, optim.linear(len(losses), steps, max(1, steps // 10)))
            loss = cross_entropy(model(batch["input_ids"], batch["attention_mask"]), batch["labels"])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
            if len(losses) == steps:
                break
        epoch += 1
    model.eval()
    batch = collate([features[i] for i in valid_idx])
    with torch.no_grad():
        predicted = model(batch["input_ids"], batch["attention_mask"]).argmax(-1)
    return {"losses": losses, "accuracy": float((predicted == batch["labels"]).float().mean())}


sweep = {lr: fine_tune(lr) for lr in rates}
print(f"{len(train_idx)} training / {len(valid_idx)} validation sentences, {steps} steps of 16, AdamW, linear:")
for lr, r in sweep.items():
    first, last = sum(r["losses"][:3]) / 3, sum(r["losses"][-3:]) / 3
    print(f"  lr {lr:7.0e}: training loss {first:.3f} -> {last:.3f}, validation accuracy {r['accuracy']:.3f}")
    r["first_loss"], r["last_loss"] = first, last

#    Too low (1e-6): the loss hardly moves; the head is still near random, and so are the predictions. Too high
#    (1e-2): each step throws the pretrained weights far from where pretraining left them; the loss does not go
#    down and the model ends up predicting about one class. In between (3e-4 for a run this short), the loss
#    falls and accuracy is far above chance. The best rate depends on the model, the data and the number of steps
#    (longer runs prefer smaller rates; 2e-5 to 1e-4 is usual for BERT-sized encoders): the sweep is how to find
#    yours, on a log scale, a few short runs each.
low, good, high = sweep[rates[0]], sweep[3e-4], sweep[rates[-1]]
majority = float(torch.bincount(y[valid_idx]).max()) / len(valid_idx)  # accuracy of always the commonest class
assert good["accuracy"] > 0.75 and good["last_loss"] < good["first_loss"] - 0.05
assert low["last_loss"] > good["last_loss"] and abs(low["last_loss"] - low["first_loss"]) < 0.1
assert high["accuracy"] <= majority + 0.1 and high["last_loss"] > good["last_loss"]

if args.full:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax1.semilogx(rates, [sweep[lr]["accuracy"] for lr in rates], "o-")
    ax1.axhline(majority, color="grey", ls=":", label="majority class")
    ax1.set(xlabel="peak learning rate", ylabel="validation accuracy", title=f"SST-2, {steps} steps of 16")
    ax1.legend()
    for lr in rates:
        ax2.plot(sweep[lr]["losses"], label=f"{lr:.0e}")
    ax2.set(xlabel="step", ylabel="training loss (batch)", title="the loss at each rate")
    ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / "06_lr_sweep.png", dpi=120)
    save("06_lr_sweep", {"data": "SST-2 train.tsv, 1,000 training and 500 validation rows drawn with seed 0",
                         "steps": steps, "batch_size": 16, "majority_accuracy": majority,
                         "sweep": {f"{lr:g}": r for lr, r in sweep.items()}})
else:
    committed = load("06_lr_sweep")
    if committed:
        print("the committed --full sweep on SST-2:", ", ".join(
            f"lr {lr} -> {r['accuracy']:.3f}" for lr, r in committed["sweep"].items()))

# 5. What `python -m minift.train` uses when you give no rate: each task family's recipe (`Recipe` in
#    minift/tasks/, chosen by sweeps like the one above on real data: benchmarks/README.md, "defaults.py"). Where a
#    family's head is new and large (the multi-label classifier, the LM-head transform of seq2seq) the recipe gives
#    it its own, higher rate, `lr_head` (`--lr-head`); None means the head learns at `lr` like everything else.
for kind, task in TASKS.items():
    recipe = task.recipe_of(kind)
    head = "= lr" if recipe.lr_head is None else f"{recipe.lr_head:g}"
    print(f"recipe of {kind:14} lr {recipe.lr:g}, head {head}, {recipe.epochs} epochs, batch {recipe.batch_size}")
    assert 1e-5 <= recipe.lr <= 1e-3 and (recipe.lr_head is None or recipe.lr_head > recipe.lr)

# Exercises (worked solutions in tutorials/solutions/06_optimisers_and_learning_rates.py)
# 1. On f above, what is the largest SGD learning rate that converges, and why exactly 2 / 100? (Write the
#    update of w2 as w2 <- (1 - 100 lr) w2.) Check both sides of it.
# 2. Adam's step is about lr per coordinate. Multiply f by 1,000: how do the first steps of SGD and of Adam change?
# 3. optim.param_groups(model, lr, wd, layer_decay=0.8): list each group's learning rate for the 6-layer MiniLM
#    with a head. How many times smaller is the embeddings' rate than the head's?

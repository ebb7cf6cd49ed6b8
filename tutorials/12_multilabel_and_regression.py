"""Lesson 12: multi-label and regression: sigmoid heads and per-label thresholds, and a linear head for similarity.

Run:  python tutorials/12_multilabel_and_regression.py          (seconds: the bundled reviews, given topic labels
                                                                  and made into sentence pairs)
      python tutorials/12_multilabel_and_regression.py --full   (GoEmotions and STS-B: writes
                                                                  tutorials/results/12_multilabel_and_regression.json
                                                                  and .png)

Classification picks one label per text: a softmax over C logits, probabilities that sum to 1. Two other heads
share the same encoder. Multi-label: any number of L labels may hold (a comment can be both grateful and joyful),
so each label gets its own sigmoid, trained with binary cross-entropy, and is predicted when its probability
passes a threshold. Regression: one number per text or text pair (STS-B's similarity from 0 to 5), a linear head
with one output, trained with the mean squared error and scored by correlation. To keep the lesson in seconds the
encoder is frozen: each text is embedded once (mean pooling, as lessons 7 and 9) and only the heads train. What the
heads, losses, thresholds and metrics do is the same when the whole encoder trains (`python -m minift.train --task
multilabel --tune-thresholds`, `--task regression --text-pair-col ...`).

Read beside it: minift/losses.py (binary_cross_entropy_with_logits, mse), minift/metrics/multilabel.py
(best_threshold, best_thresholds, multilabel_summary), minift/tasks/sentence.py (SentenceTask.loss, tune, decide:
what --tune-thresholds runs), minift/metrics/regression.py (pearson, spearman, regression_summary).

The measurement, from tutorials/results/12_multilabel_and_regression.json (the --full command above, on an AMD EPYC
with 2 cores shared with other jobs, one torch thread, torch 2.13.0+cpu; 154 CPU seconds, 6 min 31 s of wall time
at a load average of 7 to 9). GoEmotions, frozen encoder, linear sigmoid head, 4,000 training comments: 19 of the
28 labels never pass 0.5 on a single validation comment. Tuning each label's threshold on the 1,000 validation
comments (thresholds from 0.008 to 0.32, all under 0.5; figure: each label's threshold against its frequency)
lifts validation macro-F1 from 0.063 to 0.205 and micro-F1 from 0.227 to 0.234; on the 1,000 held-out
comments macro-F1 rises from 0.075 to 0.167, but micro-F1 falls from 0.244 to 0.223: each threshold maximises its
own label's F1, which for a rare label means accepting many false positives, and micro-F1 pools them all. Tuning
helps the rare labels (macro); it is no free gain on the pooled score. STS-B, 4,000 training and 1,000 test pairs,
test Pearson / Spearman: the cosine of the two frozen vectors, no training, 0.819 / 0.779; a linear MSE head on
[u * v, |u - v|] 0.805 / 0.765; a linear MSE head on the frozen encoding of the pair read as one sequence only
0.487 / 0.440.

The whole model fine-tuned, from benchmarks/results/ (not this lesson's run). GoEmotions, 10,000 training rows,
4 epochs, lr 1e-4, --tune-thresholds, 2 CPU cores (recipes_goemotions_4ep_cpu.json): held-out micro-F1 0.439,
macro-F1 0.324 on 2,000 rows (validation micro-F1 0.462). The same recipe on 1,000 rows without tuned thresholds
scored micro-F1 0.000 on validation and test (defaults.json, goemotions-rows1000-test250): no label ever passed
0.5 (the head's bias then started at 0; see step 4). STS-B, 5,000 training pairs, 2 epochs, lr 2e-4, batch 32,
on an H200 (gpu/sweep_lr2e-4.json, the recipe in defaults.json): Pearson 0.842, Spearman 0.809 on 749 held-out
pairs. With only 640 training pairs and lr 1e-4 on 2 CPU cores it scored 0.253 (sentence_tasks.json, stsb/minift),
until the head's bias started at the mean training target instead of 0: then 0.670 (stsb_mean_init_cpu.json). A
zero bias puts every first prediction about 2.7 off (the mean similarity), and the first updates go to closing that
gap; minift.train now starts a regression head at the mean (SentenceTask.build_model), as Karpathy's "init well"
advises. The regression heads below train from a zero bias on frozen vectors for 50 epochs at lr 1e-2, long enough
to find the mean on their own.
"""
import random
import re
from importlib import resources

import torch

import course
from course import MODEL, RESULTS, arguments, load, save
from minift import Encoder, Tokenizer, losses, optim
from minift.data import LabelMap, read_table
from minift.metrics import best_thresholds, multilabel_summary, roc_auc
from minift.metrics.regression import pearson, regression_summary, spearman
from minift.tasks.sentence import SentenceTask

args = arguments(__doc__).parse_args()
tokenizer, encoder = Tokenizer.from_pretrained(MODEL), Encoder.from_pretrained(MODEL).eval()


def embed(texts: list[str], pairs: list[str] | None = None) -> torch.Tensor:
    """(N, H): the frozen encoder's mean-pooled vector of each text (or [CLS] text [SEP] pair [SEP]): course.embed."""
    return course.embed(tokenizer, encoder, texts, pairs, max_length=128)


# 1. Softmax against sigmoid, on one row whose true labels are the first two of three. Softmax makes the labels
#    compete: its probabilities sum to 1, so at most one can pass 0.5. Sigmoids are independent: each label asks
#    its own yes/no question. Binary cross-entropy averages -[y log s + (1 - y) log(1 - s)] over every cell;
#    minift computes it from the logits (softplus form), never from s, so a logit of -100 costs 100, not inf.
z, y = torch.tensor([[3.0, 2.5, -4.0]]), torch.tensor([[1.0, 1.0, 0.0]])
soft, sig = z.softmax(-1), z.sigmoid()
print(f"logits {z.tolist()[0]}: softmax {[round(p, 3) for p in soft.tolist()[0]]} (sum {float(soft.sum()):.1f}), "
      f"sigmoid {[round(p, 3) for p in sig.tolist()[0]]}")
assert int((soft > 0.5).sum()) <= 1 and bool((sig[y == 1] > 0.5).all())
by_hand = -(y * sig.log() + (1 - y) * (1 - sig).log()).mean()
assert torch.allclose(losses.binary_cross_entropy_with_logits(z, y), by_hand)
assert float(losses.binary_cross_entropy_with_logits(torch.tensor([-100.0]), torch.tensor([1.0]))) == 100.0

# 2. The multi-label data. Fast: the bundled reviews, each given its sentiment and any of four topics that its
#    words name (a stand-in labelling, written here, that a frozen encoder can learn); 60 / 20 / 20 % for training,
#    validation (to tune thresholds on) and test (to see whether the tuning holds). --full: GoEmotions, 28 emotions
#    (27 and neutral), 6,000 comments drawn with seed 0: 4,000 / 1,000 / 1,000.
TOPICS = {"food": r"food|soup|meal|dish|pizza|coffee|restaurant|caf|waiter|menu|dessert|bread|breakfast|dinner|lunch"
                  r"|burger|cake|vegetables|sauce|pasta|chef|dumplings|salad|tea|fries|steak|wine",
          "travel": r"hotel|room|train|flight|stay|airport|bus|trip|tour|pool|beach|resort|airline|luggage",
          "tech": r"app|update|wifi|phone|battery|laptop|screen|software|charger|headphones|speaker|camera|keyboard"
                  r"|printer|tablet|game|console|install|crash|bluetooth",
          "story": r"film|movie|book|novel|series|episode|plot|actors|acting|cast|story|author|album|songs?|concert"
                   r"|band|show|characters|ending|director|music|chapter|season"}
if args.full:
    goemotions = args.data_dir / "goemotions"
    rows = random.Random(0).sample(read_table(goemotions / "train.tsv", 0, 1, has_header=False, encoding="utf-8"),
                                   6000)
    names = (goemotions / "emotions.txt").read_text().split()
    labels = LabelMap(names, multi_label=True)
    texts = [e.text for e in rows]
    Y = torch.tensor([labels.encode_multi(",".join(names[int(i)] for i in e.label.split(","))) for e in rows])
else:
    rows = read_table(resources.files("minift") / "bundled" / "sentiment.csv", "text", "label")
    labels = LabelMap(["positive", *TOPICS], multi_label=True)
    texts = [e.text for e in rows]
    Y = torch.tensor([[float(e.label == "positive")] + [float(bool(re.search(rf"\b({p})\b", e.text.lower())))
                                                       for p in TOPICS.values()] for e in rows])
order = torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))
n_train, n_valid = int(0.6 * len(rows)) if not args.full else 4000, int(0.2 * len(rows)) if not args.full else 1000
parts = {"train": order[:n_train], "valid": order[n_train:n_train + n_valid], "test": order[n_train + n_valid:]}
X = embed(texts)  # (N, H), once
freq = Y[parts["train"]].mean(0)  # (L,) how often each label holds
print(f"{len(rows)} texts, {len(labels)} labels; {', '.join(f'{len(v)} {k}' for k, v in parts.items())}; "
      f"label frequency in training from {float(freq.min()):.3f} to {float(freq.max()):.3f}")


def train_head(x: torch.Tensor, y: torch.Tensor, loss, epochs: int, lr: float) -> torch.nn.Linear:
    """A linear head (H -> y's width) on the vectors x, AdamW in shuffled batches of 32; loss(z, y) is
    minift.losses' binary_cross_entropy_with_logits (multi-label) or mse (regression)."""
    torch.manual_seed(0)
    head = torch.nn.Linear(x.shape[1], y.shape[1])
    opt = optim.AdamW(optim.param_groups(head, lr=lr, weight_decay=0.01))
    for epoch in range(epochs):
        for idx in torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch)).split(32):
            loss(head(x[idx]), y[idx]).backward()  # (32, L) logits against (32, L) targets
            opt.step()
            opt.zero_grad()
    return head.eval()


# 3. Train the sigmoid head: 5 epochs at lr 2e-3, the multilabel recipe's epochs and head rate
#    (minift/tasks/sentence.py, RECIPES). Then predict each label whose probability passes 0.5 (logit > 0).
head = train_head(X[parts["train"]], Y[parts["train"]], losses.binary_cross_entropy_with_logits, 5, 2e-3)
with torch.no_grad():
    logits = {k: head(X[v]) for k, v in parts.items()}  # (n, L) each
task = SentenceTask("multilabel", tokenizer, {"text": "text", "label": "labels"}, labels=labels)
at_half = {k: multilabel_summary(Y[v].long(), task.decide(logits[k])) for k, v in parts.items()}
print("at 0.5: " + "; ".join(f"{k} micro-F1 {s['f1_micro']:.3f} macro-F1 {s['f1_macro']:.3f}"
                            for k, s in at_half.items()))

# 4. Why rare labels are never predicted. The head starts near logit 0 (probability 0.5) for every cell, and most
#    cells of a rare label are 0, so the quickest way down the loss is to push that label's logit down for every
#    row: towards the prior log(p / (1 - p)), p its frequency. The rows where the label holds do get higher
#    scores than the rest (the AUC, how often a positive outranks a negative, is well above 0.5), but their
#    probability stays under 0.5 until training has gathered enough evidence to overcome the prior, and with few
#    positives and few steps it has not. The whole fine-tuned model did the same on GoEmotions (docstring). So
#    `python -m minift.train --task multilabel` starts each label's bias at that prior (SentenceTask.fit_loss); this
#    lesson's head starts at 0 to show why.
probs = {k: z.sigmoid() for k, z in logits.items()}
yv, pv = Y[parts["valid"]], probs["valid"]
never = []
for j, name in enumerate(labels.names):
    pos = pv[yv[:, j] == 1, j]
    if len(pos) and 0 < len(pos) < len(yv):
        auc = roc_auc(yv[:, j].long(), pv[:, j])
        if float(pos.max()) <= 0.5:
            never.append(name)
        if j < 8:
            prior = float((freq[j] / (1 - freq[j])).log())
            print(f"  {name:14} frequency {float(freq[j]):.3f} prior logit {prior:5.2f}"
                  f" | validation: {len(pos):3} positives, highest probability {float(pos.max()):.3f}, AUC {auc:.3f}")
print(f"{len(never)} of {len(labels)} labels never pass 0.5 on validation: {', '.join(never)}")
assert never, "some rare label stays under 0.5 on every validation row"

# 5. Per-label thresholds (`--tune-thresholds`: SentenceTask.tune calls metrics.best_thresholds on the validation
#    rows): for each label, the cut of its validation scores that maximises that label's F1. Predicting "score > t"
#    for the best t tries every cut, the one at 0.5 among them, so each label's validation F1, and so the macro-F1
#    (their mean), can only rise: by construction. Micro-F1 pools the counts of every label, so it is not a sum
#    of what each threshold maximises: here it rises, but that is a measurement (on GoEmotions held out it fell, see
#    the docstring: a low threshold buys a rare label recall with false positives, which micro-F1 pools). The test
#    rows say whether thresholds fitted on a few validation positives carry over.
task.thresholds = best_thresholds(yv.numpy(), pv.double().numpy()).tolist()  # what tune() stores in minift.json
tuned = {k: multilabel_summary(Y[v].long(), task.decide(logits[k])) for k, v in parts.items()}
print("thresholds: " + ", ".join(f"{n} {t:.3f}" for n, t in list(zip(labels.names, task.thresholds))[:8]) +
      (" ..." if len(labels) > 8 else ""))
for k in ("valid", "test"):
    print(f"  {k:5}: micro-F1 {at_half[k]['f1_micro']:.3f} -> {tuned[k]['f1_micro']:.3f}, "
          f"macro-F1 {at_half[k]['f1_macro']:.3f} -> {tuned[k]['f1_macro']:.3f}")
assert tuned["valid"]["f1_macro"] >= at_half["valid"]["f1_macro"]  # by construction
assert tuned["valid"]["f1_micro"] >= at_half["valid"]["f1_micro"]  # measured
assert tuned["test"]["f1_macro"] > at_half["test"]["f1_macro"]  # held out: the tuning carries over

# 6. Regression on sentence pairs. Fast: each bundled review paired with a copy that keeps a random share of its
#    words and takes a few from another review; its score, a stand-in for STS-B's 0-5 similarity written here, is
#    5 x the word overlap (Jaccard) of the two. --full: STS-B's train.tsv, 4,000 pairs to train on and 1,000 to
#    test, drawn with seed 0 (its dev split is kept apart, see ../shared/data/README.md). Three predictors:
#    the cosine of the two texts' own vectors (no training at all: all-MiniLM-L6-v2 was trained for it); a linear
#    head with MSE on the pair read as one sequence, [CLS] a [SEP] b [SEP] (what `--task regression
#    --text-pair-col` feeds the encoder, here frozen); and a linear head on [u * v, |u - v|] of the two vectors.
def overlap_pairs(texts: list[str], seed: int = 0) -> tuple[list[str], list[str], list[float]]:
    rng, firsts, seconds, scores = random.Random(seed), [], [], []
    for a in texts:
        keep = rng.random()
        other = rng.choice(texts).split()[:rng.randint(0, 6)]
        words = [w for w in a.split() if rng.random() < keep] + other
        b = " ".join(words) if words else a
        wa, wb = set(a.lower().split()), set(b.lower().split())
        firsts, seconds, scores = firsts + [a], seconds + [b], scores + [5 * len(wa & wb) / len(wa | wb)]
    return firsts, seconds, scores


if args.full:
    sts = random.Random(0).sample(read_table(args.data_dir / "stsb" / "train.tsv", "sentence1", "score",
                                             "sentence2"), 5000)
    first, second, score = [e.text for e in sts], [e.text_pair for e in sts], [float(e.label) for e in sts]
    n_fit = 4000
else:
    first, second, score = overlap_pairs(texts)
    n_fit = int(0.8 * len(first))
print(f"pairs: {first[0]!r} / {second[0]!r}: {score[0]:.2f}")
s = torch.tensor(score)[:, None]  # (N, 1): one output
u, v, cross = embed(first), embed(second), embed(first, second)  # (N, H) each
fit, held = slice(0, n_fit), slice(n_fit, None)
predictors = {"cosine, no training": torch.nn.functional.cosine_similarity(u, v)[:, None]}
for name, feats in (("linear head on the pair as one sequence", cross),
                    ("linear head on [u*v, |u-v|]", torch.cat([u * v, (u - v).abs()], -1))):
    reg = train_head(feats[fit], s[fit], losses.mse, 50, 1e-2)
    with torch.no_grad():
        predictors[name] = reg(feats)
regression = {}
for name, pred in predictors.items():
    regression[name] = regression_summary(s[held, 0], pred[held, 0])  # pearson, spearman, mse, ...
    r = regression[name]
    print(f"  {name:40} test Pearson {r['pearson']:.3f} Spearman {r['spearman']:.3f} MSE {r['mse']:.3f}")

# 7. Why correlation, not MSE, is STS-B's score: Pearson measures how well a straight line through the
#    predictions fits the gold scores, so any a x + b (a > 0) of them scores the same; Spearman only their order.
#    The untrained cosine lives in [-1, 1], not [0, 5]: its MSE says nothing, its correlations are fair.
p, g = predictors["linear head on the pair as one sequence"][held, 0].double(), s[held, 0]
assert abs(pearson(3 * p + 1, g) - pearson(p, g)) < 1e-9 and abs(spearman(p ** 3, g) - spearman(p, g)) < 1e-9
#    And what the numbers say: frozen, the encoder's vector of a pair read as one sequence mixes the two texts, and a
#    linear head can read little similarity from it; two vectors compared feature by feature carry it. Fine-tuning
#    is what teaches the encoder's attention to compare the two halves of a pair (the whole-model STS-B figures in
#    the docstring, Pearson 0.842, are of the pair read as one sequence).
cross_r = regression["linear head on the pair as one sequence"]["pearson"]
assert regression["cosine, no training"]["pearson"] > 0.5 and regression["linear head on [u*v, |u-v|]"]["pearson"] > 0.5
assert cross_r < regression["linear head on [u*v, |u-v|]"]["pearson"]

if args.full:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.scatter(freq.numpy(), task.thresholds)
    left.axhline(0.5, color="grey", linestyle=":")
    left.set(xscale="log", xlabel="label frequency in training", ylabel="tuned threshold",
             title="GoEmotions: rarer labels, lower thresholds")
    best = max(regression, key=lambda k: regression[k]["pearson"])
    right.scatter(s[held, 0].numpy(), predictors[best][held, 0].numpy(), s=4)
    right.set(xlabel="gold similarity", ylabel="predicted", title=f"STS-B, {best}")
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "12_multilabel_and_regression.png", dpi=120)
    save("12_multilabel_and_regression", {
        "multilabel": {"data": "GoEmotions train.tsv, 6,000 comments drawn with seed 0: 4,000 train, 1,000 "
                               "validation (thresholds tuned on it), 1,000 test; 28 labels",
                       "features": "frozen all-MiniLM-L6-v2, mean pooling, max 128 tokens; linear sigmoid head, "
                                   "binary cross-entropy, AdamW lr 2e-3, batches of 32, 5 epochs",
                       "labels_never_above_half_on_validation": never,
                       "at_0.5": at_half, "tuned": tuned,
                       "thresholds": dict(zip(labels.names, task.thresholds)),
                       "train_frequency": dict(zip(labels.names, freq.tolist()))},
        "regression": {"data": "STS-B train.tsv, 5,000 pairs drawn with seed 0: 4,000 train, 1,000 test",
                       "heads": "linear, one output, MSE, AdamW lr 1e-2, batches of 32, 50 epochs",
                       "test": regression}})
else:
    committed = load("12_multilabel_and_regression")
    if committed:
        ml, sts = committed["multilabel"], committed["regression"]["test"]
        figures = [ml["at_0.5"]["test"]["f1_micro"], ml["tuned"]["test"]["f1_micro"], ml["at_0.5"]["test"]["f1_macro"],
                   ml["tuned"]["test"]["f1_macro"], ml["tuned"]["valid"]["f1_macro"],
                   *(r[k] for r in sts.values() for k in ("pearson", "spearman"))]
        assert all(f"{x:.3f}" in __doc__ for x in figures)  # the docstring quotes the committed run
        print(f"the committed --full run: GoEmotions test micro-F1 {ml['at_0.5']['test']['f1_micro']:.3f} at 0.5, "
              f"{ml['tuned']['test']['f1_micro']:.3f} tuned; STS-B test Pearson " + ", ".join(
                  f"{k} {r['pearson']:.3f}" for k, r in committed["regression"]["test"].items()))

# Exercises (worked solutions in tutorials/solutions/12_multilabel_and_regression.py)
# 1. best_threshold says it tries every cut. Check it against a brute force: for random scores and labels, the
#    F1 at its threshold equals the best F1 over every threshold halfway between two sorted scores.
# 2. Softmax with a threshold is not a multi-label head: show that for three labels no logits can give two
#    softmax probabilities above 0.5, while sigmoids can give all three; then show that BCE's gradient for one
#    cell, d/dz of BCE(z, y), is sigmoid(z) - y (minift's loss, autograd against the formula).
# 3. Pearson ignores a x + b; MSE does not. Fit the best a, b for the cosine predictor of step 6 (least squares on
#    the training pairs) and show that its Pearson does not move while its MSE falls below the untrained value.

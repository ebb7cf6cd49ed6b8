"""Lesson 7: is one score better than another, or was it luck? Validation noise and its standard error.

Run:  python tutorials/07_is_the_difference_real.py          (seconds: the bundled reviews, 8 splits)
      python tutorials/07_is_the_difference_real.py --full   (4,000 SST-2 rows, 20 splits of 1,000 held-out rows,
                                                             and 8 seeds on one split; writes
                                                             tutorials/results/07_is_the_difference_real.json, .png)

A validation accuracy is an average over n rows, so it is itself a random number: other rows (another split) or
another seed (another head initialisation, batch order, dropout) give another value. How far apart two scores
must be before the difference means something follows from the binomial standard error

    SE(accuracy) = sqrt(p (1 - p) / n)          p the accuracy, n the number of validation rows

and, for the difference of two independent scores, SE(a - b) = sqrt(SE(a)^2 + SE(b)^2). A gap under about
two SE(a - b) is what chance alone gives one time in twenty; average over seeds before calling a winner.

This lesson measures the spread directly: it embeds the bundled reviews (--full: SST-2) once with the frozen encoder
(mean pooling), then trains a linear head (a linear probe, as `--freeze encoder`) on 8 (--full: 20) different
stratified splits and compares the spread of the accuracies with the formula. Read beside it: benchmarks/README.md
(`sentence_tasks.py --seeds`, and `loop_vs_trainer.py`, which removes the randomness to compare two loops).

The measurement, from tutorials/results/07_is_the_difference_real.json (the --full command above, on an AMD EPYC with
2 cores shared with other jobs (load average about 8), one torch thread, torch 2.13.0+cpu; 48 CPU seconds): the
probe on 4,000 SST-2 rows, 20 splits of 1,000 held-out rows, accuracy 0.780 to 0.820, mean 0.798, observed
standard deviation 0.011 against the formula's 0.013; on one split, 8 training seeds (mini-batch) spread 0.803 to
0.819, standard deviation 0.006: a seed moves the score about half as much as a new draw of rows (figure:
07_is_the_difference_real.png). Step 4 reads benchmarks/results/sst2_seeds_cpu.json (fine-tuning on 20,000 SST-2
rows, 2,000 held out, seeds 1-4, 2 CPU cores): minift 0.9089 and Trainer 0.9115 on average, a gap of 0.26 points,
1.2 standard errors of the difference: not a real difference.
"""
import json
import math
import random
import statistics
from importlib import resources

import torch

from course import MODEL, RESULTS, ROOT, arguments, load, save
from minift import Encoder, Tokenizer, optim
from minift.batching import random_batches
from minift.data import LabelMap, encode_labels, read_table
from minift.heads import pool
from minift.losses import cross_entropy
from minift.splits import stratified_split

args = arguments(__doc__).parse_args()
torch.manual_seed(0)

# 1. One vector per review: the frozen encoder's mean of its token vectors, (N, H). Computed once, 100 at a time.
#    --full: 4,000 SST-2 rows drawn with seed 0 from train.tsv.
if args.full:
    examples = random.Random(0).sample(read_table(args.data_dir / "sst2" / "train.tsv", "sentence", "label"), 4000)
else:
    examples = read_table(resources.files("minift") / "bundled" / "sentiment.csv", "text", "label")
labels = LabelMap.from_labels([e.label for e in examples])
y = encode_labels(examples, labels)  # (N,)
tokenizer, encoder = Tokenizer.from_pretrained(MODEL), Encoder.from_pretrained(MODEL).eval()
parts = []
for i in range(0, len(examples), 100):
    batch = tokenizer([e.text for e in examples[i:i + 100]], max_length=64)
    with torch.no_grad():
        hidden = encoder(batch["input_ids"], batch["attention_mask"])  # (B, T, H)
        parts.append(pool(encoder, hidden, batch["attention_mask"], "mean"))  # (B, H)
x = torch.cat(parts)  # (N, H)


def probe_accuracy(split_seed: int, seed: int | None = None) -> tuple[float, int]:
    """Train a linear head on one split's training rows; return (validation accuracy, validation rows).
    With `seed`, the head starts from that seed and takes 3 shuffled epochs of batches of 32 instead of full-batch
    steps: the rows stay, only the randomness of training changes."""
    tr, va = stratified_split([e.label for e in examples], 0.25, seed=split_seed)
    if seed is not None:
        torch.manual_seed(seed)
    head = torch.nn.Linear(x.shape[1], len(labels))
    opt = optim.AdamW(head.parameters(), lr=1e-2, weight_decay=0.0)
    if seed is None:
        batches = [tr] * 200  # full-batch steps: the probe's loss is convex, so this converges
    else:
        batches = [[tr[i] for i in b] for epoch in range(3) for b in random_batches(len(tr), 32, seed, epoch)]
    for rows in batches:
        loss = cross_entropy(head(x[rows]), y[rows])
        loss.backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        return float((head(x[va]).argmax(-1) == y[va]).float().mean()), len(va)


# 2. The same recipe on 8 splits (--full: 20): only the rows differ.
runs = [probe_accuracy(seed) for seed in range(20 if args.full else 8)]
accs, n = [a for a, _ in runs], runs[0][1]
mean, spread = statistics.mean(accs), statistics.stdev(accs)
se = math.sqrt(mean * (1 - mean) / n)
print(f"accuracy on {len(accs)} splits:", " ".join(f"{a:.3f}" for a in accs))
print(f"mean {mean:.3f}, observed spread (std) {spread:.3f}; the formula sqrt(p(1-p)/n) with n={n}: {se:.3f}")
assert mean > 0.75, "the frozen encoder's sentence vectors should separate the reviews"
assert 0.25 * se < spread < 4 * se, "the spread should be of the size the binomial formula predicts"

# 3. The rows fixed, the seed changed (--full only): the same split, 8 seeds of a mini-batch probe. The formula
#    counts the noise of drawing n rows; a seed adds noise of its own, on the same rows, of another size.
if args.full:
    seed_accs = [probe_accuracy(0, seed=s)[0] for s in range(1, 9)]
    print("split 0, 8 training seeds:", " ".join(f"{a:.3f}" for a in seed_accs),
          f"std {statistics.stdev(seed_accs):.4f}")

# 4. The same arithmetic for a real comparison, from a committed benchmark: minift and Hugging Face's Trainer each
#    fine-tune all-MiniLM-L6-v2 on 20,000 SST-2 rows, seeds 1-4, scored on the same 2,000 held-out rows
#    (benchmarks/results/sst2_seeds_cpu.json; benchmarks/README.md gives the command and the machine).
bench = json.loads((ROOT / "benchmarks" / "results" / "sst2_seeds_cpu.json").read_text())
scores = {system: [r["metrics"]["accuracy"] for name, r in bench["runs"].items() if name.split("/")[1] == system]
          for system in ("minift", "hf-trainer")}
n_sst2 = bench["runs"]["sst2/minift/seed1"]["n_eval"]
p = statistics.mean(scores["minift"] + scores["hf-trainer"])
se_one = math.sqrt(p * (1 - p) / n_sst2)
se_diff = math.sqrt(2) * se_one
print(f"SST-2, {n_sst2} rows, accuracy near {p:.3f}: one score's SE {100 * se_one:.2f} points; a difference of two "
      f"runs {100 * se_diff:.2f} points, so gaps under about {200 * se_diff:.1f} points need several seeds")
sem = {}
for system, accs_ in scores.items():
    sem[system] = statistics.stdev(accs_) / math.sqrt(len(accs_))  # the standard error of a mean of k seeds
    print(f"  {system:10} seeds {' '.join(f'{a:.4f}' for a in accs_)}: mean {statistics.mean(accs_):.4f}, "
          f"std {statistics.stdev(accs_):.4f}, SE of the mean {sem[system]:.4f}")
gap = statistics.mean(scores["hf-trainer"]) - statistics.mean(scores["minift"])
se_gap = math.sqrt(sem["minift"] ** 2 + sem["hf-trainer"] ** 2)
print(f"  gap {100 * gap:.2f} points = {gap / se_gap:.1f} SE of the difference of the means: not a real difference")
assert abs(gap) < 2 * se_gap
assert max(statistics.stdev(a) for a in scores.values()) < se_one  # seeds on the same rows move less than new rows

if args.full:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(accs, bins=10, alpha=0.7, label=f"{len(accs)} splits")
    ax.hist(seed_accs, bins=10, alpha=0.7, label="8 seeds, one split")
    for k in (-2, 0, 2):
        ax.axvline(mean + k * se, color="k", ls=":" if k else "-")
    ax.set(xlabel=f"validation accuracy ({n} rows)", title="SST-2 linear probe; lines: mean and ±2 SE(formula)")
    ax.legend()
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "07_is_the_difference_real.png", dpi=120)
    save("07_is_the_difference_real", {
        "data": "SST-2 train.tsv, 4,000 rows drawn with seed 0; stratified 75/25 splits with seeds 0-19",
        "probe": "frozen all-MiniLM-L6-v2, mean pooling, max_length 64; linear head, AdamW lr 1e-2, 200 full-batch "
                 "steps (splits) or 3 epochs of batches of 32 (seeds 1-8, split 0)",
        "valid_rows": n, "split_accuracies": accs, "mean": mean, "split_std": spread, "formula_se": se,
        "seed_accuracies": seed_accs, "seed_std": statistics.stdev(seed_accs)})
else:
    committed = load("07_is_the_difference_real")
    if committed:
        print(f"the committed --full run on SST-2: {len(committed['split_accuracies'])} splits of "
              f"{committed['valid_rows']} rows, std {committed['split_std']:.4f} against the formula's "
              f"{committed['formula_se']:.4f}")

# Exercises (worked solutions in tutorials/solutions/07_is_the_difference_real.py)
# 1. How many validation rows does a 0.91 accuracy need for its SE to be half a point (0.005)?
# 2. Two runs score 0.900 and 0.910 on the same 2,000 rows. How many standard errors apart are they? Would you
#    report one as better?

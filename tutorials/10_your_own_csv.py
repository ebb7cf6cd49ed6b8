"""Lesson 10: your own CSV: train / validation / test splits, label maps, predicting with probabilities, calibration
(expected calibration error, the reliability diagram, temperature scaling) and the per-class report.

Run:  python tutorials/10_your_own_csv.py           (seconds: the bundled reviews, rewritten as a CSV of your own;
                                                     a linear probe, 40 steps)
      python tutorials/10_your_own_csv.py --full    (2,000 SST-2 sentences, the whole model fine-tuned for 2 epochs;
                                                     writes tutorials/results/10_your_own_csv.json and .png)

Everything here goes through the commands a user runs on a file of their own: `python -m minift.train` with
`--test-fraction` and `--calibrate`, `python -m minift.predict`, `python -m minift.evaluate --report`. The lesson
calls their `main` in the same process (the same code as on the command line, without loading Python three times)
and then checks what they printed and saved against the formulas, computed here by hand.

A classifier's probabilities are calibrated when, of all the answers given with confidence 0.8, 80 % are right.
Fine-tuned networks tend to be over-confident (Guo et al. 2017); a frozen encoder with a small head can as well be
under-confident. Expected calibration error (ECE) measures the gap, bin by bin; temperature scaling divides the
logits by one number T fitted on the validation rows, which changes the confidences and never the predictions.

Read beside it: minift/data.py (read_table, LabelMap), minift/splits.py (stratified_split), minift/recipes.py
(split_rows, calibrate), minift/metrics/calibration.py (reliability_bins, expected_calibration_error,
fit_temperature, nll), minift/report.py (the --report text), minift/predict.py, minift/evaluate.py, and
`python -m minift.train --help` ("splits and calibration").

The measurement, from tutorials/results/10_your_own_csv.json (the --full command above, on an AMD EPYC with 2 cores
shared with other jobs, load average 7-10, one torch thread, torch 2.13.0+cpu; 98 CPU seconds, 355 s wall): 2,000
SST-2 sentences split 1,200 / 400 / 400, `minift.train --test-fraction 0.2 --calibrate --pooling mean --epochs 2`
(150 steps). Validation accuracy 0.845, test accuracy 0.828 (macro-F1 0.823). The fitted temperature is 1.095: the
fine-tuned model was slightly over-confident (mean confidence 0.862 on test for 0.828 accuracy), and T softens it.
Validation: ECE 0.0275 -> 0.0171, NLL 0.3572 -> 0.3559. Test: ECE 0.0508 -> 0.0522, NLL 0.3960 -> 0.3914. So on
fresh rows the NLL, which T minimises, improved a little, and the ECE did not: after 2 epochs there was little
mis-calibration to remove, and on 400 rows an ECE difference of 0.001 is noise (figure: 10_your_own_csv.png, the
reliability diagram of the test rows before and after T). Temperature scaling earns its keep on models trained
longer, which grow more confident than they are right (Guo et al. 2017); measure it on your own data before and
after, on rows the temperature was not fitted on.
"""
import contextlib
import csv
import io
import json
import random
import shlex
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from course import RESULTS, arguments, load, save
from minift import cli, evaluate, predict, recipes, train, train_flags
from minift.data import LabelMap, read_table
from minift.metrics import (classification_report, confusion_matrix, expected_calibration_error, fit_temperature,
                            nll, reliability_bins)
from minift.splits import stratified_split

args = arguments(__doc__).parse_args()
folder = tempfile.TemporaryDirectory(prefix="minift-lesson10-")  # removed when the lesson ends
work = Path(folder.name)


def run(main, argv: list[str]) -> str:
    """A command's main(argv), as `python -m ...` would run it; returns what it printed."""
    print("$ python -m", main.__module__, shlex.join(argv).replace(str(work) + "/", ""))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(argv)
    return out.getvalue()


# 1. Your own CSV. Any column names, any label strings: here the bundled reviews rewritten with an id column, the
#    text under "review" and the labels "thumbs down" / "thumbs up" under "verdict" (--full: 2,000 SST-2 sentences,
#    labels "negative" / "positive"). The file goes to a temporary folder, never into the repository.
if args.full:
    source = random.Random(0).sample(read_table(args.data_dir / "sst2" / "train.tsv", "sentence", "label"), 2000)
    names = {"0": "negative", "1": "positive"}
else:
    source = read_table(resources.files("minift") / "bundled" / "sentiment.csv", "text", "label")
    names = {"negative": "thumbs down", "positive": "thumbs up"}
data = work / "reviews.csv"
with open(data, "w", newline="", encoding="utf-8") as f:
    writer = csv.writer(f)
    writer.writerow(["id", "review", "verdict"])
    writer.writerows([i, e.text, names[e.label]] for i, e in enumerate(source))
print("".join(data.read_text(encoding="utf-8").splitlines(keepends=True)[:3]), end="")
rows = read_table(data, "review", "verdict")  # columns by name (or 0-based index, with has_header=False)
assert [e.text for e in rows] == [e.text for e in source]

# 2. The label map: the distinct labels, sorted (as numbers when all are integers, else as text), become ids
#    0..C-1. The model only ever sees ids; the map travels with it in minift.json, so predict prints names.
labels = LabelMap.from_labels([e.label for e in rows])
print(f"labels {labels.names} -> ids {[labels.encode(n) for n in labels.names]}; counts "
      f"{ {n: sum(e.label == n for e in rows) for n in labels.names} }")
assert labels.names == sorted(names.values()) and labels.decode(labels.encode(labels.names[1])) == labels.names[1]

# 3. Three splits. Validation picks the model and fits the temperature; the test rows are scored once, at the end,
#    by a model that never saw them and was never chosen on them. `--test-fraction 0.2` holds out a stratified 20 %
#    first (each class in proportion), then `--valid-fraction 0.2` of the whole file is taken from what is left.
#    Both are seeded (`--seed`, 42 by default): the same file and seed give the same rows, so the lesson can
#    recompute the split that train makes, and check it against recipes.split_rows, the function train calls.
seed, test_fraction, valid_fraction = 42, 0.2, 0.2
y_all = [e.label for e in rows]
keep, test_idx = stratified_split(y_all, test_fraction, seed)
tr, va = stratified_split([y_all[i] for i in keep], valid_fraction / (1 - test_fraction), seed)
train_idx, valid_idx = [keep[i] for i in tr], [keep[i] for i in va]
parts = {"train": train_idx, "valid": valid_idx, "test": test_idx}
for name, idx in parts.items():
    share = {n: round(sum(y_all[i] == n for i in idx) / len(idx), 3) for n in labels.names}
    print(f"  {name:5}: {len(idx):4} rows, class shares {share}")
assert sorted(train_idx + valid_idx + test_idx) == list(range(len(rows)))  # disjoint, and they cover the file
assert len(test_idx) == round(test_fraction * len(rows)) and len(valid_idx) == round(valid_fraction * len(rows))
flags = ["--train", str(data), "--text-col", "review", "--label-col", "verdict", "--test-fraction", "0.2"]
with contextlib.redirect_stderr(io.StringIO()):  # split_rows prints the sizes; train prints them below
    split = recipes.split_rows(train_flags.parser().parse_args(flags), None, rows)
assert [[e.line for e in part] for part in split] == [[rows[i].line for i in idx] for idx in parts.values()]
assert stratified_split(y_all, test_fraction, seed + 1)[1] != test_idx  # another seed, other rows

# 4. Train. Fast mode: a linear probe (the encoder frozen, only the 770 weights of the head learn: seconds);
#    --full fine-tunes the whole model for 2 epochs. `--calibrate` fits the temperature on the validation rows once
#    training ends and saves it in minift.json; results.json holds the validation and test scores.
out = work / "model"
how = ["--pooling", "mean", "--epochs", "2"] if args.full else \
    ["--freeze", "encoder", "--pooling", "mean", "--lr", "1e-2", "--max-steps", "40"]
run(train.main, [*flags, "--calibrate", *how, "--max-length", "64", "--out", str(out), "--quiet"])
results = json.loads((out / "results.json").read_text())
print(f"validation accuracy {results['valid']['accuracy']:.3f}, test accuracy {results['test']['accuracy']:.3f}; "
      f"temperature {results['calibration']['temperature']:.3f}")
assert results["test"]["accuracy"] > 0.75, "a few steps on these reviews should be far above chance"

# 5. Predict. Every label's probability, under the names of your CSV (softmax(z / T), with the saved T).
#    From Python, the same through the task API: cli.load_trained, then task.predict.
texts = ["An absolute delight from start to finish.", "Cold food, rude staff, never again."]
printed = run(predict.main, ["--model", str(out)] + [arg for t in texts for arg in ("--text", t)])
print(printed, end="")
predicted = [json.loads(line) for line in printed.splitlines()]
task, model = cli.load_trained(out, torch.device("cpu"))
assert task.predict(model, [task.example(t) for t in texts]) == predicted
assert all(abs(sum(p["probabilities"].values()) - 1) < 1e-5 for p in predicted)
assert [p["label"] for p in predicted] == [labels.names[1], labels.names[0]]


# 6. Calibration. The logits of the validation and test rows, recomputed with the saved model. ECE written out:
#    bin the rows by confidence c = max_k p_k into 15 equal bins (lo, hi]; in each, compare the accuracy with the
#    mean confidence; weigh each gap by the bin's share of the rows.
def logits_of(idx) -> np.ndarray:
    return task.logits(model, task.featurize([rows[i] for i in idx])).double().numpy()  # (N, C)


def softmax(z: np.ndarray, t: float = 1.0) -> np.ndarray:
    e = np.exp(z / t - (z / t).max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def ece_by_hand(p: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    confidence, correct = p.max(axis=1), p.argmax(axis=1) == y
    total = 0.0
    for m in range(bins):
        lo, hi = m / bins, (m + 1) / bins
        inside = (confidence > lo) & (confidence <= hi) if m else confidence <= hi
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return total


z = {name: logits_of(idx) for name, idx in parts.items() if name != "train"}
y = {name: np.array([labels.encode(rows[i].label) for i in idx]) for name, idx in parts.items()}
t = task.temperature
assert t == fit_temperature(z["valid"], y["valid"])  # what --calibrate saved: the NLL minimiser on validation
table = {}
for name in ("valid", "test"):
    before, after = softmax(z[name]), softmax(z[name], t)
    assert abs(ece_by_hand(before, y[name]) - expected_calibration_error(before, y[name])) < 1e-12
    assert (before.argmax(1) == after.argmax(1)).all()  # T > 0 rescales the logits: the argmax cannot move
    table[name] = {"rows": len(y[name]), "accuracy": float((before.argmax(1) == y[name]).mean()),
                   "ece_before": expected_calibration_error(before, y[name]),
                   "ece_after": expected_calibration_error(after, y[name]),
                   "nll_before": nll(z[name], y[name]), "nll_after": nll(z[name], y[name], t),
                   "mean_confidence_before": float(before.max(1).mean()),
                   "mean_confidence_after": float(after.max(1).mean())}
    r = table[name]
    print(f"  {name:5}: accuracy {r['accuracy']:.3f} | mean confidence {r['mean_confidence_before']:.3f} -> "
          f"{r['mean_confidence_after']:.3f} | ECE {r['ece_before']:.4f} -> {r['ece_after']:.4f} | "
          f"NLL {r['nll_before']:.4f} -> {r['nll_after']:.4f}  (T = {t:.3f})")
#    T is chosen to minimise the validation NLL, and T = 1 is one of the candidates, so the validation NLL cannot
#    rise. ECE is not what T minimises: on a few dozen rows it can move either way. Test is the honest check.
assert table["valid"]["nll_after"] <= table["valid"]["nll_before"] + 1e-12
print("  T < 1 sharpens under-confident probabilities, T > 1 softens over-confident ones: here "
      + ("sharpened" if t < 1 else "softened"))

# 7. The reliability diagram, as text: per confidence bin, how many test rows, their accuracy and mean confidence.
#    On the diagonal (accuracy = confidence) the model is calibrated. --full draws it (before and after T).
bins = {"before": reliability_bins(softmax(z["test"]), y["test"]),
        "after": reliability_bins(softmax(z["test"], t), y["test"])}
b = bins["before"]
for m in np.flatnonzero(b.counts):
    print(f"  confidence ({b.edges[m]:.3f}, {b.edges[m + 1]:.3f}]: {b.counts[m]:4} rows, accuracy "
          f"{b.accuracy[m]:.3f}, mean confidence {b.confidence[m]:.3f}")
assert b.counts.sum() == len(test_idx)

# 8. The per-class report on the test rows: `minift.evaluate --report` prints precision, recall, F1 and support
#    per class, the confusion matrix (rows true, columns predicted) and the ECE before and after T. By hand from
#    the predictions: precision_c = TP / (TP + FP), recall_c = TP / (TP + FN), F1 = their harmonic mean.
test_csv = work / "test.csv"
with open(test_csv, "w", newline="", encoding="utf-8") as f:
    csv.writer(f).writerows([["id", "review", "verdict"]] + [[i, rows[i].text, rows[i].label] for i in test_idx])
printed = run(evaluate.main, ["--model", str(out), "--data", str(test_csv), "--report"])
print(printed, end="")
pred = z["test"].argmax(1)
matrix = np.array([[int(((y["test"] == a) & (pred == p)).sum()) for p in range(len(labels))]
                   for a in range(len(labels))])  # (C, C): row = true class, column = predicted
assert (matrix == confusion_matrix(y["test"], pred, labels=np.arange(len(labels)))).all()
report = classification_report(y["test"], pred, labels=np.arange(len(labels)), target_names=labels.names)
for c, name in enumerate(labels.names):
    tp, fp, fn = matrix[c, c], matrix[:, c].sum() - matrix[c, c], matrix[c].sum() - matrix[c, c]
    p, r = tp / (tp + fp), tp / (tp + fn)
    assert np.allclose([p, r, 2 * p * r / (p + r)], [report[name][k] for k in ("precision", "recall", "f1-score")])
    line = next(li.strip() for li in printed.splitlines() if li.strip().startswith(name + " "))
    assert np.allclose([float(v) for v in line[len(name):].split()], [p, r, 2 * p * r / (p + r), matrix[c].sum()],
                       atol=5e-5)  # the printed row, to its 4 digits
assert json.loads(printed.splitlines()[0])["accuracy"] == results["test"]["accuracy"]
assert f"{table['test']['ece_before']:.4f} before calibration, {table['test']['ece_after']:.4f} after" in printed

if args.full:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.5), sharey=True)
    for ax, (when, rb) in zip(axes, bins.items()):
        centres = (rb.edges[:-1] + rb.edges[1:]) / 2
        ax.bar(centres, np.nan_to_num(rb.accuracy), width=np.diff(rb.edges), edgecolor="black", label="accuracy")
        ax.plot([0, 1], [0, 1], ls=":", color="gray", label="calibrated")
        ece = table["test"][f"ece_{when}"]
        ax.set(xlabel="confidence", xlim=(0, 1), ylim=(0, 1), title=f"test, {when} T = {t:.2f}: ECE {ece:.3f}")
    axes[0].set_ylabel("accuracy")
    axes[0].legend()
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "10_your_own_csv.png", dpi=120)
    save("10_your_own_csv", {
        "data": "SST-2 train.tsv, 2,000 rows drawn with seed 0, written as a CSV with string labels",
        "split": {name: len(idx) for name, idx in parts.items()},
        "training": "python -m minift.train " + " ".join(["--test-fraction 0.2 --calibrate", *how,
                                                          "--max-length 64"]),
        "temperature": t, "results": results, "calibration": table})
else:
    committed = load("10_your_own_csv")
    if committed:
        c = committed["calibration"]["test"]
        print(f"the committed --full run (SST-2, {c['rows']} test rows): accuracy {c['accuracy']:.3f}, ECE "
              f"{c['ece_before']:.4f} -> {c['ece_after']:.4f} at T = {committed['temperature']:.3f}")

# Exercises (worked solutions in tutorials/solutions/10_your_own_csv.py)
# 1. Make a model over-confident on purpose: take logits whose softmax is calibrated (draw each label from its own
#    probability) and multiply them by 3. Show that ECE rises, and that fit_temperature finds T near 3 and brings
#    the ECE back down. Check fit_temperature against a grid search of the NLL over T.
# 2. ECE is an estimate from bins. For a perfectly calibrated model (labels drawn from its probabilities) compute
#    ECE at 200 and at 20,000 rows, and with 5, 15 and 50 bins: why is it not 0, and which way does it move?
# 3. Labels from a CSV: what ids do LabelMap.from_labels give to the labels "10", "9", "2", and to "10", "9", "b"?
#    What does encoding a label that training never saw do?

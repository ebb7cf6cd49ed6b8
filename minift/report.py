"""`python -m minift.evaluate --report / --plots`: the per-class table, the confusion matrix, calibration, and
the pictures people would rather look at, for sentence models (classification, multilabel, regression).

    --report   classification: scikit-learn's classification_report table (per class: precision, recall, F1,
               support; then accuracy and the macro / weighted averages), the confusion matrix (rows true,
               columns predicted), and the expected calibration error (before and after the saved temperature);
               multilabel: the per-label table at the model's thresholds; regression: the scores
    --plots    PNGs beside the model: confusion_matrix.png, roc.png, precision_recall.png (one-vs-rest per
               class; for two classes the positive, second, label), reliability.png (accuracy per confidence bin,
               with ECE); multilabel: roc.png and precision_recall.png per label; regression: scatter.png
               (predicted against true)

The numbers come from minift/metrics (classification.py, curves.py, calibration.py); matplotlib is optional and
only --plots needs it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from minift import atomic, cli
from minift.metrics import (classification_report, confusion_matrix, expected_calibration_error,
                            format_confusion_matrix, format_report, mae, precision_recall_curve, regression_summary,
                            reliability_bins, roc_curve)

KINDS = ("classification", "multilabel", "regression")


@dataclass
class Outputs:
    """A sentence model's outputs on labelled rows: what the report and the plots are drawn from."""

    kind: str
    names: list[str]  # class or label names ([] for regression)
    y: np.ndarray  # (N,) class ids or values, or (N, L) 0/1
    logits: np.ndarray  # (N, C)
    probs: np.ndarray  # (N, C): softmax(z / T), or sigmoid(z) for multilabel
    pred: np.ndarray  # (N,) argmax, (N, L) the model's 0/1 decisions, or (N,) values
    temperature: float | None


def check(task, plots: bool):
    """A UsageError, before any work, for a model that has no per-class report, or --plots without matplotlib;
    returns matplotlib's pyplot for --plots."""
    if task.kind not in KINDS:
        raise cli.UsageError(f"--report and --plots are for {', '.join(KINDS)} models; this one does {task.kind}")
    if not plots:
        return None
    try:
        import matplotlib
    except ImportError:
        raise cli.UsageError('--plots needs matplotlib: pip install "minift[plot]" (or pip install matplotlib)') \
            from None
    matplotlib.use("Agg")  # files only: no window, no display needed
    from matplotlib import pyplot
    return pyplot


def outputs(task, model, features, batch_size: int = 64, device="cpu") -> Outputs:
    logits = task.logits(model, features, batch_size, device)  # (N, C)
    y = torch.stack([f["labels"] for f in features]).numpy()
    names = task.labels.names if task.labels is not None else []
    if task.kind == "regression":
        return Outputs(task.kind, names, y, logits.numpy(), logits.numpy(), logits[:, 0].numpy(), None)
    probs = task.probabilities(logits).double().numpy()
    pred = task.decide(logits).numpy() if task.kind == "multilabel" else logits.argmax(-1).numpy()
    return Outputs(task.kind, names, y.astype(np.int64), logits.numpy(), probs, pred, task.temperature)


def text(out: Outputs) -> str:
    """The --report text."""
    if out.kind == "regression":
        scores = regression_summary(out.y, out.pred)
        return "".join(f"{k:>9}: {v:.4f}\n" for k, v in {**scores, "mae": mae(out.y, out.pred)}.items())
    if out.kind == "multilabel":
        table = classification_report(out.y, out.pred, target_names=out.names, zero_division=0.0)
        return "per label, at the model's thresholds:\n" + format_report(table, digits=4)
    ids = np.arange(len(out.names))
    table = classification_report(out.y, out.pred, labels=ids, target_names=out.names, zero_division=0.0)
    lines = [format_report(table, digits=4), "confusion matrix (rows: true label, columns: predicted)",
             format_confusion_matrix(confusion_matrix(out.y, out.pred, labels=ids), out.names)]
    raw = torch.from_numpy(out.logits).double().softmax(-1).numpy()
    lines.append(f"expected calibration error (15 bins): {expected_calibration_error(raw, out.y):.4f}"
                 + (f" before calibration, {expected_calibration_error(out.probs, out.y):.4f} after (temperature "
                    f"{out.temperature:.4f})" if out.temperature else ""))
    return "\n".join(lines) + "\n"


def _save(fig, path: Path, plt) -> Path:
    atomic.write_file(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return path


def _curves(out: Outputs, folder: Path, plt) -> list[Path]:
    """roc.png and precision_recall.png: one-vs-rest per class (per label), the positive class for two."""
    columns = [1] if out.kind == "classification" and len(out.names) == 2 else range(len(out.names))
    roc, ax_roc = plt.subplots(figsize=(6, 5), constrained_layout=True)
    pr, ax_pr = plt.subplots(figsize=(6, 5), constrained_layout=True)
    for c in columns:
        positive = out.y[:, c] if out.kind == "multilabel" else (out.y == c).astype(np.int64)
        if positive.min() == positive.max():
            continue  # one class only: no curve
        fpr, tpr, _ = roc_curve(positive, out.probs[:, c])
        area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
        ax_roc.plot(fpr, tpr, label=f"{out.names[c]} (AUC {area:.3f})")
        precision, recall, _ = precision_recall_curve(positive, out.probs[:, c])
        ax_pr.step(recall, precision, where="post", label=out.names[c])
    ax_roc.plot([0, 1], [0, 1], ls=":", color="gray")
    ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax_pr.set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    for ax in (ax_roc, ax_pr):
        ax.legend(fontsize="small")
    return [_save(roc, folder / "roc.png", plt), _save(pr, folder / "precision_recall.png", plt)]


def _confusion(out: Outputs, folder: Path, plt) -> Path:
    matrix = confusion_matrix(out.y, out.pred, labels=np.arange(len(out.names)))
    fig, ax = plt.subplots(figsize=(2.5 + 0.6 * len(out.names), 2 + 0.6 * len(out.names)), constrained_layout=True)
    ax.imshow(matrix, cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        ax.text(j, i, str(count), ha="center", va="center", color="white" if count > matrix.max() / 2 else "black")
    ticks = np.arange(len(out.names))
    ax.set(xticks=ticks, yticks=ticks, xticklabels=out.names, yticklabels=out.names, xlabel="predicted",
           ylabel="true", title="confusion matrix")
    return _save(fig, folder / "confusion_matrix.png", plt)


def _reliability(out: Outputs, folder: Path, plt) -> Path:
    bins = reliability_bins(out.probs, out.y)
    ece = expected_calibration_error(out.probs, out.y)
    fig, ax = plt.subplots(figsize=(5, 5), constrained_layout=True)
    centres, width = (bins.edges[:-1] + bins.edges[1:]) / 2, np.diff(bins.edges)
    ax.bar(centres, np.nan_to_num(bins.accuracy), width=width, edgecolor="black", label="accuracy")
    ax.plot([0, 1], [0, 1], ls=":", color="gray", label="calibrated")
    what = f"temperature {out.temperature:.3f}" if out.temperature else "uncalibrated"
    ax.set(xlabel="confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
           title=f"reliability ({what}), ECE {ece:.4f}")
    ax.legend()
    return _save(fig, folder / "reliability.png", plt)


def _scatter(out: Outputs, folder: Path, plt) -> Path:
    fig, ax = plt.subplots(figsize=(5, 5), constrained_layout=True)
    ax.scatter(out.y, out.pred, s=8, alpha=0.6)
    lo, hi = float(min(out.y.min(), out.pred.min())), float(max(out.y.max(), out.pred.max()))
    ax.plot([lo, hi], [lo, hi], ls=":", color="gray")
    ax.set(xlabel="true", ylabel="predicted", title="predicted against true")
    return _save(fig, folder / "scatter.png", plt)


def plots(out: Outputs, folder: Path, plt) -> list[Path]:
    """Write the --plots PNGs into `folder`; returns their paths."""
    if out.kind == "regression":
        return [_scatter(out, folder, plt)]
    written = _curves(out, folder, plt)
    if out.kind == "classification":
        written += [_confusion(out, folder, plt), _reliability(out, folder, plt)]
    return written

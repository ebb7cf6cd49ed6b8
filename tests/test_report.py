"""`python -m minift.evaluate --report / --plots` (minift/report.py): the per-class table and the confusion matrix
printed for a trained model equal scikit-learn's on the same predictions; --plots writes the PNGs; the ECE before
and after a saved temperature; errors for models without a per-class report and without matplotlib."""
import builtins
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from sklearn.metrics import classification_report, confusion_matrix

from minift import evaluate, report, train
from minift.cli import load_trained
from minift.metrics import expected_calibration_error
from tests.test_train_cli import files, write_csv  # noqa: F401  (files: the module's fixture)

pytestmark = pytest.mark.usefixtures("one_thread")


def trained(files, out, *extra, data="sentiment"):
    train.main(["--train", files[data], "--model", files["model"], "--out", str(out), "--epochs", "2",
                "--batch-size", "8", "--lr", "3e-3", "--seed", "7", "--quiet", *extra])
    return out


def predictions(out, data):
    task, model = load_trained(out, torch.device("cpu"))
    features = task.featurize(task.read(data))
    logits = task.logits(model, features)
    y = torch.stack([f["labels"] for f in features]).numpy()
    return task, logits, y


def test_report_table_and_confusion_matrix_equal_sklearn_and_plots_are_written(files, tmp_path, capsys):
    out = trained(files, tmp_path / "run", "--calibrate")
    capsys.readouterr()
    evaluate.main(["--model", str(out), "--data", files["sentiment"], "--report", "--plots"])
    captured = capsys.readouterr()
    scores, text = captured.out.split("\n", 1)
    task, logits, y = predictions(out, files["sentiment"])
    pred = logits.argmax(-1).numpy()
    assert json.loads(scores)["accuracy"] == pytest.approx((pred == y).mean())
    expected = classification_report(y, pred, labels=[0, 1], target_names=task.labels.names, digits=4,
                                     zero_division=0.0)
    assert expected in text
    matrix = confusion_matrix(y, pred, labels=[0, 1])
    rows = [line.split() for line in text.split("columns: predicted)\n")[1].splitlines()[:3]]
    assert rows[0] == ["true\\pred", "negative", "positive"]
    assert [[int(v) for v in row[1:]] for row in rows[1:]] == matrix.tolist()
    t = task.temperature
    before = expected_calibration_error(logits.double().softmax(-1).numpy(), y)
    after = expected_calibration_error((logits.double() / t).softmax(-1).numpy(), y)
    assert f"{before:.4f} before calibration, {after:.4f} after (temperature {t:.4f})" in text
    for name in ("confusion_matrix.png", "roc.png", "precision_recall.png", "reliability.png"):
        png = out / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {png}" in captured.err


def test_multilabel_report_and_regression_scatter(files, tmp_path, capsys):
    out = trained(files, tmp_path / "multi", "--task", "multilabel", "--tune-thresholds", data="multi")
    capsys.readouterr()
    evaluate.main(["--model", str(out), "--data", files["multi"], "--report", "--plots"])
    text = capsys.readouterr().out
    task, logits, y = predictions(out, files["multi"])
    chosen = (logits.sigmoid().double().numpy() > np.array(task.thresholds)).astype(int)
    assert classification_report(y.astype(int), chosen, target_names=task.labels.names, digits=4,
                                 zero_division=0.0) in text
    assert (out / "roc.png").is_file() and not (out / "confusion_matrix.png").exists()

    out = tmp_path / "reg"
    train.main(["--task", "regression", "--train", files["scores"], "--model", files["model"], "--out", str(out),
                "--text-col", "a", "--text-pair-col", "b", "--label-col", "score", "--max-steps", "2", "--quiet"])
    evaluate.main(["--model", str(out), "--data", files["scores"], "--report", "--plots"])
    assert "pearson" in capsys.readouterr().out and (out / "scatter.png").is_file()


def test_report_errors(files, tmp_path, monkeypatch):
    out = trained(files, tmp_path / "run", "--max-steps", "1")
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)
    task, _ = load_trained(out, torch.device("cpu"))
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(report.cli.UsageError, match="--plots needs matplotlib"):
        report.check(task, plots=True)
    monkeypatch.undo()
    task.kind = "ner"
    with pytest.raises(report.cli.UsageError, match="this one does ner"):
        report.check(task, plots=False)
    proc = subprocess.run([sys.executable, "-m", "minift.evaluate", "--model", str(out), "--data", "/no/file.csv",
                           "--report"], capture_output=True, text=True)
    assert proc.returncode == 2 and "/no/file.csv" in proc.stderr and "Traceback" not in proc.stderr

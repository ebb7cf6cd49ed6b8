"""`python -m minift.plot DIR`: a PNG of loss, metric and learning rate; missing log or matplotlib exit 2."""
import json
import subprocess
import sys

import pytest

from minift import cli, plot

ROWS = [{"step": s, "epoch": s / 4, "train_loss": 0.7 - 0.05 * s, "lr": 1e-4 * (1 - s / 8), "grad_norm": 1.0,
         "valid": {"f1": 0.3, "accuracy": 0.5 + 0.05 * s, "auc": 0.6}} for s in range(1, 7)]


def run_folder(tmp_path, rows=ROWS, task="classification", tail=""):
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)
    (tmp_path / "minift.json").write_text(json.dumps({"task": task}))
    return tmp_path


def test_draws_the_curves_to_a_png(tmp_path, capsys):
    matplotlib = pytest.importorskip("matplotlib")
    folder = run_folder(tmp_path, tail='{"step": 7, "train_l')  # a line still being written is left out
    plot.main([str(folder)])
    png = folder / "curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {png}" in capsys.readouterr().out
    assert matplotlib.image.imread(png).std() > 0.01  # not a blank image
    assert plot.main_metric(folder, ROWS) == "accuracy"  # classification's, not the log's first metric
    assert not list(folder.glob("*.tmp"))


def test_out_and_metric_flags(tmp_path):
    pytest.importorskip("matplotlib")
    folder = run_folder(tmp_path, task="ner")
    assert plot.main_metric(folder, ROWS) == "f1"
    plot.main([str(folder), "--out", str(tmp_path / "auc.svg"), "--metric", "auc"])
    assert (tmp_path / "auc.svg").read_text().lstrip().startswith("<?xml")
    assert cli.run(plot.main, [str(folder), "--metric", "bleu"]) == 2


def test_missing_log_exits_2_with_one_message(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "minift.plot", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{tmp_path / 'metrics.jsonl'}: no such file" in proc.stderr and "--out folder" in proc.stderr
    assert not (tmp_path / "curves.png").exists()


def test_an_empty_or_broken_log_exits_2(tmp_path, capsys):
    assert cli.run(plot.main, [str(run_folder(tmp_path, rows=[]))]) == 2
    assert "no evaluations yet" in capsys.readouterr().err
    assert cli.run(plot.main, [str(run_folder(tmp_path, tail="oops\n{}\n"))]) == 2
    assert "metrics.jsonl, line 7: not JSON" in capsys.readouterr().err


def test_without_matplotlib_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    assert cli.run(plot.main, [str(run_folder(tmp_path))], prog="minift.plot") == 2
    err = capsys.readouterr().err
    assert 'pip install "minift[plot]"' in err and "pip install matplotlib" in err
    assert not (tmp_path / "curves.png").exists()

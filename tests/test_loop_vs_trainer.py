"""minift's training loop takes the same updates as `transformers.Trainer` (benchmarks/loop_vs_trainer.py).

The tiny-model check runs in the default suite (accelerate, which Trainer requires, is in the `test` extra):
a 2-layer random BERT without dropout, 4 updates on one full batch of 16 rows, so nothing is random; the
losses of every update, the trained logits and every weight must agree within benchmarks/loop_vs_trainer.py's
tolerances (float32 sums in different orders: loss 1e-4, logits 1e-3, weights 1e-4), and training must have
moved the logits 100 times further than that. A loop that skips or mis-scales an update fails it.
The MiniLM check is slow: `python -m pytest -m slow tests/test_loop_vs_trainer.py`.
"""
import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

from tests.tiny import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
loop_vs_trainer = pytest.importorskip("loop_vs_trainer")
NO_ACCELERATE = importlib.util.find_spec("accelerate") is None
MINILM = ROOT.parent / "shared" / "hf-cache" / "models--sentence-transformers--all-MiniLM-L6-v2"


def report(model: str, lr: float):
    a = argparse.Namespace(model=model, steps=4, rows=16, lr=lr, warmup=1)
    return loop_vs_trainer.compare(a)


@pytest.mark.skipif(NO_ACCELERATE, reason="transformers.Trainer needs accelerate: pip install -e '.[test]'")
def test_tiny_model_trains_like_trainer(tmp_path):
    r = report(str(make_tiny_model(tmp_path / "tiny", dropout=0.0)), lr=1e-3)
    assert r["same"], r
    assert r["logit_change_in_training"] > 100 * r["max_logit_diff"]  # the runs moved; the check can see it


@pytest.mark.slow
@pytest.mark.skipif(NO_ACCELERATE, reason="transformers.Trainer needs accelerate: pip install -e '.[bench]'")
@pytest.mark.skipif(not MINILM.is_dir(), reason="needs all-MiniLM-L6-v2 in ../shared/hf-cache")
def test_minilm_trains_like_trainer():
    r = report(loop_vs_trainer.MODEL, lr=1e-4)
    assert r["same"], r
    assert r["logit_change_in_training"] > 100 * r["max_logit_diff"]

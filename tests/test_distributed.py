"""torchrun on the CPU: two data-parallel processes compute what one process computes, and write files once."""
import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from minift import distributed, train
from tests.test_train_cli import WORDS, files, read_log  # noqa: F401 (files is a fixture)
from tests.tiny import make_tiny_model


def test_without_torchrun_everything_is_one_process():
    batch = {"input_ids": torch.arange(6).reshape(3, 2)}
    assert distributed.world_size() == 1 and distributed.is_main()
    assert distributed.shard(batch) == (batch, 1.0)
    assert distributed.all_reduce_sum(1, 2.5, True) == [1.0, 2.5, 1.0]
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap(model, torch.device("cpu")) is model


def test_shards_are_disjoint_and_cover_each_batch(monkeypatch):
    """Process r of 3 takes rows r, r+3, ...; a batch of 2 rows leaves process 2 a zero-weighted stand-in."""
    monkeypatch.setattr(distributed, "world_size", lambda: 3)

    def shards(n):
        batch = {"input_ids": torch.arange(2 * n).reshape(n, 2), "labels": torch.arange(n)}
        out = []
        for r in range(3):
            monkeypatch.setattr(distributed, "rank", lambda r=r: r)
            rows, weight = distributed.shard(batch)
            out.append((rows["labels"].tolist(), weight))
        return out
    assert shards(7) == [([0, 3, 6], 1.0), ([1, 4], 1.0), ([2, 5], 1.0)]
    assert shards(2) == [([0], 1.0), ([1], 1.0), ([0], 0.0)]


@pytest.mark.parametrize("lora", [[], ["--lora", "4", "--lora-dropout", "0", "--freeze", "layers:0"]],
                         ids=["full", "lora"])
def test_torchrun_two_processes_match_one_process(files, tmp_path, lora):  # noqa: F811
    """36 training rows in global batches of 5, two per update: each process takes rows r, r+2, ... of a
    batch (3 and 2 rows), and of the epoch's last batch of 1 row process 1 gets none (it backpropagates a
    zero-weighted stand-in). Dropout is off, so the only differences are summation orders: within 1e-4.
    With LoRA (layer 0's adapters frozen), DDP syncs the gradients of A, B and the head alone."""
    model = make_tiny_model(tmp_path / "nodrop", WORDS, dropout=0.0)
    args = ["--train", files["sentiment"], "--model", str(model), "--valid-fraction", "0.25", "--batch-size", "5",
            "--accumulate", "2", "--max-steps", "6", "--eval-every", "2", "--lr", "1e-3", "--seed", "7",
            "--quiet", "--device", "cpu", *lora]
    one, two = tmp_path / "one", tmp_path / "two"
    train.main([*args, "--out", str(one)])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("WORLD_SIZE", None)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "minift.train", *args, "--out", str(two)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("validation accuracy") == 1  # rank 0 alone reports
    assert proc.stderr.count("trainable parameters") == 1

    log1, log2 = read_log(one), read_log(two)
    assert [r["step"] for r in log2] == [r["step"] for r in log1] == [2, 4, 6]  # each evaluation written once
    for r1, r2 in zip(log1, log2):
        assert r2["train_loss"] == pytest.approx(r1["train_loss"], abs=1e-4)
        assert r2["grad_norm"] == pytest.approx(r1["grad_norm"], rel=1e-4)
        assert r2["valid"] == pytest.approx(r1["valid"], abs=1e-4)
    res1, res2 = (json.loads((d / "results.json").read_text()) for d in (one, two))
    assert res2["valid"] == pytest.approx(res1["valid"], abs=1e-4) and res2["best_step"] == res1["best_step"]
    w1, w2 = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    for name in w1:
        torch.testing.assert_close(w2[name], w1[name], rtol=1e-4, atol=1e-5, msg=name)
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())

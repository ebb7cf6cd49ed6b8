"""The training loop's production features on the tiny model: bad updates skipped, bf16 autocast, what is logged."""
import json

import pytest
import torch
from safetensors.torch import load_file

from minift import cli, precision, train
from minift import losses as minift_losses
from minift.tasks.sentence import SentenceTask
from tests.test_train_cli import files, read_log, run_train  # noqa: F401 (files is a fixture)


def nan_on_calls(monkeypatch, bad_calls):
    """Make SentenceTask.loss return NaN on the given 1-based calls (one call per update at --accumulate 1)."""
    real, calls = SentenceTask.loss, {"n": 0}

    def loss(self, model, batch):
        calls["n"] += 1
        total, n = real(self, model, batch)
        return (total * float("nan"), n) if calls["n"] in bad_calls else (total, n)
    monkeypatch.setattr(SentenceTask, "loss", loss)


def test_a_nan_loss_skips_that_update_and_is_counted(files, tmp_path, monkeypatch):  # noqa: F811
    nan_on_calls(monkeypatch, {2})
    out = tmp_path / "run"
    results = run_train(files, out, "--max-steps", "4", "--eval-every", "1")
    log = read_log(out)
    assert [row["skipped_steps"] for row in log] == [0, 1, 1, 1]
    assert results["skipped_steps"] == 1
    assert json.loads((out / "results.json").read_text())["skipped_steps"] == 1
    weights = load_file(out / "model.safetensors")
    assert all(torch.isfinite(t).all() for t in weights.values())


def test_bad_steps_in_a_row_stop_with_advice(files, tmp_path, monkeypatch, capsys):  # noqa: F811
    nan_on_calls(monkeypatch, set(range(1, 100)))
    out = tmp_path / "run"
    argv = ["--train", files["sentiment"], "--model", files["model"], "--out", str(out), "--quiet",
            "--max-steps", "10", "--max-bad-steps", "3", "--batch-size", "8"]  # 8: no epoch ends within 4 steps
    assert cli.run(train.main, argv, prog="minift.train") == 2
    err = capsys.readouterr().err
    assert "3 updates in a row" in err and "--lr" in err and "--max-grad-norm" in err and "--precision fp32" in err
    assert "Traceback" not in err
    assert not (out / "model.safetensors").exists()  # it stopped before any evaluation: nothing NaN was written


def test_log_lines_carry_throughput_lr_grad_norm_and_loss(files, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    run_train(files, out, "--max-steps", "2", "--eval-every", "1")
    for row in read_log(out):
        assert {"train_loss", "lr", "grad_norm", "examples_per_s", "tokens_per_s", "skipped_steps"} <= set(row)
        assert row["grad_norm"] > 0 and row["examples_per_s"] > 0 and row["tokens_per_s"] > row["examples_per_s"]


def test_bf16_autocast_trains_to_the_fp32_loss(files, tmp_path):  # noqa: F811
    """Tolerance: the forward runs in bf16 (8 bits of mantissa, relative rounding about 4e-3) but the weights and
    the loss stay fp32 (losses.py casts 16-bit logits up), so over 3 updates the training losses (about 0.69) of
    bf16 and fp32 agree within 1e-3 absolute; they differ by about 5e-5 here (by 3e-3 when the loss itself was
    summed in bf16). On an H200, CUDA's autocast (which covers more operations) differed by 1.7e-3: the tolerance
    is for the CPU."""
    losses = {}
    for p in ("fp32", "bf16"):
        run_train(files, tmp_path / p, "--max-steps", "3", "--eval-every", "1", "--precision", p, "--device", "cpu")
        losses[p] = read_log(tmp_path / p)
    fp32, bf16 = losses["fp32"], losses["bf16"]
    assert [r["train_loss"] for r in bf16] == pytest.approx([r["train_loss"] for r in fp32], abs=1e-3)
    assert all(r["skipped_steps"] == 0 for r in bf16)
    saved = load_file(tmp_path / "bf16" / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in saved.values())  # master weights stay fp32


@pytest.mark.parametrize("loss", [
    lambda z: minift_losses.cross_entropy(z, torch.tensor([0, 2, 1, 0]), reduction="sum"),
    lambda z: minift_losses.binary_cross_entropy_with_logits(z, torch.rand(4, 3), reduction="sum"),
    lambda z: minift_losses.mse(z, torch.rand(4, 3), reduction="sum"),
])
def test_losses_of_bf16_logits_are_computed_in_fp32(loss):
    logits = torch.randn(4, 3).bfloat16()
    torch.manual_seed(0)
    low = loss(logits)
    torch.manual_seed(0)
    assert low.dtype == torch.float32 and torch.equal(low, loss(logits.float()))


def test_fp16_on_cpu_is_a_usage_error(files, tmp_path, capsys):  # noqa: F811
    argv = ["--train", files["sentiment"], "--model", files["model"], "--out", str(tmp_path / "run"), "--quiet",
            "--max-steps", "1", "--precision", "fp16", "--device", "cpu"]
    assert cli.run(train.main, argv, prog="minift.train") == 2
    assert "fp16 needs a CUDA GPU" in capsys.readouterr().err


def test_bf16_on_a_cpu_without_bf16_instructions_warns(monkeypatch, capsys):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    precision.check("bf16", torch.device("cpu"))
    assert "many times slower" in capsys.readouterr().err


def test_interrupted_and_resumed_run_ends_bitwise_equal(files, tmp_path, monkeypatch):  # noqa: F811
    """38 training rows in batches of 8: 5 updates per epoch. Interrupt after update 3, resume from its
    checkpoint, and run into the second epoch: weights and AdamW moments equal an uninterrupted run's bit for bit
    (dropout is on, so the random state must come back too)."""
    common = ("--max-steps", "7", "--save-every", "1", "--keep-checkpoints", "2")
    run_train(files, tmp_path / "whole", *common, "--eval-every", "2")
    assert sorted(p.name for p in (tmp_path / "whole" / "checkpoints").iterdir()) == ["step-6", "step-7"]

    real, calls = SentenceTask.loss, {"n": 0}

    def interrupt_on_update_4(self, model, batch):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(self, model, batch)
    monkeypatch.setattr(SentenceTask, "loss", interrupt_on_update_4)
    parts = tmp_path / "parts"
    with pytest.raises(KeyboardInterrupt):
        run_train(files, parts, "--max-steps", "7", "--save-every", "3", "--eval-every", "2")
    assert [r["step"] for r in read_log(parts)] == [2]
    with (parts / "metrics.jsonl").open("a") as log:  # as if written after the checkpoint, before the crash
        log.write('{"step": 4}\n')
    monkeypatch.setattr(SentenceTask, "loss", real)
    run_train(files, parts, *common, "--eval-every", "2", "--resume", str(parts / "checkpoints" / "step-3"))

    for name in ("model.safetensors", "optimizer.safetensors", "rng.safetensors"):
        whole = load_file(tmp_path / "whole" / "checkpoints" / "step-7" / name)
        resumed = load_file(parts / "checkpoints" / "step-7" / name)
        assert whole.keys() == resumed.keys()
        assert all(torch.equal(whole[k], resumed[k]) for k in whole), name
    strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]  # noqa: E731
    assert strip(read_log(parts)) == strip(read_log(tmp_path / "whole"))  # each evaluation once, same scores
    assert [r["step"] for r in read_log(parts)] == [2, 4, 5, 6, 7]
    assert json.loads((tmp_path / "whole" / "results.json").read_text())["valid"] == \
        json.loads((parts / "results.json").read_text())["valid"]


def test_resume_from_a_folder_that_is_not_a_checkpoint(files, tmp_path, capsys):  # noqa: F811
    argv = ["--train", files["sentiment"], "--model", files["model"], "--out", str(tmp_path / "run"), "--quiet",
            "--max-steps", "1", "--resume", str(tmp_path)]
    assert cli.run(train.main, argv, prog="minift.train") == 2
    assert "no trainer_state.json" in capsys.readouterr().err


def test_resume_from_the_last_step_says_how_to_train_further(files, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    run_train(files, out, "--max-steps", "2", "--save-every", "2")
    argv = ["--train", files["sentiment"], "--model", files["model"], "--out", str(out), "--quiet",
            "--max-steps", "2", "--resume", str(out / "checkpoints" / "step-2")]
    assert cli.run(train.main, argv, prog="minift.train") == 2
    assert "raise --max-steps" in capsys.readouterr().err

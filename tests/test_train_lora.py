"""`minift.train --lora R` end to end on the tiny model: what trains, the saved folders (the merged checkpoint for
transformers, OUT/adapter for PEFT and for `--adapter`), and the loop's features unchanged with LoRA on:
resume bit for bit, accumulation, layer decay, freezing, bf16, bad flags."""
import contextlib
import io
import json
import signal

import pytest
import torch
from safetensors.torch import load_file

from minift import atomic, cli, evaluate, lora, predict, train
from minift.tasks import ADAPTER_FOLDER
from tests.test_train_cli import WORDS, files, read_log, run_train  # noqa: F401 (files is a fixture)
from tests.test_train_faults import argv, on_loss_call, same_tensors
from tests.tiny import make_tiny_model

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
HIDDEN, LAYERS, R = 32, 2, 4  # the tiny model's (tests/tiny.py), and the rank trained here
TEXTS = ["the film was good", "the plot was dull and grim", "the cast was lovely and superb"]


def adapter_count(targets_in_out):
    """Scalars of A (r × in) and B (out × r) over the layers, for (in, out) of each adapted kind."""
    return LAYERS * sum(R * d_in + d_out * R for d_in, d_out in targets_in_out)


def base_state(files):
    return load_file(f"{files['model']}/model.safetensors")


def logits_of(model, tokenizer):
    batch = tokenizer(TEXTS)
    with torch.no_grad():
        return model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])


def hf_logits(model):
    return lambda ids, mask, types: model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits


@pytest.fixture(scope="module")
def lora_run(files, tmp_path_factory):  # noqa: F811
    """A LoRA run (r = 4, query and value, --save-adapter) of 3 updates, and what it printed to stderr. The lr is
    high enough (1e-2) that the adapters change the logits by far more than float32 rounding."""
    out, err = tmp_path_factory.mktemp("lora") / "run", io.StringIO()
    with contextlib.redirect_stderr(err):
        run_train(files, out, "--max-steps", "3", "--lora", str(R), "--save-adapter", "--lr", "1e-2")
    return out, err.getvalue()


def test_lora_trains_adapters_and_head_and_saves_a_plain_merged_checkpoint(files, lora_run):  # noqa: F811
    """Trainable = A and B of query and value (in = out = 32) and the head (32 × 2 + 2); the saved model has
    exactly the base's tensor names, the frozen tensors bitwise the base's, the adapted weights moved; minift.json
    records the settings. Catches an unmerged save, a base weight that trained, a head that did not."""
    out, err = lora_run
    trainable = adapter_count([(HIDDEN, HIDDEN)] * 2) + HIDDEN * 2 + 2
    assert f"trainable parameters: {trainable:,} of " in err
    base, saved = base_state(files), load_file(out / "model.safetensors")
    assert set(saved) == {"bert." + k for k in base} | {"classifier.weight", "classifier.bias"}
    adapted = {f"encoder.layer.{i}.attention.self.{t}.weight" for i in range(LAYERS) for t in ("query", "value")}
    for name, t in base.items():
        assert torch.equal(saved["bert." + name], t) != (name in adapted), name
    meta = json.loads((out / "minift.json").read_text())
    assert meta["lora"] == {"r": R, "alpha": lora.RECIPE["alpha_per_rank"] * R, "dropout": lora.RECIPE["dropout"],
                            "targets": ["query", "value"], "adapter_of": files["model"]}
    assert json.loads((out / ADAPTER_FOLDER / "minift.json").read_text()) == meta
    assert sorted(p.name for p in (out / ADAPTER_FOLDER).iterdir()) == [
        "README.md", "adapter_config.json", "adapter_model.safetensors", "minift.json"]  # README: as PEFT writes
    assert not (out / "adapter_config.json").exists()  # transformers would add the adapter to the merged model


def test_merged_model_loads_in_transformers_and_adapter_in_peft_with_the_same_logits(files, lora_run):  # noqa: F811
    """The one trained model three ways: minift's merged folder, transformers on that folder, and PEFT's
    PeftModel.from_pretrained(base, adapter folder) (head from modules_to_save), whose logits without the adapters
    differ. Tolerance: merging rounds W + ΔW once in float32 where PEFT adds the two paths' outputs."""
    out, _ = lora_run
    task, ours = cli.load_trained(out, torch.device("cpu"))
    merged = transformers.AutoModelForSequenceClassification.from_pretrained(out).eval()
    base = transformers.AutoModelForSequenceClassification.from_pretrained(files["model"], num_labels=2)
    adapted = peft.PeftModel.from_pretrained(base, out / ADAPTER_FOLDER).eval()
    assert adapted.peft_config["default"].r == R
    mine = logits_of(ours, task.tokenizer)
    torch.testing.assert_close(logits_of(hf_logits(merged), task.tokenizer), mine, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(logits_of(hf_logits(adapted), task.tokenizer), mine, rtol=1e-5, atol=1e-6)
    with adapted.disable_adapter():
        unadapted = logits_of(hf_logits(adapted), task.tokenizer)
    assert (unadapted - mine).abs().max() > 1e-2  # the adapters matter (0.05 here)


def test_lora_on_the_word_embeddings_end_to_end(files, tmp_path, capsys):  # noqa: F811
    """--lora-targets query,embeddings --lora-embedding-rank 2: the word embeddings' A (2 × V) and B (H × 2) train
    beside query's adapters; the merged folder's word embeddings moved (the padding row did not); minift.json
    records the embedding rank and α (the rank); PEFT's PeftModel on the base and `--adapter` give the merged
    model's logits. Catches an embedding adapter left unmerged, unsaved, or saved under keys PEFT skips."""
    out = tmp_path / "run"
    run_train(files, out, "--max-steps", "3", "--lora", str(R), "--lora-targets", "query,embeddings",
              "--lora-embedding-rank", "2", "--save-adapter", "--lr", "1e-2")
    vocab = json.loads((tmp_path / "run" / "config.json").read_text())["vocab_size"]
    trainable = adapter_count([(HIDDEN, HIDDEN)]) + 2 * vocab + HIDDEN * 2 + HIDDEN * 2 + 2
    assert f"trainable parameters: {trainable:,} of " in capsys.readouterr().err
    meta = json.loads((out / "minift.json").read_text())["lora"]
    assert meta["targets"] == ["query", "embeddings"] and (meta["embedding_r"], meta["embedding_alpha"]) == (2, 2)
    name = "embeddings.word_embeddings.weight"
    saved, base = load_file(out / "model.safetensors")["bert." + name], base_state(files)[name]
    assert not torch.equal(saved, base) and torch.equal(saved[0], base[0])  # pad id 0: its column of A stays 0
    task, ours = cli.load_trained(out, torch.device("cpu"))
    hf_base = transformers.AutoModelForSequenceClassification.from_pretrained(files["model"], num_labels=2)
    adapted = peft.PeftModel.from_pretrained(hf_base, out / ADAPTER_FOLDER).eval()
    mine = logits_of(ours, task.tokenizer)
    torch.testing.assert_close(logits_of(hf_logits(adapted), task.tokenizer), mine, rtol=1e-5, atol=1e-6)
    loaded = cli.load_trained(files["model"], torch.device("cpu"), out / ADAPTER_FOLDER)[1]
    assert torch.equal(logits_of(loaded, task.tokenizer), mine)


def test_evaluate_and_predict_with_adapter_equal_the_merged_model(files, lora_run, capsys):  # noqa: F811
    """--model BASE --adapter OUT/adapter (or OUT) merges the adapters as the run did: the same output to the last
    digit, the same weights bit for bit."""
    out, _ = lora_run
    for command, flags in ((evaluate, ["--data", files["sentiment"]]), (predict, ["--text", TEXTS[0]])):
        command.main(["--model", str(out), *flags])
        merged = capsys.readouterr().out
        for adapter in (out / ADAPTER_FOLDER, out):
            command.main(["--model", files["model"], "--adapter", str(adapter), *flags])
            assert capsys.readouterr().out == merged
    merged_state = cli.load_trained(out, torch.device("cpu"))[1].state_dict()
    loaded_state = cli.load_trained(files["model"], torch.device("cpu"), out / ADAPTER_FOLDER)[1].state_dict()
    assert merged_state.keys() == loaded_state.keys()
    assert all(torch.equal(merged_state[k], loaded_state[k]) for k in merged_state)


def test_adapter_on_a_folder_without_one_exits_2(files, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "plain"
    run_train(files, out, "--max-steps", "1")
    argv_ = ["--model", files["model"], "--adapter", str(out), "--data", files["sentiment"]]
    assert cli.run(evaluate.main, argv_, prog="minift.evaluate") == 2
    assert "no adapter_config.json" in capsys.readouterr().err
    assert "lora" not in json.loads((out / "minift.json").read_text())  # nothing of LoRA without --lora


def test_resume_with_lora_ends_bitwise_equal(files, tmp_path, monkeypatch, capsys):  # noqa: F811
    """As tests/test_train_faults.py without LoRA: Ctrl-C during update 3, resume from step-3; the weights (A, B of
    every linear layer and of the word embeddings, head), AdamW moments and random state equal an uninterrupted
    run's bit for bit (LoRA dropout is on). Resuming with another rank is a message, not a traceback."""
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    common = ("--max-steps", "6", "--eval-every", "3", "--save-every", "6", "--lora", str(R), "--lora-targets",
              "all,embeddings")
    run_train(files, whole, *common)
    on_loss_call(monkeypatch, 3, lambda: signal.raise_signal(signal.SIGINT))
    assert cli.run(train.main, argv(files, parts, *common), prog="minift.train") == 130
    monkeypatch.undo()
    run_train(files, parts, *common, "--resume", str(parts / "checkpoints" / "step-3"))
    same_tensors(whole / "checkpoints" / "step-6", parts / "checkpoints" / "step-6")
    saved = load_file(parts / "checkpoints" / "step-6" / "model.safetensors")
    assert any(k.endswith("lora_B") for k in saved) and "encoder.embeddings.word.lora_A" in saved
    assert [r["valid"] for r in read_log(parts)] == [r["valid"] for r in read_log(whole)]
    capsys.readouterr()
    other_rank = argv(files, parts, *common, "--lora", str(R + 1), "--resume", str(parts / "checkpoints" / "step-3"))
    assert cli.run(train.main, other_rank, prog="minift.train") == 2
    err = capsys.readouterr().err
    assert "size mismatch" in err and "same --model, --lora" in err and "Traceback" not in err


def test_accumulation_with_lora_equals_a_larger_batch(files, tmp_path):  # noqa: F811
    """As tests/test_train_cli.py without LoRA: micro-batches of 4, two per update, give the weights of batches of
    8 (all dropout off)."""
    model = make_tiny_model(tmp_path / "nodrop", WORDS, dropout=0.0)
    common = ["--train", files["sentiment"], "--model", str(model), "--max-steps", "3", "--lr", "1e-3", "--quiet",
              "--lora", str(R), "--lora-dropout", "0"]
    train.main([*common, "--out", str(tmp_path / "big"), "--batch-size", "8"])
    train.main([*common, "--out", str(tmp_path / "acc"), "--batch-size", "4", "--accumulate", "2"])
    big, acc = load_file(tmp_path / "big" / "model.safetensors"), load_file(tmp_path / "acc" / "model.safetensors")
    base = load_file(model / "model.safetensors")
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(big[name], base[name.removeprefix("bert.")])  # the adapters moved the weight
    for name in big:
        torch.testing.assert_close(acc[name], big[name], rtol=1e-4, atol=1e-6, msg=name)


def test_lora_with_layer_decay_and_frozen_layers(files, tmp_path, capsys):  # noqa: F811
    """--freeze layers:0 keeps layer 0's adapters frozen (its weights stay the base's bit for bit) while layer
    1's train; --layer-decay d gives layer 1's adapters lr · d and the head lr; the optimizer holds only A, B
    and the head. Catches --freeze ignored (or resetting LoRA's freezing) and adapters outside the layer groups."""
    args = train.parser().parse_args(["--train", files["sentiment"], "--model", files["model"], "--quiet",
                                      "--out", str(tmp_path / "run"), "--lora", str(R), "--freeze", "layers:0",
                                      "--layer-decay", "0.5", "--lr", "1e-3", "--max-steps", "2"])
    run = train.setup(args)
    groups = {n: g["lr"] for g in run.opt.param_groups for n in g["param_names"]}
    assert all(n.endswith(("lora_A", "lora_B")) or n.startswith("head.") for n in groups)
    assert groups["head.out.weight"] == 1e-3 and groups["encoder.layers.1.attn.query.lora_A"] == 1e-3 * 0.5
    trainable = adapter_count([(HIDDEN, HIDDEN)] * 2) // LAYERS + HIDDEN * 2 + 2
    assert f"trainable parameters: {trainable:,} of " in capsys.readouterr().err
    train.train(args)
    saved, base = load_file(tmp_path / "run" / "model.safetensors"), base_state(files)
    for i in range(LAYERS):
        name = f"encoder.layer.{i}.attention.self.query.weight"
        assert torch.equal(saved["bert." + name], base[name]) == (i == 0), name


def test_bf16_with_lora_trains_to_the_fp32_loss(files, tmp_path):  # noqa: F811
    """Autocast covers the adapters' matmuls too; tolerance as in tests/test_train_loop.py's bf16 test."""
    losses = {}
    for p in ("fp32", "bf16"):
        run_train(files, tmp_path / p, "--max-steps", "2", "--eval-every", "1", "--precision", p, "--device", "cpu",
                  "--lora", str(R))
        losses[p] = [r["train_loss"] for r in read_log(tmp_path / p)]
    assert losses["bf16"] == pytest.approx(losses["fp32"], abs=1e-3)


@pytest.mark.parametrize("extra,message", [
    (["--lora", "-1"], "the rank must be at least 1"),
    (["--lora", "4", "--lora-dropout", "1"], "the dropout in [0, 1)"),
    (["--lora", "4", "--lora-targets", "query,keys"], "--lora-targets: LoRA targets 'query,keys': unknown keys"),
    (["--lora", "4", "--freeze", "encoder"], "--freeze: freeze spec 'encoder' leaves no LoRA adapter to train"),
    (["--lora", "4", "--freeze", "layers:7"], "there is no layer 7"),
    (["--lora", "4", "--gradual-unfreeze"], "--gradual-unfreeze"),
    (["--save-adapter"], "it needs --lora R"),
    (["--lora", "4", "--lora-embedding-rank", "0"], "--lora-embedding-rank 0: the rank must be at least 1"),
    (["--lora", "4", "--lora-targets", "query,embeddings", "--task", "seq2seq", "--source-col", "text",
      "--target-col", "label", "--max-length", "24", "--max-target-length", "8"],
     "--lora-targets query,embeddings: the embeddings target adapts the word embeddings, which this model's "
     "head.word shares"),
])
def test_bad_lora_flags_exit_2_with_one_message(files, tmp_path, capsys, extra, message):  # noqa: F811
    assert cli.run(train.main, argv(files, tmp_path / "run", *extra), prog="minift.train") == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run" / "model.safetensors").exists()



def test_a_subfolder_of_a_save_replaces_the_old_one_whole(tmp_path):
    """atomic.write_folder with OUT/adapter in the save: the second save's subfolder replaces the first's (no
    file of the first left), and files beside it that the save does not write stay (metrics.jsonl)."""
    def save(names):
        def fill(tmp):
            (tmp / "adapter").mkdir()
            for name in names:
                (tmp / "adapter" / name).write_text(name)
        atomic.write_folder(tmp_path, fill)
    (tmp_path / "metrics.jsonl").write_text("{}")
    save(["a", "b"])
    save(["b", "c"])
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == ["b", "c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter", "metrics.jsonl"]

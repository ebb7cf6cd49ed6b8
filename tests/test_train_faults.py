"""Faults on the tiny model: a save cut short never leaves a broken model folder or checkpoint."""
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save

from minift import checkpoint, cli, resume, train
from tests.test_train_cli import files, run_train  # noqa: F401 (files is a fixture)


def argv(files, out, *extra):  # noqa: F811
    return ["--train", files["sentiment"], "--model", files["model"], "--out", str(out), "--epochs", "2",
            "--batch-size", "8", "--lr", "1e-3", "--seed", "7", "--quiet", *extra]


def same_tensors(a, b, names=("model.safetensors", "optimizer.safetensors", "rng.safetensors")):
    for name in names:
        x, y = load_file(Path(a) / name), load_file(Path(b) / name)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), name


def cut_short(monkeypatch, module, after_calls=0):
    """Make `module.save_file` write half a file and then die as a killed process would, once it has been
    called `after_calls` times normally."""
    real, calls = module.save_file, {"n": 0}

    def save_file(tensors, path, metadata=None):
        calls["n"] += 1
        if calls["n"] <= after_calls:
            return real(tensors, path, metadata=metadata)
        data = save(tensors, metadata)
        Path(path).write_bytes(data[:len(data) // 2])
        raise KeyboardInterrupt
    monkeypatch.setattr(module, "save_file", save_file)


def files_of(folder):
    return {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}


@pytest.fixture
def trained(files, tmp_path):  # noqa: F811
    """A model folder after a short run, loaded back, with its weights moved so that a save would change them."""
    out = tmp_path / "run"
    run_train(files, out, "--max-steps", "2")
    task, model = cli.load_trained(out, torch.device("cpu"))
    old = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    return out, task, model, old


def same_weights(folder, state):
    _, loaded = cli.load_trained(folder, torch.device("cpu"))
    return all(torch.equal(v, state[k]) for k, v in loaded.state_dict().items())


def test_a_model_save_killed_midway_leaves_the_previous_model(trained, monkeypatch):
    out, task, model, old = trained
    before = files_of(out)
    cut_short(monkeypatch, checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train.save(task, model, task.tokenizer, out)
    assert (out / ".saving" / "model.safetensors.tmp").is_file()  # the half-written file, in the temporary folder
    assert files_of(out) == before
    monkeypatch.undo()
    assert same_weights(out, old)  # the old model, whole
    train.save(task, model, task.tokenizer, out)  # the next save clears the junk and writes the new model
    assert not (out / ".saving").exists() and not (out / ".saved").exists()
    assert same_weights(out, model.state_dict())


def test_a_model_save_killed_between_renames_is_completed_by_the_next_load(trained, monkeypatch):
    """The files are moved in one by one after the commit; a crash after the first move (config.json) leaves
    the new config beside the old weights, and loading the folder first finishes the move."""
    out, task, model, _ = trained
    real = os.replace

    def replace_once_then_die(src, dst):
        real(src, dst)
        if Path(src).parent.name == ".saved":
            raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", replace_once_then_die)
    with pytest.raises(KeyboardInterrupt):
        train.save(task, model, task.tokenizer, out)
    monkeypatch.undo()
    assert (out / ".saved" / "model.safetensors").is_file()
    assert same_weights(out, model.state_dict())
    assert not (out / ".saved").exists()


def test_a_checkpoint_killed_midway_leaves_the_previous_ones(files, tmp_path, monkeypatch, capsys):  # noqa: F811
    """resume.save writes optimizer.safetensors and rng.safetensors with save_file: die in step 3's."""
    out = tmp_path / "run"
    cut_short(monkeypatch, resume, after_calls=4)
    with pytest.raises(KeyboardInterrupt):
        run_train(files, out, "--max-steps", "4", "--save-every", "1", "--keep-checkpoints", "3")
    monkeypatch.undo()
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert names == [".step-3.tmp", "step-1", "step-2"]
    junk = out / "checkpoints" / ".step-3.tmp"
    assert cli.run(train.main, argv(files, out, "--max-steps", "4", "--resume", str(junk))) == 2
    assert "no trainer_state.json" in capsys.readouterr().err
    whole = tmp_path / "whole"
    run_train(files, whole, "--max-steps", "4", "--save-every", "4")
    run_train(files, out, "--max-steps", "4", "--save-every", "1", "--keep-checkpoints", "3",
              "--resume", str(out / "checkpoints" / "step-2"))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-2", "step-3", "step-4"]
    same_tensors(whole / "checkpoints" / "step-4", out / "checkpoints" / "step-4")

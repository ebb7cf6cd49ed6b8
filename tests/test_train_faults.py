"""Faults on the tiny model: Ctrl-C leaves an exact checkpoint, a save cut short never leaves a broken model
folder or checkpoint, and running out of GPU memory is a user error that names the knobs."""
import os
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save

from minift import checkpoint, cli, resume, train
from minift.tasks.sentence import SentenceTask
from tests.test_train_cli import files, read_log, run_train  # noqa: F401 (files is a fixture)


def argv(files, out, *extra):  # noqa: F811
    return ["--train", files["sentiment"], "--model", files["model"], "--out", str(out), "--epochs", "2",
            "--batch-size", "8", "--lr", "1e-3", "--seed", "7", "--quiet", *extra]


def on_loss_call(monkeypatch, k, action):
    """Run `action()` at the k-th call of SentenceTask.loss (one per update at --accumulate 1), then go on."""
    real, calls = SentenceTask.loss, {"n": 0}

    def loss(self, model, batch):
        calls["n"] += 1
        if calls["n"] == k:
            action()
        return real(self, model, batch)
    monkeypatch.setattr(SentenceTask, "loss", loss)


def same_tensors(a, b, names=("model.safetensors", "optimizer.safetensors", "rng.safetensors")):
    for name in names:
        x, y = load_file(Path(a) / name), load_file(Path(b) / name)
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), name


def test_ctrl_c_checkpoints_and_resuming_it_ends_bitwise_equal(files, tmp_path, monkeypatch, capsys):  # noqa: F811
    """SIGINT during update 3 (of 5 per epoch): the update finishes, step-3 is written, the command exits 130
    saying how to resume; resuming ends with weights, AdamW moments and random state equal to a run that was
    never interrupted (dropout is on)."""
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    common = ("--max-steps", "7", "--eval-every", "2", "--save-every", "7")
    run_train(files, whole, *common)
    on_loss_call(monkeypatch, 3, lambda: signal.raise_signal(signal.SIGINT))
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN when a shell started us in the background
    assert cli.run(train.main, argv(files, parts, *common), prog="minift.train") == 130
    err = capsys.readouterr().err
    step3 = parts / "checkpoints" / "step-3"
    assert f"written to {step3}; continue with --resume {parts} " in err and "Traceback" not in err
    assert sorted(p.name for p in (parts / "checkpoints").iterdir()) == ["step-3"]
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back
    monkeypatch.undo()
    run_train(files, parts, *common, "--resume", str(step3))
    same_tensors(whole / "checkpoints" / "step-7", parts / "checkpoints" / "step-7")
    strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]  # noqa: E731
    assert strip(read_log(parts)) == strip(read_log(whole))


def test_a_second_ctrl_c_quits_at_once(files, tmp_path, monkeypatch):  # noqa: F811
    def twice():
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
    on_loss_call(monkeypatch, 2, twice)
    assert cli.run(train.main, argv(files, tmp_path / "run", "--max-steps", "4"), prog="minift.train") == 130
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_ctrl_c_while_reading_the_data_quits_at_once(files, tmp_path, monkeypatch, capsys):  # noqa: F811
    def read_then_ctrl_c(self, path, need_labels=True, training=False):
        signal.raise_signal(signal.SIGINT)
    monkeypatch.setattr(SentenceTask, "read", read_then_ctrl_c)
    assert cli.run(train.main, argv(files, tmp_path / "run", "--max-steps", "4"), prog="minift.train") == 130
    assert capsys.readouterr().err.strip().endswith("minift.train: interrupted")
    assert not (tmp_path / "run").exists()


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
        task.save(model, out)
    assert (out / ".saving" / "model.safetensors.tmp").is_file()  # the half-written file, in the temporary folder
    assert files_of(out) == before
    monkeypatch.undo()
    assert same_weights(out, old)  # the old model, whole
    task.save(model, out)  # the next save clears the junk and writes the new model
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
        task.save(model, out)
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
    assert names == ["step-1", "step-2", "step-3"]
    junk = out / "checkpoints" / "step-3"  # the uncommitted save: only its temporary folder, half written
    assert [p.name for p in junk.iterdir()] == [".saving"] and (junk / ".saving" / "optimizer.safetensors").is_file()
    assert cli.run(train.main, argv(files, out, "--max-steps", "4", "--resume", str(junk))) == 2
    assert "no trainer_state.json" in capsys.readouterr().err
    whole = tmp_path / "whole"
    run_train(files, whole, "--max-steps", "4", "--save-every", "4")
    run_train(files, out, "--max-steps", "4", "--save-every", "1", "--keep-checkpoints", "3",
              "--resume", str(out / "checkpoints" / "step-2"))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-2", "step-3", "step-4"]
    same_tensors(whole / "checkpoints" / "step-4", out / "checkpoints" / "step-4")


@pytest.mark.parametrize("where", ["loss", "evaluate"])
def test_out_of_memory_names_the_knobs(files, tmp_path, monkeypatch, capsys, where):  # noqa: F811
    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
                                          "capacity of 139.80 GiB of which 139.19 GiB is free. (and more)")
    monkeypatch.setattr(SentenceTask, where, out_of_memory)
    out = tmp_path / "run"
    assert cli.run(train.main, argv(files, out, "--max-steps", "2", "--accumulate", "2"), prog="minift.train") == 2
    err = capsys.readouterr().err
    assert "ran out of memory (CUDA out of memory. Tried to allocate 2.00 GiB)" in err
    assert "--batch-size (now 8)" in err and "--batch-size 4 --accumulate 4 for 16" in err
    assert "--max-length (now 64)" in err and "--precision bf16 (now fp32)" in err
    assert "Traceback" not in err and not (out / "model.safetensors").exists()

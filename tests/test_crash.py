"""Crashes on the tiny model, with real processes: a training run killed with SIGKILL in the middle of each kind of
save, a full disk during a save, and a second run started into a folder in use.

Each killed run is a real `python -m minift.train` that the test stops at a named point of a save (MINIFT_TEST_STOP_AT,
see minift/atomic.py) and kills there with SIGKILL: no handler runs, as after `kill -9` or a power cut. Then
`--resume OUT` must continue from the latest complete checkpoint and end bitwise equal to a run never interrupted
(weights, AdamW moments, random state, the saved model, every logged score). The runs are regression runs because
their validation score improves over the first three updates, so a model save replaces an earlier model."""
import errno
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from minift import checkpoint, cli, resume, train
from tests.test_train_cli import files  # noqa: F401 (a fixture)

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("model.safetensors", "optimizer.safetensors", "rng.safetensors")


def argv(files, out, *extra):  # noqa: F811
    """5 updates; a checkpoint after each, an evaluation (and a model save when the score improves) too."""
    return ["--task", "regression", "--train", files["scores"], "--text-col", "a", "--text-pair-col", "b",
            "--label-col", "score", "--model", files["model"], "--out", str(out), "--batch-size", "8", "--lr", "3e-3",
            "--seed", "8", "--quiet", "--max-steps", "5", "--save-every", "1", "--eval-every", "1",
            "--keep-checkpoints", "10", *extra]


@pytest.fixture(scope="module")
def whole(files, tmp_path_factory):  # noqa: F811
    """The run never interrupted; it saves a model at steps 1, 2 and 3 (the score improves), not at 4 and 5."""
    out = tmp_path_factory.mktemp("crash") / "whole"
    assert cli.run(train.main, argv(files, out)) == 0
    assert json.loads((out / "results.json").read_text())["best_step"] == 3
    return out


# (where the process is stopped and killed, its latest complete checkpoint, the model then in OUT (its step))
KILLS = [
    ("commit {out}/checkpoints/step-3", 2, 3),  # checkpoint 3 written to step-3/.saving, not committed
    ("write {out}/checkpoints/step-4/.saving/trainer_state.json.tmp", 3, 3),  # its last file, half done
    ("move {out}/checkpoints/step-3/model.safetensors", 3, 3),  # committed, one of its four files moved in
    ("commit {out} #2", 1, 1),  # the model of step 2, not committed: the model of step 1 is still there, whole
    ("move {out}/config.json #2", 1, 2),  # committed, config.json moved in: reading the folder completes it
    ("write {out}/results.json.tmp", 5, 3),  # after the last checkpoint: resuming only finishes the run
]


@pytest.fixture(scope="module")
def stopped(files, tmp_path_factory):  # noqa: F811
    """One real training process per kill point, all started at once (each pays torch's import), each left
    asleep at its point: {point: (process, out, its stderr so far)}. Processes no test killed are killed at the end."""
    folder = tmp_path_factory.mktemp("killed")
    procs = {}
    for i, (point, _, _) in enumerate(KILLS):
        out = folder / f"run{i}"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "MINIFT_TEST_STOP_AT": point.format(out=out)}
        procs[point] = subprocess.Popen([sys.executable, "-m", "minift.train", *argv(files, out)], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True), out
    found = {point: (proc, out, wait_until_stopped(proc)) for point, (proc, out) in procs.items()}
    yield found
    for proc, _, _ in found.values():
        proc.kill()
        proc.wait()


def wait_until_stopped(proc, timeout: float = 240) -> str:
    """Read the process's stderr until it says it stopped at its point; the whole stderr if it never does."""
    timer = threading.Timer(timeout, proc.kill)
    timer.start()
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("minift-test: stopped at"):
            break
    timer.cancel()
    return "".join(lines)


def same_model(folder, reference_checkpoint) -> bool:
    """The model folder `folder` (loaded as evaluate would) holds the weights of `reference_checkpoint`."""
    _, model = cli.load_trained(folder, torch.device("cpu"))
    state, saved = model.state_dict(), load_file(Path(reference_checkpoint) / "model.safetensors")
    return all(torch.equal(state[k], v) for k, v in saved.items())


def scores(out):
    return [{k: v for k, v in json.loads(line).items() if not k.endswith("_s")}  # not the timings
            for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_a_second_run_into_a_folder_in_use_is_refused(files, stopped, capsys):  # noqa: F811
    """A real run is writing to OUT (asleep mid-save); a second one into OUT stops before reading anything."""
    proc, out, _ = stopped[KILLS[0][0]]
    assert (out / ".minift.lock").read_text().split()[0] == str(proc.pid)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    for extra in (["--resume", str(out)], [], ["--overwrite"]):  # the lock comes first, whatever OUT holds
        assert cli.run(train.main, argv(files, out, *extra), prog="minift.train") == 2
        err = capsys.readouterr().err
        assert f"--out {out}: another run (process {proc.pid} on " in err
        assert f"its lock is {out / '.minift.lock'}" in err and "resuming" not in err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before and proc.poll() is None


@pytest.mark.parametrize("point,latest,model_step", KILLS, ids=[k[0].split(" {")[0] + k[0].split("}")[1]
                                                                for k in KILLS])
def test_killed_mid_save_resumes_bitwise_equal(files, whole, stopped, capsys, point, latest, model_step):  # noqa: F811
    proc, out, err = stopped[point]
    assert proc.poll() is None, f"the run never reached {point}:\n{err}"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert [p.name for p in resume.complete(out / "checkpoints")][-1] == f"step-{latest}"
    assert same_model(out, whole / "checkpoints" / f"step-{model_step}")  # loadable, and the model it should be
    capsys.readouterr()
    assert cli.run(train.main, argv(files, out, "--resume", str(out)), prog="minift.train") == 0
    err = capsys.readouterr().err
    assert f"resuming from {out / 'checkpoints' / f'step-{latest}'}" in err
    assert f"{out / '.minift.lock'} was left by process {proc.pid}, which is no longer running" in err
    for name in NAMES:
        a, b = load_file(whole / "checkpoints" / "step-5" / name), load_file(out / "checkpoints" / "step-5" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert (out / "model.safetensors").read_bytes() == (whole / "model.safetensors").read_bytes()
    assert scores(out) == scores(whole)
    assert json.loads((out / "results.json").read_text())["valid"] == \
        json.loads((whole / "results.json").read_text())["valid"]
    assert not (out / ".minift.lock").exists() and not (out / ".saving").exists()


def no_space_on(monkeypatch, module, call: int, safetensors_error: bool = False):
    """Make `module.save_file` fail as on a full disk at its `call`-th call (counting from 1)."""
    real, calls = module.save_file, {"n": 0}

    def save_file(tensors, path, metadata=None):
        calls["n"] += 1
        if calls["n"] == call:
            Path(path).write_bytes(b"half")  # what was written before the disk filled up
            if safetensors_error:  # how safetensors itself reports it
                raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                                      'message: "No space left on device" })')
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        return real(tensors, path, metadata=metadata)
    monkeypatch.setattr(module, "save_file", save_file)


def tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


@pytest.mark.parametrize("safetensors_error", [False, True], ids=["OSError", "SafetensorError"])
def test_a_full_disk_during_a_checkpoint(files, whole, tmp_path, monkeypatch, capsys, safetensors_error):  # noqa: F811
    """resume.save_file writes optimizer and rng: its 5th call is step 3's optimizer.safetensors."""
    out = tmp_path / "run"
    no_space_on(monkeypatch, resume, 5, safetensors_error)
    assert cli.run(train.main, argv(files, out), prog="minift.train") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    message = err.strip().splitlines()[-1]
    assert message.startswith(f"minift.train: error: the disk is full: could not write {out / 'checkpoints' / 'step-3'}"
                              " (" + ("Error while serializing: IoError(" if safetensors_error else "No space left"))
    assert message.endswith("); nothing of this save was kept, the files there are as they were before it. Free some "
                            "space there (or give an --out on another disk) and continue from the latest checkpoint "
                            f"with --resume {out}")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-1", "step-2"]
    assert tree(out / "checkpoints") == {k: v for k, v in tree(whole / "checkpoints").items()
                                         if k.startswith(("step-1/", "step-2/"))}
    assert same_model(out, whole / "checkpoints" / "step-3") and not (out / ".minift.lock").exists()


def test_a_full_disk_during_a_model_save_keeps_the_previous_model(files, whole, tmp_path, monkeypatch,  # noqa: F811
                                                                  capsys):
    """checkpoint.save_file writes the model folder's weights: its 2nd call is step 2's model. Then --resume OUT
    ends as the run never interrupted."""
    out = tmp_path / "run"
    no_space_on(monkeypatch, checkpoint, 2)
    assert cli.run(train.main, argv(files, out), prog="minift.train") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"minift.train: error: the disk is full: could not write {out} (No space left on device)")
    assert not (out / ".saving").exists() and same_model(out, whole / "checkpoints" / "step-1")
    assert [p.name for p in resume.complete(out / "checkpoints")] == ["step-1"]
    monkeypatch.undo()
    assert cli.run(train.main, argv(files, out, "--resume", str(out)), prog="minift.train") == 0
    assert (out / "model.safetensors").read_bytes() == (whole / "model.safetensors").read_bytes()
    assert tree(out / "checkpoints" / "step-5") == tree(whole / "checkpoints" / "step-5")


def test_resumed_after_its_last_checkpoint_a_run_only_finishes(files, tmp_path, capsys):  # noqa: F811
    """With --eval-every 0 the evaluation at an epoch's end comes after that update's checkpoint. A run killed
    after both, before results.json, resumes from that checkpoint: the evaluation is done again (its first line
    in metrics.jsonl dropped, not doubled), then results.json is written as the run never interrupted wrote it. A
    run that did finish is not resumed."""
    out = tmp_path / "run"
    args = ["--train", files["sentiment"], "--model", files["model"], "--out", str(out), "--batch-size", "8",
            "--lr", "1e-3", "--seed", "7", "--quiet", "--epochs", "1", "--save-every", "5"]  # 5 updates
    assert cli.run(train.main, args) == 0
    results, log = json.loads((out / "results.json").read_text()), scores(out)
    assert [row["step"] for row in log] == [5]
    (out / "results.json").unlink()  # as if killed while writing it
    assert cli.run(train.main, [*args, "--resume", str(out)]) == 0
    assert scores(out) == log and json.loads((out / "results.json").read_text())["valid"] == results["valid"]
    capsys.readouterr()
    assert cli.run(train.main, [*args, "--resume", str(out)]) == 2
    assert "already the run's last (5); raise --max-steps or --epochs" in capsys.readouterr().err

"""minift/outdir.py without training: which --out a run takes, and the lock on it. (The refusals themselves, through
the command, are in tests/test_bad_input.py; a real second process and a real SIGKILL in tests/test_crash.py.)"""
import os
import socket
import subprocess
import sys
from argparse import Namespace

import pytest

from minift import cli, outdir, resume


def flags(**given):
    return Namespace(**{"out": None, "resume": None, "overwrite": False, "task": "classification", **given})


def fake_checkpoint(folder):
    folder.mkdir(parents=True)
    (folder / resume.STATE_FILE).write_text("{}")
    return folder


def test_out_defaults_to_runs_default_or_the_resumed_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = flags()
    with outdir.claim(args):
        assert args.out == "runs/default" and (tmp_path / "runs" / "default" / outdir.LOCK).is_file()
    assert not (tmp_path / "runs" / "default").exists()  # created for the run, left empty: removed
    run = tmp_path / "earlier"
    fake_checkpoint(run / "checkpoints" / "step-2")
    fake_checkpoint(run / "checkpoints" / "step-10")  # sorted by number, not by name
    (run / "checkpoints" / "step-12" / ".saving").mkdir(parents=True)  # cut short before its commit: skipped
    for given in (run, run / "checkpoints" / "step-10"):
        args = flags(resume=str(given))
        with outdir.claim(args):
            assert args.resume == str(run / "checkpoints" / "step-10") and args.out == str(run)
        assert f"resuming from {run / 'checkpoints' / 'step-10'}" in capsys.readouterr().err
    args = flags(resume=str(run), out=str(tmp_path / "elsewhere"))  # an --out given is kept
    with outdir.claim(args):
        assert args.out == str(tmp_path / "elsewhere")


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # reaped: the pid names no process now
    return child.pid


def test_the_lock(tmp_path, capsys):
    out, host = tmp_path / "run", socket.gethostname()
    with outdir.lock(out):
        assert (out / outdir.LOCK).read_text() == f"{os.getpid()} {host}\n"
        with pytest.raises(cli.UsageError, match=f"another run \\(process {os.getpid()} on {host}\\) is writing"):
            with outdir.lock(out):
                pass
        assert (out / outdir.LOCK).is_file()  # the refused one did not take it away
    assert not out.exists()
    out.mkdir()
    # A lock being written (empty) and one of another machine (its process cannot be checked) are live.
    for content, who in [("", "another process"), ("123 other-host\n", "process 123 on other-host")]:
        (out / outdir.LOCK).write_text(content)
        with pytest.raises(cli.UsageError, match=f"another run \\({who}\\)"):
            with outdir.lock(out):
                pass
    pid = dead_pid()
    (out / outdir.LOCK).write_text(f"{pid} {host}\n")
    with outdir.lock(out):
        assert (out / outdir.LOCK).read_text() == f"{os.getpid()} {host}\n"
    assert f"{out / outdir.LOCK} was left by process {pid}, which is no longer running" in capsys.readouterr().err
    assert out.is_dir() and not (out / outdir.LOCK).exists()  # it existed before: kept


def test_a_log_line_cut_short_is_dropped(tmp_path):
    """A crash in the middle of appending to metrics.jsonl leaves half a line: resuming drops it, and the lines
    after the checkpoint's step, and keeps the rest."""
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1}\n{"step": 2}\n{"step": 3}\n{"step": 4, "val')
    resume.forget_log_after(log, 2)
    assert log.read_text() == '{"step": 1}\n{"step": 2}\n'


def test_complete_checkpoints(tmp_path):
    """Committed saves count, moved in or not (reading without finishing moves nothing); uncommitted ones and
    folders not named step-N do not."""
    checkpoints = tmp_path / "checkpoints"
    fake_checkpoint(checkpoints / "step-2")
    fake_checkpoint(checkpoints / "step-9" / ".saved")  # committed, not yet moved in
    fake_checkpoint(checkpoints / "step-11" / ".saving")  # not committed
    fake_checkpoint(checkpoints / "step-x")
    assert resume.complete(checkpoints, finish=False) == [checkpoints / "step-2", checkpoints / "step-9"]
    assert (checkpoints / "step-9" / ".saved").is_dir()
    assert resume.complete(checkpoints) == [checkpoints / "step-2", checkpoints / "step-9"]
    assert (checkpoints / "step-9" / resume.STATE_FILE).is_file() and not (checkpoints / "step-9" / ".saved").exists()
    assert resume.complete(tmp_path / "none") == []

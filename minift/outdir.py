"""The output folder (--out): one run at a time in it, and what a new run may write over.

Before it reads any data, `python -m minift.train` claims --out (`claim`). First it must be writable (a file, or
a folder this user cannot write, is a user error); then the run takes the lock OUT/.minift.lock, and holds it
until it ends; then what the folder holds decides:

    a trained model of the same task             replaced, with a note: the same command run twice trains again
    a trained model of another task              refused unless --overwrite
    complete checkpoints of an earlier run       refused unless --resume OUT (continue that run) or --overwrite
                                                 (start again: the run deletes them, so that its checkpoints never
                                                 mix with the old ones and `--resume OUT` never picks an old one)
    other files, and no trace of a minift run    refused unless --overwrite: the model's config.json,
                                                 model.safetensors ... would replace files of the same names
    (with --resume OUT, the run's own folder: it is continued, whatever it holds)

`Trainer` refuses any non-empty output_dir without overwrite_output_dir; minift lets a run repeat itself (the
README's first command, run twice) and refuses only what could lose other work.

The lock is a file created with O_CREAT | O_EXCL (of two runs, exactly one creates it; the other finds it there)
holding "pid host". Taking it first means a second run into a folder in use is told so, whatever the folder
holds, and never touches it (resolving --resume may complete a save a crash cut short: a write). A lock left by a
process that no longer runs (kill -9, a power cut) is taken over with a note. Taking over is two steps (delete,
create), so two runs started in the same instant after a crash could both take a stale lock: the lock guards
against the common mistake, a second run started into a folder in use, not against a race of launches. On exit
the lock is deleted, and so is --out if the run created it and left it empty (a user error before any write).
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
from pathlib import Path

from minift import cli, resume

LOCK = ".minift.lock"
DEFAULT = "runs/default"


@contextlib.contextmanager
def claim(args, main: bool = True):
    """Resolve --out (default: the run folder of --resume, else runs/default), check that it can be written, hold
    its lock (main process only) while the block runs, and check what it holds; then resolve --resume (a run
    folder -> its latest complete checkpoint). Nothing in --out is touched before the lock is held."""
    args.out = args.out or (str(run_folder(Path(args.resume))) if args.resume else DEFAULT)
    out = Path(args.out)
    check_writable(out)
    with lock(out) if main else contextlib.nullcontext():
        check_contents(out, args, main)
        if args.resume:
            args.resume = str(resume.find(args.resume))  # may complete a save that a crash cut short
            if main:
                print(f"resuming from {args.resume}", file=sys.stderr)
        yield


def run_folder(checkpoint: Path) -> Path:
    """The --out folder of the run that wrote `checkpoint` (OUT/checkpoints/step-N); a run folder is its own."""
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint


def check_writable(out: Path) -> None:
    """--out, or the folder it would be created in, must be a folder this user can write to."""
    parent = next(p for p in [out, *out.parents] if p.exists())  # what exists of it: where it would be created
    if not parent.is_dir():
        raise cli.UsageError(f"--out {out}: {parent} is a file, not a folder; give a folder (it is created if "
                             "missing) for the model, metrics.jsonl and results.json")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise cli.UsageError(f"--out {out}: {parent} is read-only for you; give a folder you can write to, or "
                             "change its permissions")


def check_contents(out: Path, args, main: bool = True) -> None:
    """Refuse an --out whose contents a new run would destroy (the module's table); only reads."""
    if not out.is_dir() or args.overwrite or (args.resume and
                                              run_folder(Path(args.resume)).resolve() == out.resolve()):
        return  # nothing there (yet: under torchrun rank 0 creates it), told to, or continuing this run
    meta = out / "minift.json"
    if meta.is_file():
        task = _task_of(meta)
        if task != args.task:
            raise cli.UsageError(f"--out {out}: holds a trained {task or 'unreadable'} model ({meta}); this run is "
                                 f"--task {args.task}. Give another --out, or pass --overwrite to replace it")
        if main:
            print(f"note: {out} holds a {task} model from an earlier run; this run replaces it (give another "
                  "--out to keep it)", file=sys.stderr)
    done = resume.complete(out / "checkpoints", finish=False)
    if done:
        raise cli.UsageError(f"--out {out}: holds checkpoints of an earlier run (the latest is {done[-1]}); "
                             f"continue that run with --resume {out}, or start again with --overwrite (which "
                             "deletes them)")
    others = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    if others and not {"minift.json", "metrics.jsonl", "checkpoints"} & set(others):
        raise cli.UsageError(f"--out {out}: holds other files ({', '.join(others[:3])}{', ...' * (len(others) > 3)})"
                             " and no minift run; a run writes config.json, model.safetensors and more there, "
                             "replacing files of those names. Give a new or empty folder, or pass --overwrite")


def _task_of(meta: Path) -> str | None:
    try:
        task = json.loads(meta.read_text(encoding="utf-8")).get("task")
    except (OSError, ValueError, AttributeError):
        return None
    return task if isinstance(task, str) else None


@contextlib.contextmanager
def lock(out: Path):
    """Hold OUT/.minift.lock while the block runs (see the module docstring); create --out if it is missing."""
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK
    try:
        _take(path)
        try:
            yield
        finally:
            if _holder(path) == (os.getpid(), socket.gethostname()):
                path.unlink()
    finally:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


def _take(path: Path) -> None:
    """Create the lock file, holding "pid host"; take over a stale one once; refuse a live one."""
    for attempt in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _holder(path)
            if attempt == 0 and holder is not None and not _running(*holder):
                print(f"note: {path} was left by process {holder[0]}, which is no longer running (killed?); taking "
                      "it over", file=sys.stderr)
                path.unlink(missing_ok=True)
                continue
            who = f"process {holder[0]} on {holder[1]}" if holder else "another process"
            raise cli.UsageError(f"--out {path.parent}: another run ({who}) is writing there: its lock is {path}. "
                                 "Wait for it to end or give another --out; if no run is going, delete that "
                                 "file") from None
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()} {socket.gethostname()}\n")
        return


def _holder(path: Path) -> tuple[int, str] | None:
    """(pid, host) that a lock file holds; None if it cannot be read (or is still being written)."""
    try:
        pid, host = path.read_text(encoding="utf-8").split()
        return int(pid), host
    except (OSError, ValueError):
        return None


def _running(pid: int, host: str) -> bool:
    """Whether process `pid` on `host` may still run: True unless it is on this machine and gone."""
    if host != socket.gethostname() or os.name == "nt":  # no cheap check there; the message says what to do
        return True
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True

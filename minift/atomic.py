"""Atomic writes: a reader (or a crash) never sees half a file or a mix of two saves.

Every file minift writes goes through `write_file`, and every folder of files (a model folder, a training
checkpoint) through `write_folder`. Both rest on one fact: renaming within a file system is atomic (POSIX
rename(2); `os.replace` on Windows too), so a file written under a temporary name and then renamed is either
all there or not there at all.

    write_file(path, write)      write(PATH.tmp), then rename PATH.tmp -> PATH
    write_folder(folder, fill)   fill(FOLDER/.saving) writes every file; rename .saving -> .saved (the commit
                                 point); then move the files of .saved into FOLDER one by one (`finish`); a
                                 subfolder of the save replaces its namesake whole (deleted, then moved in)

A crash before the commit leaves FOLDER as it was (the next save clears .saving); a crash between the moves
leaves .saved, which `finish` moves in: every reader of a folder calls it first, so no one sees a mix of two
saves. A folder is written into rather than replaced because a model folder also holds files of other writers
(the run's metrics.jsonl, results.json, checkpoints/).

A save the disk refuses (full, over quota, read-only) raises `SaveError` after deleting what it had written, so
the files it would have replaced are intact and the space is given back.

tests/test_crash.py kills a training process at each of these moments (`_stop_point`): after a temporary file is
written, before a folder's commit, and between the moves that follow it.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

from safetensors import SafetensorError


class SaveError(OSError):
    """A save that the disk refused; nothing of it was kept, the files it would have replaced are as they were."""

    def __init__(self, path: Path, error: Exception):
        reason = getattr(error, "strerror", None) or str(error)
        full = getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(error)
        super().__init__(f"{'the disk is full: ' if full else ''}could not write {path} ({reason}); nothing of "
                         f"this save was kept, the files there are as they were before it")


def write_file(path: str | Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` writes the whole file to a temporary name beside `path`; then it is renamed to `path`."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
    except (OSError, SafetensorError) as e:
        tmp.unlink(missing_ok=True)
        raise e if isinstance(e, SaveError) else SaveError(path, e) from e
    _stop_point("write", tmp)
    os.replace(tmp, path)


def write_json(path: str | Path, obj, indent: int | None = 2, sort_keys: bool = False) -> None:
    """`obj` as JSON (and a final newline), written atomically."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys) + "\n"
    write_file(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_folder(folder: str | Path, fill: Callable[[Path], object]) -> None:
    """`fill(tmp)` writes the files of a save into an empty temporary folder; they then replace their namesakes
    in `folder` all together or, after a crash, not at all (see the module docstring)."""
    folder = Path(folder)
    finish(folder)  # complete a save that an earlier crash cut short
    tmp = folder / ".saving"
    shutil.rmtree(tmp, ignore_errors=True)  # what a crash before the commit left
    try:
        tmp.mkdir(parents=True)
        fill(tmp)
    except (OSError, SafetensorError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            folder.rmdir()  # if this save created it: nothing of the save is left
        cause = e.__cause__ if isinstance(e, SaveError) else e  # name the folder, not a file in .saving
        raise SaveError(folder, cause) from cause
    _stop_point("commit", folder)
    tmp.rename(folder / ".saved")  # the commit point
    finish(folder)


def finish(folder: str | Path) -> None:
    """Move the files of a committed save (FOLDER/.saved) into FOLDER; after a crash between the moves, calling
    it again completes them. Call it before reading a folder that `write_folder` writes."""
    done = Path(folder) / ".saved"
    if done.is_dir():
        for f in sorted(done.iterdir()):
            if f.is_dir() and (Path(folder) / f.name).is_dir():  # a crash in here leaves f in .saved: redone
                shutil.rmtree(Path(folder) / f.name)
            os.replace(f, Path(folder) / f.name)
            _stop_point("move", Path(folder) / f.name)
        done.rmdir()


_passed: dict[str, int] = {}


def _stop_point(point: str, path: Path) -> None:
    """Tests only: with MINIFT_TEST_STOP_AT="POINT PATH" (or "POINT PATH #N": the N-th time) in the environment,
    a process that reaches that point says so on stderr and sleeps, so that tests/test_crash.py can SIGKILL it
    there and nowhere else."""
    wanted, _, nth = os.environ.get("MINIFT_TEST_STOP_AT", "").partition(" #")
    if wanted == f"{point} {path}":
        _passed[wanted] = _passed.get(wanted, 0) + 1
        if _passed[wanted] == int(nth or 1):
            print(f"minift-test: stopped at {point} {path}", file=sys.stderr, flush=True)
            time.sleep(600)

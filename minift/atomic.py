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
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable


def write_file(path: str | Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` writes the whole file to a temporary name beside `path`; then it is renamed to `path`."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
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
    tmp.mkdir(parents=True)
    fill(tmp)
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
        done.rmdir()

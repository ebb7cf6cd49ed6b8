"""What the three commands (train, evaluate, predict) share: user errors, devices, seeds, and saved models.

A user error (a bad file, column, checkpoint or flag) ends a command with exit code 2 and one message that says
what is wrong, where, and what to do: never a traceback (`--debug` prints it too, for a bug report). Anything else
is a bug in minift and keeps its traceback.
"""
from __future__ import annotations

import random
import sys
import traceback
from pathlib import Path

import numpy as np
import torch

from minift import atomic, lora
from minift.adapter import load_adapter
from minift.checkpoint import CheckpointError
from minift.config import ConfigError
from minift.data import DataError
from minift.encoder import Encoder
from minift.meta import read_meta
from minift.tasks import ADAPTER_FOLDER, TASKS
from minift.tokenizer import Tokenizer


class UsageError(ValueError):
    """A flag or combination of flags that cannot work; the message says which and why."""


class TrainingDiverged(ValueError):
    """Too many updates in a row had a NaN or infinite loss or gradient; the message says what to try."""


USER_ERRORS = (UsageError, TrainingDiverged, DataError, ConfigError, CheckpointError, FileNotFoundError,
               IsADirectoryError, UnicodeDecodeError, atomic.SaveError)
DEBUG_HELP = "on a user error, print the traceback too (for a bug report)"


def run(main, argv=None, prog: str = "minift") -> int:
    """Call `main(argv)`; a user error prints `prog: error: message` to stderr (after its traceback if `--debug`
    is among the arguments) and returns 2."""
    try:
        main(argv)
    except USER_ERRORS as e:
        if "--debug" in (sys.argv[1:] if argv is None else argv):
            traceback.print_exc()
        message = str(e) if not isinstance(e, (FileNotFoundError, IsADirectoryError)) else \
            f"{e.filename}: {e.strerror}"
        print(f"{prog}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C; the loop's own says where it left a checkpoint
        print(f"{prog}: interrupted" + (f": {e}" if str(e) else ""), file=sys.stderr)
        return 130
    return 0


def pick_device(name: str | None) -> torch.device:
    """CUDA when available, else CPU; `--device` overrides, and asking for a missing GPU is a user error."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA GPU is visible to torch; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name}: not a device torch knows (try cpu or cuda)") from None


def seed_everything(seed: int) -> None:
    """Seed every random number generator the run uses: Python's, NumPy's and torch's (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def add_model_flags(p) -> None:
    """`--model`, and `--adapter` (evaluate, predict)."""
    p.add_argument("--model", required=True, help="folder written by `python -m minift.train --out`; with "
                                                  "--adapter, the base model that run started from (folder or Hub id)")
    p.add_argument("--adapter", help="OUT/adapter of `python -m minift.train --lora R --save-adapter --out OUT` (or "
                                     "OUT): its LoRA adapters and head on --model")


def load_trained(folder: str | Path, device: torch.device, adapter: str | Path | None = None):
    """A model folder written by `minift.train` -> (task, model on device, in eval mode). With `adapter`, the
    adapter folder of a `--lora R --save-adapter` run (OUT/adapter, or OUT), `folder` is the base model (folder
    or Hub id) and the task's settings come from the adapter folder; its adapters are merged into the base,
    W + (α/r)·B·A, as the run merged them for its own model folder."""
    saved = Path(adapter if adapter is not None else folder)
    atomic.finish(saved)  # complete a save that a crash cut short (minift/atomic.py)
    if adapter is not None and (saved / ADAPTER_FOLDER / "minift.json").is_file():
        saved = saved / ADAPTER_FOLDER  # --adapter OUT
    meta_file = saved / "minift.json"
    if not meta_file.is_file():
        wanted = "OUT/adapter of `python -m minift.train --lora R --save-adapter" if adapter is not None else \
            "the folder written by `python -m minift.train"
        raise CheckpointError(f"{saved}: no minift.json; give {wanted} --out OUT`")
    meta = read_meta(meta_file, TASKS)  # a CheckpointError, not a KeyError, for a field of the wrong type
    task = TASKS[meta["task"]].from_meta(meta, Tokenizer.from_pretrained(folder)).remember_run(meta)
    model = task.build_model(Encoder.from_pretrained(folder))
    if adapter is not None:
        if not task.peft_task_type:
            raise CheckpointError(f"--adapter {adapter}: a {task.kind} model has no adapter folder; load its merged "
                                  "model with --model alone")
        lora.merge_lora(load_adapter(model, saved, task.adapter_heads))
    return task, model.to(device).eval()

"""Training checkpoints: everything needed to stop a run and continue it with bitwise the same result.

`python -m minift.train --save-every N` writes, every N updates, a folder `OUT/checkpoints/step-{step}/`:

    model.safetensors        the weights, as the loop holds them (minift's own names, not Hugging Face's)
    optimizer.safetensors    AdamW's moments, one tensor per parameter: `state.{i}.exp_avg`, `state.{i}.exp_avg_sq`
    rng.safetensors          torch's random state (CPU, and each CUDA device): dropout draws from it
    trainer_state.json       the rest: step, epoch and position in it, best score so far, AdamW's step counts
                             and parameter groups, the GradScaler's scale, Python's and NumPy's random states

The folder is written as every folder is (minift/atomic.py: into step-N/.saving, committed by one rename,
trainer_state.json moved in last), so a crash mid-write never leaves a half checkpoint: an uncommitted step-N
has no trainer_state.json (`--resume` refuses it), and the next save deletes it. Only the last `--keep-checkpoints`
folders are kept; Ctrl-C writes one too (minift/faults.py). `--resume DIR` rebuilds the model and
optimizer as a fresh run would, then overwrites their state and every random generator from DIR and continues
from the next micro-batch of the same epoch (the batch order is a function of seed and epoch, see batching.py).
Safetensors and JSON only: no pickle, so loading a checkpoint runs no code.
"""
from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from minift import atomic
from minift.checkpoint import CheckpointError, check_safetensors

STATE_FILE = "trainer_state.json"


def save(folder: Path, model, opt, scaler, loop: dict, keep: int) -> None:
    """Write checkpoint `folder` (…/checkpoints/step-N) atomically, then delete all but the last `keep`."""
    atomic.write_folder(folder, lambda tmp: _write(tmp, model, opt, scaler, loop))
    prune(folder.parent, keep)


def _write(tmp: Path, model, opt, scaler, loop: dict) -> None:
    """The four files of a checkpoint, into the empty folder `tmp`."""
    save_model(model, str(tmp / "model.safetensors"))
    opt_state = opt.state_dict()
    save_file({f"state.{i}.{k}": v.contiguous() for i, s in opt_state["state"].items() for k, v in s.items()
               if torch.is_tensor(v)}, str(tmp / "optimizer.safetensors"))
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_file(rng, str(tmp / "rng.safetensors"))
    np_state = np.random.get_state()
    atomic.write_json(tmp / STATE_FILE, {
        "loop": loop,
        "optimizer": {"param_groups": opt_state["param_groups"],
                      "state": {str(i): {k: v for k, v in s.items() if not torch.is_tensor(v)}
                                for i, s in opt_state["state"].items()}},
        "scaler": scaler.state_dict(),  # {} for a disabled (fp32 / bf16) scaler
        "python_random": [random.getstate()[0], list(random.getstate()[1]), random.getstate()[2]],
        "numpy_random": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }, indent=None)


def prune(checkpoints: Path, keep: int) -> None:
    """Keep the last `keep` checkpoints in `checkpoints`; delete the older ones and any step-N folder that a
    crash mid-save left uncommitted (it holds nothing but .saving, see minift/atomic.py)."""
    folders = sorted(checkpoints.glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    junk = [p for p in folders if {f.name for f in p.iterdir()} <= {".saving"}]
    for path in junk + [p for p in folders if p not in junk][:-keep]:
        shutil.rmtree(path)


def load(folder: str | Path, model, opt, scaler) -> dict:
    """Restore model, optimizer, scaler and every random generator from `folder`; return the loop's state."""
    folder = Path(folder)
    atomic.finish(folder)  # complete a save that a crash cut short between its moves
    if not (folder / STATE_FILE).is_file():
        raise CheckpointError(f"--resume {folder}: no {STATE_FILE}; give a folder OUT/checkpoints/step-N "
                              "written by --save-every")
    state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    for name in ("model", "optimizer", "rng"):  # a header that lies is refused before anything is allocated
        check_safetensors(folder / f"{name}.safetensors")
    same = "resume with the same --model, --lora and task flags"
    try:
        missing, unexpected = load_model(model, str(folder / "model.safetensors"), strict=False)
    except RuntimeError as e:  # a tensor of another shape (another --lora rank, another label set)
        raise CheckpointError(f"--resume {folder}: {str(e).splitlines()[1].strip()}; {same}") from None
    if missing or unexpected:
        raise CheckpointError(f"--resume {folder}: its weights do not fit this model (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]}); {same}")
    moments = load_file(str(folder / "optimizer.safetensors"))
    opt_state = {"param_groups": state["optimizer"]["param_groups"], "state": {}}
    for i, scalars in state["optimizer"]["state"].items():
        tensors = {k.split(".", 2)[2]: v for k, v in moments.items() if k.split(".")[1] == i}
        opt_state["state"][int(i)] = {**scalars, **tensors}
    try:
        opt.load_state_dict(opt_state)
    except ValueError as e:
        raise CheckpointError(f"--resume {folder}: the optimizer state does not fit ({e}); resume with the same "
                              "--freeze, --lora, --layer-decay and task flags") from None
    if state["scaler"]:  # a checkpoint of an fp16 run
        scaler.load_state_dict(state["scaler"])
    rng = load_file(str(folder / "rng.safetensors"))
    torch.set_rng_state(rng["torch"])
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            if f"cuda.{i}" in rng:
                torch.cuda.set_rng_state(rng[f"cuda.{i}"], i)
    version, internal, gauss = state["python_random"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy_random"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))
    return state["loop"]


def forget_log_after(log: Path, step: int) -> None:
    """Drop the metrics.jsonl lines of steps after `step`: the resumed run will write them again."""
    if log.is_file():
        lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = "".join(line for line in lines if json.loads(line)["step"] <= step)
        atomic.write_file(log, lambda tmp: tmp.write_text(kept, encoding="utf-8"))

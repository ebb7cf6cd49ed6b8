"""Training checkpoints: everything needed to stop a run and continue it with bitwise the same result.

`python -m minift.train --save-every N` writes, every N updates, a folder `OUT/checkpoints/step-{step}/`:

    model.safetensors        the weights, as the loop holds them (minift's own names, not Hugging Face's)
    optimizer.safetensors    AdamW's moments, one tensor per parameter: `state.{i}.exp_avg`, `state.{i}.exp_avg_sq`
    rng.safetensors          torch's random state (CPU, and each CUDA device): dropout draws from it
    trainer_state.json       the rest: step, epoch and position in it, best score so far, AdamW's step counts
                             and parameter groups, the GradScaler's scale, Python's and NumPy's random states

The folder is written as every folder is (minift/atomic.py: into step-N/.saving, committed by one rename,
trainer_state.json moved in last), so a crash mid-write never leaves a half checkpoint: an uncommitted step-N
has no trainer_state.json (`--resume` skips it), and the next save deletes it. Only the last `--keep-checkpoints`
folders are kept; Ctrl-C writes one too (minift/faults.py). `--resume OUT` picks the run's latest complete
checkpoint (`find`, as Trainer's resume_from_checkpoint=True does; `--resume OUT/checkpoints/step-N` names one),
rebuilds the model and optimizer as a fresh run would, then overwrites their state and every random generator from
it and continues from the next micro-batch of the same epoch (the batch order is a function of seed and epoch, see
batching.py). Safetensors and JSON only: no pickle, so loading a checkpoint runs no code; every field of
trainer_state.json is type-checked first (`check_state`), so an edited one is a user error, not a traceback.
"""
from __future__ import annotations

import json
import math
import random
import shutil
import typing
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from minift import atomic, optim
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
    folders = steps(checkpoints)
    junk = [p for p in folders if {f.name for f in p.iterdir()} <= {".saving"}]
    for path in junk + [p for p in folders if p not in junk][:-keep]:
        shutil.rmtree(path)


def steps(checkpoints: Path) -> list[Path]:
    """The folders step-N in `checkpoints` (OUT/checkpoints), by N; none if it is missing."""
    found = [p for p in checkpoints.glob("step-*") if p.is_dir() and p.name[5:].isdigit()]
    return sorted(found, key=lambda p: int(p.name[5:]))


def complete(checkpoints: Path, finish: bool = True) -> list[Path]:
    """The complete checkpoints in `checkpoints` (OUT/checkpoints), oldest first: a save that a crash cut short
    after its commit counts (and is completed, unless `finish` is False), one cut short before it does not."""
    folders = steps(checkpoints)
    for folder in folders if finish else []:
        atomic.finish(folder)
    return [folder for folder in folders if (folder / STATE_FILE).is_file() or
            (folder / ".saved" / STATE_FILE).is_file()]


def find(folder: str | Path) -> Path:
    """--resume's checkpoint: `folder` itself if it is one, else the latest complete one of the run `folder`."""
    folder = Path(folder)
    atomic.finish(folder)  # complete a save that a crash cut short between its moves
    if (folder / STATE_FILE).is_file():
        return folder
    found = complete(folder / "checkpoints")
    if found:
        return found[-1]
    if folder.name.startswith("step-"):
        raise CheckpointError(f"--resume {folder}: no {STATE_FILE}: this checkpoint was never completed (the run "
                              f"stopped while writing it); give the run's --out folder to resume from its latest "
                              f"complete checkpoint")
    raise CheckpointError(f"--resume {folder}: no {STATE_FILE} and no complete checkpoint in "
                          f"{folder / 'checkpoints'}; give the --out folder of a run started with --save-every N "
                          "(or stopped with Ctrl-C), or train without --resume")


def load(folder: str | Path, model, opt, scaler, loop_type: type):
    """Restore model, optimizer, scaler and every random generator from checkpoint `folder`; return the loop's
    state as a `loop_type` (a dataclass: train.LoopState)."""
    folder = find(folder)
    try:
        state = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{folder / STATE_FILE}: not valid JSON ({e}); resume from another checkpoint") \
            from None
    check_state(state, folder / STATE_FILE, opt.state_dict()["param_groups"], loop_type)
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
    _load_optimizer(folder, state, opt)
    if state["scaler"]:  # a checkpoint of an fp16 run
        scaler.load_state_dict(state["scaler"])
    _load_random(folder, state)
    return loop_type(**state["loop"])


# What one parameter's state holds in each optimizer train builds: (numbers, tensors of the parameter's shape).
OPTIMIZER_STATE = {optim.AdamW: ({"step"}, {"exp_avg", "exp_avg_sq"})}


def _load_optimizer(folder: Path, state: dict, opt) -> None:
    """The optimizer's state: its groups and numbers from trainer_state.json (checked), its tensors from
    optimizer.safetensors, each checked to be the state this optimizer keeps for that parameter."""
    params = [p for group in opt.param_groups for p in group["params"]]  # state_dict's numbering
    numbers, tensors = next((v for k, v in OPTIMIZER_STATE.items() if isinstance(opt, k)), (None, None))
    moments = load_file(str(folder / "optimizer.safetensors"))
    opt_state = {"param_groups": state["optimizer"]["param_groups"], "state": {}}
    for i, scalars in state["optimizer"]["state"].items():
        held = {k.split(".", 2)[2]: v for k, v in moments.items() if k.split(".")[1] == i}
        bad = [k for k, v in held.items() if v.shape != params[int(i)].shape or not v.is_floating_point()]
        if bad or (numbers is not None and (set(scalars) != numbers or set(held) != tensors)):
            raise CheckpointError(f"--resume {folder}: the optimizer state of parameter {i} holds "
                                  f"{sorted(scalars)} in {STATE_FILE} and {sorted(held)} in optimizer.safetensors"
                                  f"{f' ({bad[0]} not of its shape {tuple(params[int(i)].shape)})' if bad else ''}; "
                                  f"{type(opt).__name__} keeps {sorted(numbers or [])} and {sorted(tensors or [])}."
                                  " Resume from another checkpoint, with the same --freeze, --lora and task flags")
        opt_state["state"][int(i)] = {**scalars, **held}
    try:
        opt.load_state_dict(opt_state)
    except ValueError as e:
        raise CheckpointError(f"--resume {folder}: the optimizer state does not fit ({e}); resume with the same "
                              "--freeze, --lora, --layer-decay and task flags") from None


def _load_random(folder: Path, state: dict) -> None:
    """torch's generators from rng.safetensors (checked: a CPU state of the right size), Python's and NumPy's
    from trainer_state.json (checked by check_state)."""
    rng = load_file(str(folder / "rng.safetensors"))
    cpu = torch.get_rng_state()
    if "torch" not in rng or rng["torch"].dtype != cpu.dtype or rng["torch"].shape != cpu.shape:
        raise CheckpointError(f"--resume {folder}: rng.safetensors holds no CPU random state of {cpu.numel()} bytes "
                              "('torch'); resume from another checkpoint")
    torch.set_rng_state(rng["torch"])
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            if f"cuda.{i}" in rng:
                torch.cuda.set_rng_state(rng[f"cuda.{i}"], i)
    version, internal, gauss = state["python_random"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, *rest = state["numpy_random"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), *rest))


def check_state(state, path: Path, param_groups: list[dict], loop_type: type) -> None:
    """Check every field of trainer_state.json at `path` against what `_write` writes, before any is used: the
    loop's against `loop_type`'s annotations, the optimizer's groups against this run's (`param_groups`), the
    random generators' states against what Python and NumPy produce. Numbers the optimizer uses must be finite and
    in the ranges it accepts (RANGES)."""
    def check(ok: bool, field: str, value, expected: str) -> None:
        if not ok:
            raise CheckpointError(f"{path}: field '{field}' is {json.dumps(value)[:60]}; expected {expected}. The "
                                  "file was edited or damaged: resume from another checkpoint, or train without "
                                  "--resume")
    check(isinstance(state, dict), "(the whole file)", state, "a JSON object")
    for key in ("loop", "optimizer", "scaler", "python_random", "numpy_random"):
        check(key in state, key, None, "a value (the field is missing)")
    hints = typing.get_type_hints(loop_type)
    check(isinstance(state["loop"], dict) and set(state["loop"]) == set(hints), "loop", state["loop"],
          f"an object with the fields {', '.join(hints)}")
    for key, hint in hints.items():
        value = state["loop"][key]
        check(isinstance(value, (int, float) if hint is float else hint) and not isinstance(value, bool),
              f"loop.{key}", value, {int: "a whole number", float: "a number"}.get(hint, str(hint)))
    opt = state["optimizer"]
    check(isinstance(opt, dict) and set(opt) == {"param_groups", "state"}, "optimizer", opt,
          "an object with the fields param_groups, state")
    _check_like(opt["param_groups"], param_groups, "optimizer.param_groups", check)
    for g, group in enumerate(opt["param_groups"]):
        _check_ranges(group, f"optimizer.param_groups[{g}]", check)
    check(isinstance(opt["state"], dict), "optimizer.state", opt["state"], "an object")
    for i, scalars in opt["state"].items():
        check(i.isascii() and i.isdigit() and int(i) < sum(len(g["params"]) for g in param_groups),
              f"optimizer.state.{i}", i, "a parameter's index")
        check(isinstance(scalars, dict) and all(_is_number(v, finite=True) for v in scalars.values()),
              f"optimizer.state.{i}", scalars, "an object of finite numbers")
        step = scalars.get("step", 1)  # AdamW's count of updates: from 0 its bias correction would divide by 0
        check(isinstance(step, int) and step >= 1, f"optimizer.state.{i}.step", step, "a whole number from 1")
    check(isinstance(state["scaler"], dict) and all(_is_number(v, finite=True) for v in state["scaler"].values()),
          "scaler", state["scaler"], "an object of finite numbers")
    _check_random(state["python_random"], state["numpy_random"], check)


def _check_random(py, np_state, check) -> None:
    """Python's random.getstate() (version, 624 words and a position, gauss) and NumPy's legacy get_state() (name,
    624 words, position, has_gauss, gauss), as JSON lists: what their setstate accepts, and only that."""
    def words(xs, n):
        return isinstance(xs, list) and len(xs) == n and all(isinstance(x, int) and 0 <= x < 2**32 for x in xs)
    check(isinstance(py, list) and len(py) == 3 and py[0] == random.Random.VERSION and words(py[1], 625)
          and py[1][-1] <= 624 and (py[2] is None or isinstance(py[2], float)), "python_random", py,
          f"[{random.Random.VERSION}, 624 words and a position up to 624, gauss]")
    check(isinstance(np_state, list) and len(np_state) == 5 and np_state[0] == "MT19937" and words(np_state[1], 624)
          and isinstance(np_state[2], int) and 0 <= np_state[2] <= 624 and np_state[3] in (0, 1)
          and isinstance(np_state[3], int) and isinstance(np_state[4], float) and math.isfinite(np_state[4]),
          "numpy_random", np_state, '["MT19937", 624 words, a position up to 624, has_gauss 0 or 1, gauss]')


# The ranges torch.optim itself accepts (0 <= beta < 1; lr, eps, weight decay, momentum >= 0), capped where no
# training uses more, so that a damaged value is refused here and does not overflow a float32 in the first update.
RANGES = {"lr": (0.0, 1e3), "initial_lr": (0.0, 1e3), "eps": (0.0, 1.0), "weight_decay": (0.0, 1e3),
          "momentum": (0.0, 1.0), "dampening": (0.0, 1.0)}


def _check_ranges(group: dict, field: str, check) -> None:
    """One optimizer group's numbers (already checked finite by _check_like) within RANGES; betas in [0, 1)."""
    for key, (low, high) in RANGES.items():
        if _is_number(group.get(key)):
            check(low <= group[key] <= high, f"{field}.{key}", group[key], f"a number from {low:g} to {high:g}")
    for i, beta in enumerate(group.get("betas") or ()):
        check(0.0 <= beta < 1.0, f"{field}.betas[{i}]", beta, "a number from 0 up to (not including) 1")


def _is_number(value, finite: bool = False) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and (not finite or math.isfinite(value))


def _check_like(value, like, field: str, check) -> None:
    """`value` (read from JSON) has the shape and types of `like` (what this run's optimizer holds); its numbers
    are finite."""
    if like is None or isinstance(like, (bool, str)):  # None: a setting left unset, e.g. torch's foreach
        check(type(value) is type(like) or (like is None and (value is None or _is_number(value, finite=True))),
              field, value, type(like).__name__)
    elif isinstance(like, (int, float)):
        check(_is_number(value, finite=True) and (isinstance(like, float) or isinstance(value, int)), field, value,
              "a finite number" if isinstance(like, float) else "a whole number")
    elif isinstance(like, (list, tuple)):
        check(isinstance(value, list) and len(value) == len(like), field, value, f"a list of {len(like)}; resume "
              "with the same --freeze, --layer-decay and task flags as the run that wrote it")
        for i, (v, w) in enumerate(zip(value, like)):
            _check_like(v, w, f"{field}[{i}]", check)
    elif isinstance(like, dict):
        check(isinstance(value, dict) and set(value) == set(like), field, value,
              f"an object with the fields {', '.join(map(str, like))}")
        for key in like:
            _check_like(value[key], like[key], f"{field}.{key}", check)


def forget_log_after(log: Path, step: int) -> None:
    """Drop the metrics.jsonl lines of steps after `step`: the resumed run will write them again. So is a last
    line cut short (a crash mid-append: it does not parse)."""
    if log.is_file():
        kept = []
        for line in log.read_text(encoding="utf-8").splitlines(keepends=True):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step:
                kept.append(line)
        atomic.write_file(log, lambda tmp: tmp.write_text("".join(kept), encoding="utf-8"))

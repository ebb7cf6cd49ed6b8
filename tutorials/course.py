"""What every lesson shares: its two speeds (--full, --data-dir), where results are written, and the machine.

A lesson runs fast by default (bundled data, seconds). With `--full` it makes the real measurement on the real
data in `../shared/data` (or `--data-dir`) and writes it to `tutorials/results/NN_name.json`, recording the
command and the machine, so that every number quoted in a lesson's prose can be traced to a committed file.
"""
import argparse
import json
import os
import platform
import sys
from pathlib import Path

import torch

from minift import optim
from minift.heads import pool

ROOT = Path(__file__).resolve().parent.parent  # the project root
RESULTS = ROOT / "tutorials" / "results"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def arguments(doc: str) -> argparse.ArgumentParser:
    """The options every lesson takes; a lesson may add its own before parse_args()."""
    ap = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    ap.add_argument("--full", action="store_true", help="make the real measurement and write tutorials/results/")
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data",
                    help="the real datasets (default ../shared/data beside the project root)")
    return ap


def machine() -> str:
    """The CPU, threads and library versions: what a timing depends on."""
    cpu = platform.processor() or "unknown CPU"
    if os.path.isfile("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    return (f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
            f"Python {platform.python_version()}")


def save(name: str, result: dict) -> Path:
    """Write tutorials/results/<name>.json with the command and machine that made it."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    command = "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]])
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"command": command, "machine": machine(), **result}, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")
    return path


def load(name: str) -> dict | None:
    """The committed result of a lesson's --full run, or None if there is none."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def embed(tokenizer, encoder, texts: list[str], pairs: list[str] | None = None, max_length: int = 64) -> torch.Tensor:
    """(N, H): the frozen encoder's mean-pooled vector of each text (or of [CLS] text [SEP] pair [SEP]), 64 rows at a
    time: lessons 9, 11 and 12 embed every sentence once and train heads on the vectors, so epochs cost milliseconds."""
    out = []
    for i in range(0, len(texts), 64):
        b = tokenizer(texts[i:i + 64], pairs[i:i + 64] if pairs else None, max_length=max_length)
        with torch.no_grad():
            h = encoder(b["input_ids"], b["attention_mask"], b["token_type_ids"])  # (B, T, H)
            out.append(pool(encoder, h, b["attention_mask"], "mean"))  # (B, H)
    return torch.cat(out)


def train_task(task, model, features, steps: int, lr: float, batch_size: int = 16, warmup: int | None = None) -> list:
    """`steps` updates of `model` on a task's training features, as `python -m minift.train` makes them for any
    task (lesson 5 writes the loop out): AdamW (no decay on biases and norms), linear warmup (10 % of the steps
    unless `warmup` says) and decay, gradients clipped at norm 1, shuffled epochs of task.batches, each loss the
    task's summed loss divided by its count. Returns the loss of every step."""
    opt = optim.AdamW(optim.param_groups(model, lr=lr, weight_decay=0.01))
    warmup = max(1, steps // 10) if warmup is None else warmup
    model.train()
    step_losses, epoch = [], 0
    while len(step_losses) < steps:
        for batch in task.batches(features, batch_size, seed=0, epoch=epoch, shuffle=True):
            optim.set_lr(opt, optim.linear(len(step_losses), steps, warmup))
            total, count = task.loss(model, batch)
            loss = total / count
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
            step_losses.append(loss.item())
            if len(step_losses) == steps:
                break
        epoch += 1
    return step_losses

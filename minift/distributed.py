"""Data-parallel training over processes started by torchrun: each process holds a copy of the model.

Reference: PyTorch's DistributedDataParallel (Li et al., "PyTorch Distributed: Experiences on Accelerating Data
Parallel Training", VLDB 2020) and torchrun's environment variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT). `torchrun --nproc_per_node W -m minift.train ...` runs W copies of the same loop:

    every process reads the same files and cuts each epoch into the same global batches of --batch-size rows
    (batching.py: the order is a function of seed and epoch), so --batch-size is the global batch
    process r takes rows r, r+W, r+2W, ... of each global batch                                 (shard)
    DDP all-reduces the gradients during the last backward of an update: each process then holds
        (1/W) Σ_r ∇L_r,   L_r the summed loss of process r's rows
    the loop all-reduces the loss sum and the count N (examples or tokens) of the update, and divides the
    gradients by N/W:  (1/W) Σ_r ∇L_r / (N/W) = ∇(Σ_r L_r) / N, what one process computes on the whole batch
    rank 0 alone evaluates (on every validation row, so each example counts exactly once), logs, and writes
    files; the other processes wait for it at the next all-reduce

Backends: gloo for CPU tensors, NCCL for CUDA tensors (each process on cuda:LOCAL_RANK). Without torchrun
(WORLD_SIZE unset or 1) every function here is a no-op and the loop is the plain one-process loop.
"""
from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """True in the one process that logs and writes files (rank 0), and in a run without torchrun."""
    return rank() == 0


@contextlib.contextmanager
def process_group():
    """Join the process group torchrun describes in the environment (if any) for the duration of a run."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        yield
        return
    cuda = torch.cuda.is_available() and dist.is_nccl_available()
    dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo")  # env:// : RANK, WORLD_SIZE, MASTER_*
    try:
        yield
    finally:
        dist.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """Under torchrun, a CUDA run uses GPU LOCAL_RANK of this machine; a CPU run stays on the CPU."""
    if device.type != "cuda" or world_size() == 1:
        return device
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    torch.cuda.set_device(device)
    return device


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """The model wrapped in DDP (which copies rank 0's weights to every process), or itself in one process.

    DDP syncs the parameters that require a gradient when it is built, so the loop wraps again after gradual
    unfreezing changes them. Only a sentence model with `--pooling pooler` uses the encoder's pooler; for the
    others DDP must look for unused parameters (one more walk over the autograd graph per step)."""
    if world_size() == 1:
        return model
    ids = [device.index] if device.type == "cuda" else None
    unused = getattr(model, "pooling", None) != "pooler"
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=unused)


def shard(batch: dict) -> tuple[dict, float]:
    """(this process's rows r, r+W, ... of a global batch, 1.0). A process left without rows (a batch shorter
    than W) gets the batch's first row and weight 0.0: it must still run backward so that DDP's all-reduce
    happens, and the weight makes its loss, gradient and count 0."""
    r, w = rank(), world_size()
    if w == 1:
        return batch, 1.0
    if len(batch["input_ids"]) <= r:
        return {k: v[:1] for k, v in batch.items()}, 0.0
    return {k: v[r::w] for k, v in batch.items()}, 1.0


def sync_gradients(model: torch.nn.Module, now: bool):
    """Inside it, backward all-reduces the gradients only when `now` (the last micro-batch of an update)."""
    if now or not isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return model.no_sync()


def all_reduce_sum(*values: float) -> list[float]:
    """The sums over all processes of a few numbers (one all-reduce, in float64 on the CPU)."""
    if world_size() == 1:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()

"""One optimizer update of the training loop: gradient accumulation over micro-batches, the optional L1 / L2
penalty gradient, clipping, the scheduled learning rate and the step, under any precision and under torchrun.

Reference: gradient accumulation as one batch of all the micro-batches' rows (the sum of losses divided once by
the sum of counts, as `transformers.Trainer` does with `num_items_in_batch`); clipping by global norm,
`torch.nn.utils.clip_grad_norm_` (Pascanu et al., 2013). The loop that calls it is minift/train.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from minift import distributed, optim
from minift.precision import autocast


@dataclass
class Update:
    """What one optimizer update tells the loop."""

    loss: float  # Σ loss / Σ count over the update's micro-batches (and processes)
    grad_norm: float  # of the whole gradient, before clipping
    skipped: bool  # the loss or the norm was NaN / inf: the weights did not move
    bad: bool  # skipped, and not for an fp16 overflow (the GradScaler's business: it lowers its scale)
    stop_requested: bool  # some process was asked to stop (Ctrl-C)
    penalties: dict = field(default_factory=dict)  # {"l2_penalty": λ₂ Σw², "l1_penalty": λ₁ Σ|w|} if asked


def update(model, opt, scaler, micro_batches: list[dict], loss, device: torch.device, lr_scale: float,
           max_grad_norm: float = 0.0, precision: str = "fp32", stop_requested=lambda: False,
           penalty=None) -> Update:
    """One optimizer update: the gradient of Σ_b L_b / Σ_b n_b over the micro-batches b, as one batch of them all.

        L_b, n_b = loss(model, b)     summed loss and its count, forward + loss under autocast (`precision`)
        backward L_b                  gradients add up in .grad (scaled by S for fp16, else S = 1)
        L, n = Σ L_b, Σ n_b           over every process too: one all-reduce, with `stop_requested()` (read now,
                                      so that a Ctrl-C during the backward passes stops after this update)
        g = g / S / n                 (under DDP, backward already averaged over the W processes: g / (n / W))
        g = g + ∇P(w)                 `penalty(params)` -> its terms, P = Σ of them (--l2, --l1), over the
                                      decayed parameters: added once, after the division, so the update descends
                                      Σ L_b / Σ n_b + P whether the rows came in one batch or N micro-batches
        norm = |g|; clip g to `max_grad_norm` (0: no clipping, the norm is still measured)
        lr = each group's base lr × `lr_scale` (the schedule's value); AdamW step, or skip if L or norm is not finite
    `model` may be wrapped in DDP (distributed.wrap); it then all-reduces the gradients in the last backward."""
    # The loss sum stays on the device (float64, adding exactly as Python floats do) and is read once, in the
    # all-reduce: reading it per micro-batch (.item()) would make the CPU wait for the GPU every time.
    loss_sum, count = torch.zeros((), dtype=torch.float64, device=device), 0.0
    for j, batch in enumerate(micro_batches):
        rows, weight = distributed.shard(batch)  # this process's rows; weight 0 for a stand-in row
        rows = to_device(rows, device)
        with distributed.sync_gradients(model, j == len(micro_batches) - 1):  # all-reduce in the last backward
            with autocast(precision, device):  # forward + loss in bf16 / fp16; the weights stay fp32
                total, n = loss(model, rows)
            total = total.float() * weight
            scaler.scale(total).backward()
        loss_sum, count = loss_sum + total.detach().double(), count + n * weight
    loss_sum, count, stops = distributed.all_reduce_sum(loss_sum, count, stop_requested())
    scaler.unscale_(opt)  # fp16: divide the gradients by the loss scale S before clipping
    for p in model.parameters():
        if p.grad is not None:
            p.grad.div_(count / distributed.world_size())
    penalties = add_penalty_gradient(model, penalty) if penalty is not None else {}
    grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm or math.inf))
    optim.set_lr(opt, lr_scale)
    finite = math.isfinite(loss_sum) and math.isfinite(grad_norm)
    if finite:
        scaler.step(opt)  # opt.step(), unless fp16 found an inf gradient
    scaler.update()  # fp16: lower the scale after an overflow, raise it after a run of good steps
    opt.zero_grad(set_to_none=True)  # a skipped update's gradients are thrown away
    overflow_only = scaler.is_enabled() and math.isfinite(loss_sum)
    return Update(loss_sum / count, grad_norm, not finite, not finite and not overflow_only, stops > 0, penalties)


def add_penalty_gradient(model, penalty) -> dict:
    """.grad += ∇ Σ_k terms_k for `penalty(params)` -> {name: λ·P(params)} over `optim.decayed_params(model)`
    (the same on every process: no all-reduce). Returns each term's value, for metrics.jsonl."""
    params = optim.decayed_params(model)
    terms = penalty(params)
    for p, g in zip(params, torch.autograd.grad(sum(terms.values()), params)):
        p.grad = g if p.grad is None else p.grad.add_(g)
    return {name: float(value.detach()) for name, value in terms.items()}


def to_device(rows: dict, device: torch.device) -> dict:
    """A batch's tensors on the device. To a GPU they go from pinned (page-locked) memory without blocking: the
    copy overlaps the work already queued, and CUDA still runs it before the kernels that read it."""
    if device.type != "cuda":
        return {k: v.to(device) for k, v in rows.items()}
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in rows.items()}

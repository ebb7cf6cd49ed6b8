"""Mixed precision: run the forward pass and loss in 16-bit floats, keep the weights and their updates in fp32.

References: Micikevicius et al., "Mixed Precision Training", ICLR 2018 (fp32 master weights, loss scaling);
Kalamkar et al., "A Study of BFLOAT16 for Deep Learning Training", 2019. PyTorch's recipe is
`torch.autocast` around forward + loss, and for fp16 a `torch.amp.GradScaler`:

    with torch.autocast(device.type, dtype=torch.bfloat16):   # matrix products in bf16, reductions in fp32
        loss = task.loss(model, batch)                        # minift's losses cast 16-bit logits to fp32
    loss.backward()                                           # gradients land in the fp32 weights' .grad

    bf16   8 exponent bits like fp32: the same range, less precision. Needs no loss scaling.
    fp16   5 exponent bits: small gradients underflow to 0, so the loss is multiplied by a scale S before
           backward and the gradients divided by S before the update (GradScaler). minift allows it on CUDA only.

A CPU computes bf16 quickly only with the AVX512_BF16 or AMX instructions; elsewhere torch emulates it, and a
bf16 run is many times slower than fp32 (it is then useful only to check a bf16 recipe before a GPU run).
"""
from __future__ import annotations

import contextlib
import sys

import torch

from minift.cli import UsageError

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_native_bf16() -> bool:
    """True when this CPU has bf16 instructions (AVX512_BF16 or AMX); torch emulates bf16 otherwise."""
    cpu = torch.cpu
    checks = [getattr(cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def check(precision: str, device: torch.device) -> None:
    """Refuse fp16 off CUDA and bf16 on a GPU without it; warn that emulated bf16 on a CPU is slow."""
    if precision == "fp16" and device.type != "cuda":
        raise UsageError(f"--precision fp16 needs a CUDA GPU (it is on {device}); "
                                   "use --precision bf16 or fp32")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UsageError(f"--precision bf16: {torch.cuda.get_device_name(device)} has no bf16; "
                                   "use --precision fp16")
    if precision == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        print(f"warning: this CPU ({torch.backends.cpu.get_cpu_capability()}) has no bf16 instructions "
              "(AVX512_BF16 or AMX): --precision bf16 will be many times slower than fp32", file=sys.stderr)


def autocast(precision: str, device: torch.device):
    """The context to run forward + loss in: torch.autocast for bf16 / fp16, nothing for fp32."""
    dtype = DTYPES[precision]
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A GradScaler, enabled for fp16 (dynamic loss scaling). Disabled (bf16, fp32) it does nothing: `scale(loss)`
    is the loss, `unscale_` and `update` return at once, `step(opt)` is `opt.step()`, so the loop has no branch."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")

"""LoRA variants tried against issue 16's gap (benchmarks/README.md, `lora_sst2.py`), as benchmark code only.

Each is a change to how the optimizer sees a LoRA model, so each wraps `minift.optim.param_groups` (which
`minift/recipes.py` calls once, after `lora.apply_lora`, to build the optimizer) inside one benchmark run:

    loraplus:R  B learns R times faster than A: lr_B = R·lr_A (LoRA+, Hayou et al. 2024, "LoRA+: Efficient Low
                Rank Adaptation of Large Models"; PEFT's `create_loraplus_optimizer` with `loraplus_lr_ratio` R)
    pissa       A and B start at the top-r singular triplets of W, and the frozen base becomes the residual:
                W = U S Vᵀ,  A = √(S_r/s) V_rᵀ (r × in),  B = U_r √(S_r/s) (out × r),  W_res = W - s·B·A,
                s = α/r, so W_res + s·B·A = W and the model starts as pretrained (Meng et al. 2024, "PiSSA:
                Principal Singular Values and Singular Vectors Adaptation"; PEFT's init_lora_weights="pissa")
    norms       the encoder layers' LayerNorms and biases train too, beside A, B and the head
    words       the word embeddings train too (11.7 M parameters: a diagnostic of where LoRA's gap lies, not a
                LoRA setting; the issue asks for under 2% trainable)

    python benchmarks/lora_sst2.py ... --methods lora-all --variant pissa

tests/test_lora_variants.py checks `loraplus` and `pissa` against PEFT. The merged model a run saves (W_res + s·B·A,
and the trained norms or embeddings) is exact for every variant; a `pissa` run's PEFT-format adapter is not (PEFT
converts a PiSSA adapter to a rank-2r LoRA before saving it), so these runs are scored on the merged model, which is
what `minift.train` reloads at the end anyway.
"""
from __future__ import annotations

import torch
from torch import nn

from minift import optim
from minift.lora import LoRALinear, lora_modules

VARIANTS = ("loraplus:R", "pissa", "norms", "words")


def loraplus_groups(groups: list[dict], ratio: float) -> list[dict]:
    """Split each group's lora_B parameters into a group of their own at `ratio` times its rate."""
    out = []
    for g in groups:
        pairs = list(zip(g["params"], g["param_names"]))
        b = [(p, n) for p, n in pairs if n.endswith("lora_B")]
        rest = [(p, n) for p, n in pairs if not n.endswith("lora_B")]
        for part, scale in ((rest, 1.0), (b, ratio)):
            if part:
                out.append(dict(g, params=[p for p, _ in part], param_names=[n for _, n in part],
                                lr=g["lr"] * scale, initial_lr=g["initial_lr"] * scale))
    return out


@torch.no_grad()
def pissa_init(module: LoRALinear) -> None:
    """A, B <- the top-r singular triplets of W scaled by 1/√s each; W <- W - s·B·A (the residual)."""
    w = module.base.weight.float()  # (out, in)
    u, s, vh = torch.linalg.svd(w, full_matrices=False)  # (out, k), (k,), (k, in)
    root = (s[:module.r] / module.scaling).sqrt()  # (r,)
    module.lora_A.copy_(root[:, None] * vh[:module.r])  # (r, in)
    module.lora_B.copy_(u[:, :module.r] * root[None, :])  # (out, r)
    residual = w - module.scaling * module.lora_B.float() @ module.lora_A.float()
    module.base.weight.copy_(residual.to(module.base.weight.dtype))


def train_norms(model: nn.Module) -> None:
    """Unfreeze every LayerNorm weight and bias and every linear bias of the encoder's layers."""
    for name, p in model.encoder.layers.named_parameters():
        if p.ndim == 1 and "lora_" not in name:
            p.requires_grad_(True)


def train_words(model: nn.Module) -> None:
    """Unfreeze the word embeddings (vocabulary × hidden), which LoRA otherwise leaves as pretrained."""
    model.encoder.embeddings.word.weight.requires_grad_(True)


def use(variant: str) -> None:
    """Wrap `optim.param_groups` so that every optimizer built from now on sees `variant` (one of VARIANTS)."""
    name, _, arg = variant.partition(":")
    if name not in {v.partition(":")[0] for v in VARIANTS} or (name == "loraplus") != bool(arg):
        raise SystemExit(f"--variant {variant!r}: expected one of {', '.join(VARIANTS)}")
    plain = optim.param_groups

    def param_groups(model, *args, **kwargs):
        if name == "pissa":
            for module in lora_modules(model).values():
                if isinstance(module, LoRALinear):  # an SVD start for the linear layers' adapters only
                    pissa_init(module)
        if name == "norms":
            train_norms(model)
        if name == "words":
            train_words(model)
        groups = plain(model, *args, **kwargs)
        return loraplus_groups(groups, float(arg)) if name == "loraplus" else groups

    optim.param_groups = param_groups

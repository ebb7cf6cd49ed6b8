"""LoRA: train a low-rank update of frozen linear layers instead of the layers themselves.

Hu et al. (2021), "LoRA: Low-Rank Adaptation of Large Language Models" (ICLR 2022). A chosen weight W (out × in)
stays frozen; what trains is a rank-r update, scaled by α/r:

    W' = W + (α/r) · B · A            A: (r × in), B: (out × r), r << min(in, out)
    y  = x W'ᵀ + b = x Wᵀ + b + (α/r) · dropout(x) Aᵀ Bᵀ      dropout on the adapter's input only, as in PEFT

Initialisation as in PEFT (the de-facto reference): A like an nn.Linear weight (kaiming_uniform_, a = √5), B = 0,
so B·A = 0 and the model starts exactly as pretrained. α/r keeps the update's size from depending on r.
After training, `merge_lora` folds (α/r)·B·A into W: a plain checkpoint again, with no extra cost at inference.

Targets (`apply_lora(..., targets=...)`), named after the Hugging Face BERT modules they are in every layer:

    query, key, value     attention projections    minift layers.{i}.attn.query / key / value
    attention.output      attention output         layers.{i}.attn.out   (BERT attention.output.dense)
    intermediate          feed-forward up          layers.{i}.ffn.up     (BERT intermediate.dense)
    output                feed-forward down        layers.{i}.ffn.down   (BERT output.dense, not attention.output)
    all                   the six above
    embeddings            the word embeddings      embeddings.word       (LoRAEmbedding, its own rank and α)

Everything of the encoder not adapted is frozen (embeddings, LayerNorms, pooler); everything outside the encoder
(the task head) trains. `--freeze layers:I-J` under LoRA keeps the adapters of those layers frozen too
(`freeze_adapters`), `--freeze embeddings` the word embeddings' adapter: B·A stays 0 there, as pretrained.
minift/adapter.py writes and reads the adapters in PEFT's folder layout.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from minift import freeze
from minift.encoder import Encoder

# The command line's LoRA recipe (train_flags), for the flags a user leaves out. The task recipes' rates are for full
# fine-tuning, too low for adapters: at them `--lora 8 --lora-targets all` stayed near chance (bundled reviews:
# validation accuracy 0.566; bundled tagging set: F1 0.113). With this recipe: 0.904 and 0.587 (full fine-tuning 0.928
# and 0.536; benchmarks/lora_defaults.py), and on 20,000 SST-2 rows 0.8970 against 0.8915 at α = 2r, lr 1e-3,
# dropout 0.1 (benchmarks/lora_sst2.py). Under Adam a large α makes B's side of the update move α/r times faster
# than A (LoRA+, Hayou et al. 2024; LoRA+ itself, B at 16x A's rate with α = 2r, scored the same 0.8975,
# benchmarks/lora_variants.py); at twice these rates the SST-2 run diverged. The layers' adapters plateau there some
# 1.6-1.7 points under full fine-tuning (four seeds): the frozen word embeddings are the rest. `--lora-targets
# all,embeddings` (a rank-4 LoRAEmbedding at scale 1 as well, 1.97% trainable) lands 0.25 points under on the held-out
# rows and 0.19 on 4,000 fresh ones (four seeds, benchmarks/README.md).
RECIPE = {"lr": 5e-4, "lr_head": 1e-3, "alpha_per_rank": 16.0, "dropout": 0.0}

TARGETS = {"query": "attn.query", "key": "attn.key", "value": "attn.value", "attention.output": "attn.out",
           "intermediate": "ffn.up", "output": "ffn.down"}  # target -> module path inside a minift layer
EMBEDDINGS, WORDS = "embeddings", "embeddings.word"  # the word embeddings' target, and its path in the encoder
EMBEDDING_RANK = 4  # the embeddings target's rank, unless given; its α is the rank unless given (LoRAEmbedding)
DEFAULT_TARGETS = ("query", "value")


class Adapter(nn.Module):
    """What LoRALinear and LoRAEmbedding share: a frozen `base` layer whose weight W gets the update
    `delta_weight()`, in forward (unmerged) or folded into W (merged)."""

    def __init__(self, base: nn.Module, r: int, alpha: float):
        super().__init__()
        if r < 1:
            raise ValueError(f"LoRA rank r must be >= 1, got {r}")
        self.base, self.r, self.alpha, self.scaling = base, r, alpha, alpha / r
        base.requires_grad_(False)
        self.merged = False  # True: base.weight holds W + the update, and forward uses base alone

    def delta_weight(self) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def merge(self) -> None:
        """W <- W + delta_weight(); forward then runs the base layer alone."""
        if not self.merged:
            self.base.weight += self.delta_weight().to(self.base.weight.dtype)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """W <- W - delta_weight(), undoing merge (up to rounding)."""
        if self.merged:
            self.base.weight -= self.delta_weight().to(self.base.weight.dtype)
            self.merged = False


class LoRALinear(Adapter):
    """A frozen nn.Linear `base` plus the trainable low-rank update (α/r)·B·A: x (..., in) -> (..., out)."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0):
        super().__init__(base, r, alpha)
        like = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **like))  # (r, in)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **like))  # (out, r): starts at zero
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear initialises its weight
        self.dropout = nn.Dropout(dropout)

    def delta_weight(self) -> torch.Tensor:
        """(α/r)·B·A, the update of W: (out, in)."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def adapt(self, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """y = base(x) (..., out) plus the update's term (α/r)·dropout(x) Aᵀ Bᵀ (nothing once merged)."""
        if self.merged:
            return y
        return y + (self.dropout(x) @ self.lora_A.T @ self.lora_B.T) * self.scaling  # (..., r) -> (..., out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., in) -> (..., out)
        return self.adapt(self.base(x), x)

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, dropout={self.dropout.p}"


class LoRAEmbedding(Adapter):
    """A frozen nn.Embedding `base`, table E (V × H), plus a low-rank update of the table: ids (...) -> (..., H).

        E' = E + (α/r) · (B · A)ᵀ         A: (r × V), B: (H × r)      PEFT's lora_embedding_A, lora_embedding_B
        y  = E'[ids] = E[ids] + (α/r) · Aᵀ[ids] Bᵀ                      look up r numbers per token, then map to H

    As in PEFT, the roles of the zero and the random factor swap with LoRALinear's: A = 0, B ~ N(0, 1), so the
    model starts as pretrained. B's entries are about 1 where LoRALinear's A's are about 1/√in, so at the same α/r
    this update would move some √in times faster: it has its own α, by default its rank (scale 1). A token's
    column of A trains only where the token occurs; the padding token's stays 0. No dropout (PEFT has none here)."""

    def __init__(self, base: nn.Embedding, r: int, alpha: float):
        super().__init__(base, r, alpha)
        like = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(torch.zeros(r, base.num_embeddings, **like))  # (r, V): starts at zero
        self.lora_B = nn.Parameter(torch.randn(base.embedding_dim, r, **like))  # (H, r)

    def delta_weight(self) -> torch.Tensor:
        """(α/r)·(B·A)ᵀ, the update of E: (V, H)."""
        return self.scaling * (self.lora_B @ self.lora_A).T

    def forward(self, ids: torch.Tensor) -> torch.Tensor:  # (...) -> (..., H)
        y = self.base(ids)
        if self.merged:
            return y
        rows = F.embedding(ids, self.lora_A.T, padding_idx=self.base.padding_idx)  # (..., r)
        return y + (rows @ self.lora_B.T) * self.scaling  # (..., H)

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}"


def parse_targets(targets) -> tuple[str, ...]:
    """"query,value", ["query", "value"], "all" or "all,embeddings" -> the target names, in TARGETS order with
    embeddings last; ValueError if unknown."""
    names = targets.split(",") if isinstance(targets, str) else list(targets)
    names = [n.strip().lower() for n in names if n.strip()]
    if "all" in names:
        names = [n for n in names if n != "all"] + list(TARGETS)
    unknown = [n for n in names if n not in TARGETS and n != EMBEDDINGS]
    if unknown or not names:
        raise ValueError(f"LoRA targets {targets!r}: unknown {', '.join(unknown) or '(none given)'}; choose from "
                         f"{', '.join(TARGETS)}, {EMBEDDINGS} (comma-separated), or all (the six linear ones)")
    return tuple(t for t in (*TARGETS, EMBEDDINGS) if t in names)


def targets_of(names) -> list[str]:
    """The targets adapted in module names such as "layers.0.attn.query" (any layer) or "embeddings.word"."""
    paths = {n.split(".", 2)[2] for n in names if n.startswith("layers.")}  # attn.query, ...
    return [t for t, path in TARGETS.items() if path in paths] + ([EMBEDDINGS] if WORDS in names else [])


def frozen_layers(spec, num_layers: int | None = None) -> frozenset[int]:
    """The layers whose adapters `--freeze SPEC` keeps frozen under LoRA: none for "none" and "embeddings" (which
    freezes the word embeddings' adapter), I..J for "layers:I-J". "encoder" and "bias-only" would leave no adapter to
    train: a ValueError, as is a spec freeze.parse_spec rejects."""
    kind, layers = freeze.parse_spec(spec, num_layers)
    if kind in ("encoder", "bias-only"):
        raise ValueError(f"freeze spec {spec!r} leaves no LoRA adapter to train; with LoRA use none, embeddings or "
                         "layers:I-J (or drop --lora: --freeze encoder is a linear probe, bias-only is BitFit)")
    return layers


def _encoder(model: nn.Module) -> Encoder:
    return model if isinstance(model, Encoder) else model.encoder


def lora_modules(model: nn.Module) -> dict[str, Adapter]:
    """The adapted layers by their name in the encoder, e.g. {"layers.0.attn.query": LoRALinear, "embeddings.word":
    LoRAEmbedding}."""
    return {n: m for n, m in _encoder(model).named_modules() if isinstance(m, Adapter)}


def apply_lora(model: nn.Module, r: int = 8, alpha: float = 16.0, dropout: float = 0.0, targets=DEFAULT_TARGETS,
               embedding_r: int = EMBEDDING_RANK, embedding_alpha: float | None = None) -> nn.Module:
    """Wrap the target linear layers of every encoder layer in LoRALinear (rank r, α, dropout) and, for the
    embeddings target, the word embeddings in LoRAEmbedding (rank embedding_r, α embedding_alpha, None: the rank);
    freeze the rest of the encoder; leave everything outside the encoder (the task head) trainable. `model` is a
    task model (with `.encoder`) or an Encoder. Call it before the optimizer is built: A and B are new parameters.
    Returns the model."""
    targets = parse_targets(targets)
    encoder = _encoder(model)
    if lora_modules(model):
        raise ValueError("the model already has LoRA layers; apply_lora once, or merge_lora first")
    word = encoder.embeddings.word
    if EMBEDDINGS in targets and model is not encoder:
        tied = [n for n, m in model.named_modules(remove_duplicate=False) if m is word and n != f"encoder.{WORDS}"]
        if tied:
            raise ValueError(f"the {EMBEDDINGS} target adapts the word embeddings, which this model's {tied[0]} "
                             "shares (its output layer is tied to them); adapt the linear targets only")
    for p in model.parameters():
        p.requires_grad_(True)
    encoder.requires_grad_(False)
    for layer in encoder.layers:
        for t in (t for t in targets if t in TARGETS):
            parent, _, attr = TARGETS[t].rpartition(".")
            owner = layer.get_submodule(parent)
            wrapped = LoRALinear(getattr(owner, attr), r, alpha, dropout)
            setattr(owner, attr, wrapped.train(owner.training))  # a new module trains; keep eval() on
    if EMBEDDINGS in targets:
        wrapped = LoRAEmbedding(word, embedding_r, embedding_r if embedding_alpha is None else embedding_alpha)
        encoder.embeddings.word = wrapped.train(encoder.training)
    return model


def freeze_adapters(model: nn.Module, spec) -> nn.Module:
    """After apply_lora: A and B train in every adapter except those of the layers `spec` freezes
    (`frozen_layers`), and the word embeddings' under "embeddings"; the rest of the encoder stays frozen, the head
    trains. Returns the model."""
    layers = frozen_layers(spec, len(_encoder(model).layers))
    words = freeze.parse_spec(spec)[0] == "embeddings"
    for name, m in lora_modules(model).items():
        frozen = words if name == WORDS else int(name.split(".")[1]) in layers  # layers.{i}.attn.query
        for p in (m.lora_A, m.lora_B):
            p.requires_grad_(not frozen)
    return model


def settings(model: nn.Module) -> dict | None:
    """The model's LoRA settings, as minift.json records them: {"r", "alpha", "dropout", "targets"} (r, α and dropout
    of the linear adapters), and "embedding_r", "embedding_alpha" with the embeddings target; None without LoRA."""
    mods = lora_modules(model)
    if not mods:
        return None
    linear = {(m.r, m.alpha, m.dropout.p) for m in mods.values() if isinstance(m, LoRALinear)}
    if len(linear) > 1:
        raise ValueError(f"the model's LoRA layers differ in r/alpha/dropout: {linear}")
    out = dict(zip(("r", "alpha", "dropout"), linear.pop())) if linear else {}
    out["targets"] = targets_of(mods)
    if WORDS in mods:
        out |= {"embedding_r": mods[WORDS].r, "embedding_alpha": mods[WORDS].alpha}
    return out


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its layer, W <- W + its update, and put the plain nn.Linear / nn.Embedding back: the
    state_dict then has exactly the keys of a model without LoRA. In place (to save mid-training, merge a
    copy.deepcopy)."""
    encoder = _encoder(model)
    for name, m in lora_modules(model).items():
        m.merge()
        parent, _, attr = name.rpartition(".")
        setattr(encoder.get_submodule(parent), attr, m.base)
    return model

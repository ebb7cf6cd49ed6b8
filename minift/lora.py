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

Everything of the encoder not adapted is frozen (embeddings, LayerNorms, pooler); everything outside the encoder
(the task head) trains. `--freeze layers:I-J` under LoRA keeps the adapters of those layers frozen too
(`freeze_adapters`): B stays 0 there, so those layers stay as pretrained. `save_adapter` / `load_adapter` write
and read PEFT's folder layout (adapter_config.json, adapter_model.safetensors) so that
`peft.PeftModel.from_pretrained` loads minift's adapters and vice versa.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from minift import checkpoint, freeze
from minift.encoder import Encoder

# The command line's LoRA recipe (train_flags), for the flags a user leaves out. The task recipes' rates are for full
# fine-tuning, too low for adapters: at them `--lora 8 --lora-targets all` stayed near chance (bundled reviews:
# validation accuracy 0.566; bundled tagging set: F1 0.113). With this recipe: 0.904 and 0.587 (full fine-tuning 0.928
# and 0.536; benchmarks/lora_defaults.py), and on 20,000 SST-2 rows 0.8970 against 0.8915 at α = 2r, lr 1e-3,
# dropout 0.1 (benchmarks/lora_sst2.py). Under Adam a large α makes B's side of the update move α/r times faster
# than A (LoRA+, Hayou et al. 2024; LoRA+ itself, B at 16x A's rate with α = 2r, scored the same 0.8975,
# benchmarks/lora_variants.py); at twice these rates the SST-2 run diverged.
RECIPE = {"lr": 5e-4, "lr_head": 1e-3, "alpha_per_rank": 16.0, "dropout": 0.0}

TARGETS = {"query": "attn.query", "key": "attn.key", "value": "attn.value", "attention.output": "attn.out",
           "intermediate": "ffn.up", "output": "ffn.down"}  # target -> module path inside a minift layer
DEFAULT_TARGETS = ("query", "value")
HEAD_NAMES = {"head.out": "classifier"}  # minift head module -> its Hugging Face name (sentence and token tasks)
PEFT_PREFIX = "base_model.model."  # what PEFT puts before the base model's own module names


class LoRALinear(nn.Module):
    """A frozen nn.Linear `base` plus the trainable low-rank update (α/r)·B·A: x (..., in) -> (..., out)."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        if r < 1:
            raise ValueError(f"LoRA rank r must be >= 1, got {r}")
        self.base, self.r, self.alpha, self.scaling = base, r, alpha, alpha / r
        base.requires_grad_(False)
        like = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **like))  # (r, in)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **like))  # (out, r): starts at zero
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear initialises its weight
        self.dropout = nn.Dropout(dropout)
        self.merged = False  # True: base.weight holds W + (α/r)·B·A, and forward uses base alone

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

    @torch.no_grad()
    def merge(self) -> None:
        """W <- W + (α/r)·B·A; forward then runs the base layer alone."""
        if not self.merged:
            self.base.weight += self.delta_weight().to(self.base.weight.dtype)
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """W <- W - (α/r)·B·A, undoing merge (up to rounding)."""
        if self.merged:
            self.base.weight -= self.delta_weight().to(self.base.weight.dtype)
            self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, dropout={self.dropout.p}"


def parse_targets(targets) -> tuple[str, ...]:
    """"query,value" or ["query", "value"] (or "all") -> the target names, in TARGETS order; ValueError if unknown."""
    names = targets.split(",") if isinstance(targets, str) else list(targets)
    names = [n.strip().lower() for n in names if n.strip()]
    if names == ["all"]:
        return tuple(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown or not names:
        raise ValueError(f"LoRA targets {targets!r}: unknown {', '.join(unknown) or '(none given)'}; choose from "
                         f"{', '.join(TARGETS)} (comma-separated), or all")
    return tuple(t for t in TARGETS if t in names)


def targets_of(names) -> list[str]:
    """The targets adapted in module names such as "layers.0.attn.query" (any layer), in TARGETS order."""
    paths = {n.split(".", 2)[2] for n in names if n.startswith("layers.")}  # attn.query, ...
    return [t for t, path in TARGETS.items() if path in paths]


def frozen_layers(spec, num_layers: int | None = None) -> frozenset[int]:
    """The layers whose adapters `--freeze SPEC` keeps frozen under LoRA: none for "none" and "embeddings" (LoRA
    freezes the embeddings anyway), I..J for "layers:I-J". "encoder" and "bias-only" would leave no adapter to
    train: a ValueError, as is a spec freeze.parse_spec rejects."""
    kind, layers = freeze.parse_spec(spec, num_layers)
    if kind in ("encoder", "bias-only"):
        raise ValueError(f"freeze spec {spec!r} leaves no LoRA adapter to train; with LoRA use none, embeddings or "
                         "layers:I-J (or drop --lora: --freeze encoder is a linear probe, bias-only is BitFit)")
    return layers


def _encoder(model: nn.Module) -> Encoder:
    return model if isinstance(model, Encoder) else model.encoder


def lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    """The adapted layers by their name in the encoder, e.g. {"layers.0.attn.query": LoRALinear}."""
    return {n: m for n, m in _encoder(model).named_modules() if isinstance(m, LoRALinear)}


def apply_lora(model: nn.Module, r: int = 8, alpha: float = 16.0, dropout: float = 0.0,
               targets=DEFAULT_TARGETS) -> nn.Module:
    """Wrap the target linear layers of every encoder layer in LoRALinear; freeze the rest of the encoder; leave
    everything outside the encoder (the task head) trainable. `model` is a task model (with `.encoder`) or an
    Encoder. Call it before the optimizer is built: A and B are new parameters. Returns the model."""
    targets = parse_targets(targets)
    encoder = _encoder(model)
    if lora_modules(model):
        raise ValueError("the model already has LoRA layers; apply_lora once, or merge_lora first")
    for p in model.parameters():
        p.requires_grad_(True)
    encoder.requires_grad_(False)
    for layer in encoder.layers:
        for t in targets:
            parent, _, attr = TARGETS[t].rpartition(".")
            owner = layer.get_submodule(parent)
            wrapped = LoRALinear(getattr(owner, attr), r, alpha, dropout)
            setattr(owner, attr, wrapped.train(owner.training))  # a new module trains; keep eval() on
    return model


def freeze_adapters(model: nn.Module, spec) -> nn.Module:
    """After apply_lora: A and B train in every adapted layer except those of the layers `spec` freezes
    (`frozen_layers`); the rest of the encoder stays frozen, the head trains. Returns the model."""
    layers = frozen_layers(spec, len(_encoder(model).layers))
    for name, m in lora_modules(model).items():
        for p in (m.lora_A, m.lora_B):
            p.requires_grad_(int(name.split(".")[1]) not in layers)  # layers.{i}.attn.query
    return model


def settings(model: nn.Module) -> dict | None:
    """The model's LoRA settings, as minift.json records them: {"r", "alpha", "dropout", "targets"}; None if it
    has no LoRA layers."""
    mods = lora_modules(model)
    if not mods:
        return None
    r, alpha, dropout = _settings(mods)
    return {"r": r, "alpha": alpha, "dropout": dropout, "targets": targets_of(mods)}


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its layer, W <- W + (α/r)·B·A, and put the plain nn.Linear back: the state_dict then
    has exactly the keys of a model without LoRA. In place (to save mid-training, merge a copy.deepcopy)."""
    encoder = _encoder(model)
    for name, m in lora_modules(model).items():
        m.merge()
        parent, _, attr = name.rpartition(".")
        setattr(encoder.get_submodule(parent), attr, m.base)
    return model


# ---- PEFT's adapter folder ----
def _hf_module(name: str, family: str) -> str:
    """minift module name -> Hugging Face module name, by checkpoint.rename: layers.0.attn.query ->
    encoder.layer.0.attention.self.query (BERT), transformer.layer.0.attention.q_lin (DistilBERT)."""
    return checkpoint.rename(name + ".weight", family, reverse=True).removesuffix(".weight")


def peft_target_modules(encoder: Encoder) -> list[str]:
    """PEFT's `target_modules` for the adapted layers. PEFT adapts a module whose name equals an entry or ends
    with "." + entry. Each adapted kind is written by the shortest suffix of its in-layer name that no other kind
    of linear layer ends with (query; attention.output.dense); a kind with none (BERT's FFN output.dense, a suffix
    of attention.output.dense) is written by its full per-layer names (encoder.layer.3.output.dense)."""
    family = encoder.cfg.model_type
    kinds = {}  # in-layer minift path -> (in-layer Hugging Face name, adapted?)
    for path, m in encoder.layers[0].named_modules():
        if isinstance(m, (nn.Linear, LoRALinear)) and not path.endswith(".base"):
            inner = _hf_module(f"layers.0.{path}", family).split(".0.", 1)[1]  # attention.self.query
            kinds[path] = inner, isinstance(m, LoRALinear)
    targets = []
    for path, (inner, adapted) in kinds.items():
        if not adapted:
            continue
        parts = inner.split(".")
        suffixes = [".".join(parts[-n:]) for n in range(1, len(parts) + 1)]  # shortest first
        others = [other for other, _ in kinds.values() if other != inner]
        unique = [s for s in suffixes if not any(o == s or o.endswith("." + s) for o in others)]
        if unique:
            targets.append(unique[0])
        else:
            targets += [_hf_module(n, family) for n in lora_modules(encoder) if n.split(".", 2)[2] == path]
    return targets


def _settings(mods: dict[str, LoRALinear]) -> tuple[int, float, float]:
    """(r, alpha, dropout), shared by every adapted layer (one LoraConfig describes them all)."""
    settings = {(m.r, m.alpha, m.dropout.p) for m in mods.values()}
    if len(settings) != 1:
        raise ValueError(f"the model has no LoRA layers, or layers with different r/alpha/dropout: {settings}")
    return settings.pop()


def save_adapter(model: nn.Module, folder, base_model_name_or_path: str | None = None,
                 task_type: str | None = "SEQ_CLS", head_names: dict[str, str] = HEAD_NAMES) -> None:
    """Write the adapters and the head alone in PEFT's layout, for `peft.PeftModel.from_pretrained(base, folder)`:

        adapter_config.json          LoraConfig: peft_type LORA, r, lora_alpha, target_modules, modules_to_save, ...
        adapter_model.safetensors    base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight  (r, in)
                                     base_model.model.bert.encoder.layer.0.attention.self.query.lora_B.weight  (out, r)
                                     base_model.model.classifier.weight, .bias                   (the head, whole)

    `head_names` maps minift head modules to their Hugging Face names ({} for a bare Encoder, whose keys then
    have no `bert.`); `task_type` is PEFT's (SEQ_CLS, TOKEN_CLS, QUESTION_ANS, FEATURE_EXTRACTION or None)."""
    encoder, mods = _encoder(model), lora_modules(model)
    r, alpha, dropout = _settings(mods)
    family = encoder.cfg.model_type
    prefix = PEFT_PREFIX + ("" if model is encoder else checkpoint.MODEL_PREFIX[family])
    tensors = {}
    for name, m in mods.items():
        tensors[f"{prefix}{_hf_module(name, family)}.lora_A.weight"] = m.lora_A
        tensors[f"{prefix}{_hf_module(name, family)}.lora_B.weight"] = m.lora_B
    for ours, hf in head_names.items():
        tensors.update({f"{PEFT_PREFIX}{hf}.{k}": t for k, t in model.get_submodule(ours).state_dict().items()})
    config = {"peft_type": "LORA", "task_type": task_type, "base_model_name_or_path": base_model_name_or_path,
              "r": r, "lora_alpha": alpha, "lora_dropout": dropout, "target_modules": peft_target_modules(encoder),
              "modules_to_save": sorted(head_names.values()) or None, "bias": "none", "fan_in_fan_out": False,
              "inference_mode": True, "use_rslora": False, "use_dora": False, "init_lora_weights": True}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "adapter_model.safetensors.tmp"
    save_file({k: t.detach().contiguous().cpu() for k, t in tensors.items()}, tmp, metadata={"format": "pt"})
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, folder / "adapter_model.safetensors")


def read_adapter_config(folder) -> dict:
    """adapter_config.json of a PEFT LoRA folder, checked for what minift's LoRALinear computes."""
    path = Path(folder) / "adapter_config.json"
    if not path.is_file():
        raise checkpoint.CheckpointError(f"{folder}: no adapter_config.json; is it an adapter folder (--save-adapter)?")
    config = json.loads(path.read_text(encoding="utf-8"))
    unsupported = {"peft_type": "LORA", "bias": "none", "fan_in_fan_out": False, "use_rslora": False,
                   "use_dora": False, "lora_bias": False, "rank_pattern": {}, "alpha_pattern": {},
                   "layers_to_transform": None}
    wrong = [f"{k}={config[k]!r}" for k, v in unsupported.items() if k in config and config[k] not in (v, None)]
    if wrong:
        raise checkpoint.CheckpointError(f"{path}: minift reads plain LoRA adapters only; this one has "
                                         f"{', '.join(wrong)}")
    return config


def load_adapter(model: nn.Module, folder, head_names: dict[str, str] = HEAD_NAMES) -> nn.Module:
    """Apply LoRA to a plain model as a PEFT adapter folder describes it, and load its A, B and head tensors
    (written by save_adapter or by PEFT's save_pretrained). Every tensor must find its place, and every
    adapted layer and head its tensors; on an error the model is left half-built: build it again."""
    config = read_adapter_config(folder)
    tensors = load_file(Path(folder) / "adapter_model.safetensors")
    encoder = _encoder(model)
    family = encoder.cfg.model_type
    prefix = PEFT_PREFIX + ("" if model is encoder else checkpoint.MODEL_PREFIX[family])
    by_hf_head = {hf: ours for ours, hf in head_names.items()}
    state, heads, unknown = {}, {name: {} for name in head_names}, []
    for key, t in tensors.items():
        module, _, param = key.removeprefix(PEFT_PREFIX).rpartition(".")  # classifier, weight
        inner, _, kind = key.removeprefix(prefix).removesuffix(".weight").rpartition(".")  # ....query, lora_A
        ours = checkpoint.rename(inner + ".weight", family) if key.startswith(prefix) else None
        if kind in ("lora_A", "lora_B") and key.endswith(".weight") and ours:
            state[f"{ours.removesuffix('.weight')}.{kind}"] = t  # layers.0.attn.query.lora_A
        elif module in by_hf_head:
            heads[by_hf_head[module]][param] = t
        else:
            unknown.append(key)
    if not state:
        raise checkpoint.CheckpointError(f"{folder}: no LoRA tensors for a {family} model in adapter_model.safetensors")
    no_head = [f"{hf} (minift {ours})" for ours, hf in head_names.items() if not heads[ours]]
    if no_head:
        raise checkpoint.CheckpointError(f"{folder}: the adapter has no tensors for the task head "
                                         f"{', '.join(no_head)}; it was saved for another task, or without "
                                         "modules_to_save")
    apply_lora(model, config["r"], config["lora_alpha"], config.get("lora_dropout", 0.0),
               targets_of(n.rpartition(".")[0] for n in state))  # layers.0.attn.query.lora_A -> query
    shapes = {n: tuple(p.shape) for n, p in encoder.named_parameters() if n.endswith((".lora_A", ".lora_B"))}
    checkpoint.check_fit(shapes, state, unknown, str(folder))
    encoder.load_state_dict(state, strict=False)
    for ours, t in heads.items():
        model.get_submodule(ours).load_state_dict(t)
    return model

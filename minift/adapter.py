"""LoRA adapters in PEFT's folder layout, so that `peft.PeftModel.from_pretrained` loads minift's adapters and
minift loads PEFT's (the layout of PEFT's `save_pretrained`, https://github.com/huggingface/peft):

    adapter_config.json          LoraConfig: peft_type LORA, r, lora_alpha, target_modules, modules_to_save,
                                 rank_pattern / alpha_pattern (the word embeddings' own r and α), ...
    adapter_model.safetensors    base_model.model.bert.encoder.layer.0.attention.self.query.lora_A.weight  (r, in)
                                 base_model.model.bert.encoder.layer.0.attention.self.query.lora_B.weight  (out, r)
                                 base_model.model.bert.embeddings.word_embeddings.lora_embedding_A         (r, V)
                                 base_model.model.bert.embeddings.word_embeddings.lora_embedding_B         (H, r)
                                 base_model.model.classifier.weight, .bias                   (the head, whole)

Module names go through checkpoint.rename (minift layers.0.attn.query <-> BERT encoder.layer.0.attention.self.query).
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from minift import checkpoint
from minift.encoder import Encoder
from minift.lora import WORDS, LoRAEmbedding, LoRALinear, _encoder, apply_lora, lora_modules, settings, targets_of

HEAD_NAMES = {"head.out": "classifier"}  # minift head module -> its Hugging Face name (sentence and token tasks)
PEFT_PREFIX = "base_model.model."  # what PEFT puts before the base model's own module names
PARAMS = {LoRALinear: ("lora_A.weight", "lora_B.weight"), LoRAEmbedding: ("lora_embedding_A", "lora_embedding_B")}
WORD_EMBEDDINGS = "word_embeddings"  # the word table's Hugging Face name in every family (checkpoint.NAME_MAPS)
WORDS_PATTERN = re.compile(rf"(.*\.)?{WORD_EMBEDDINGS}")  # a rank_pattern / alpha_pattern key that names it


def _hf_module(name: str, family: str) -> str:
    """minift module name -> Hugging Face module name, by checkpoint.rename: layers.0.attn.query ->
    encoder.layer.0.attention.self.query (BERT), transformer.layer.0.attention.q_lin (DistilBERT)."""
    return checkpoint.rename(name + ".weight", family, reverse=True).removesuffix(".weight")


def peft_target_modules(encoder: Encoder) -> list[str]:
    """PEFT's `target_modules` for the adapted layers. PEFT adapts a module whose name equals an entry or ends
    with "." + entry. Each adapted kind is written by the shortest suffix of its in-layer name that no other kind
    of linear layer ends with (query; attention.output.dense); a kind with none (BERT's FFN output.dense, a suffix
    of attention.output.dense) is written by its full per-layer names (encoder.layer.3.output.dense). The word
    embeddings are word_embeddings."""
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
            targets += [_hf_module(n, family) for n in lora_modules(encoder) if n.endswith(f".{path}")]
    return targets + ([WORD_EMBEDDINGS] if WORDS in lora_modules(encoder) else [])


def save_adapter(model: nn.Module, folder, base_model_name_or_path: str | None = None,
                 task_type: str | None = "SEQ_CLS", head_names: dict[str, str] = HEAD_NAMES) -> None:
    """Write the adapters and the head alone in PEFT's layout (the module docstring), for
    `peft.PeftModel.from_pretrained(base, folder)`. `head_names` maps minift head modules to their Hugging Face
    names ({} for a bare Encoder, whose keys then have no `bert.`); `task_type` is PEFT's (SEQ_CLS, TOKEN_CLS,
    QUESTION_ANS, FEATURE_EXTRACTION or None)."""
    encoder, mods, lora = _encoder(model), lora_modules(model), settings(model)
    if lora is None:
        raise ValueError("the model has no LoRA layers to save")
    family = encoder.cfg.model_type
    prefix = PEFT_PREFIX + ("" if model is encoder else checkpoint.MODEL_PREFIX[family])
    tensors = {}
    for name, m in mods.items():
        hf, (a, b) = prefix + _hf_module(name, family), PARAMS[type(m)]
        tensors |= {f"{hf}.{a}": m.lora_A, f"{hf}.{b}": m.lora_B}
    for ours, hf in head_names.items():
        tensors.update({f"{PEFT_PREFIX}{hf}.{k}": t for k, t in model.get_submodule(ours).state_dict().items()})
    words = "embedding_r" in lora
    r, alpha = lora.get("r", lora.get("embedding_r")), lora.get("alpha", lora.get("embedding_alpha"))
    config = {"peft_type": "LORA", "task_type": task_type, "base_model_name_or_path": base_model_name_or_path,
              "r": r, "lora_alpha": alpha, "lora_dropout": lora.get("dropout", 0.0),
              "target_modules": peft_target_modules(encoder), "modules_to_save": sorted(head_names.values()) or None,
              "rank_pattern": {WORD_EMBEDDINGS: lora["embedding_r"]} if words else {},
              "alpha_pattern": {WORD_EMBEDDINGS: lora["embedding_alpha"]} if words else {},
              "bias": "none", "fan_in_fan_out": False, "inference_mode": True, "use_rslora": False,
              "use_dora": False, "init_lora_weights": True}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "adapter_model.safetensors.tmp"
    save_file({k: t.detach().contiguous().cpu() for k, t in tensors.items()}, tmp, metadata={"format": "pt"})
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, folder / "adapter_model.safetensors")


def _embedding_pattern(config: dict, key: str) -> float | None:
    """The word embeddings' entry of rank_pattern or alpha_pattern (`key`), None if it has none."""
    pattern = config.get(key) or {}
    return next((v for k, v in pattern.items() if WORDS_PATTERN.fullmatch(k)), None)


def read_adapter_config(folder) -> dict:
    """adapter_config.json of a PEFT LoRA folder, checked for what minift's LoRALinear and LoRAEmbedding compute."""
    path = Path(folder) / "adapter_config.json"
    if not path.is_file():
        raise checkpoint.CheckpointError(f"{folder}: no adapter_config.json; is it an adapter folder (--save-adapter)?")
    config = json.loads(path.read_text(encoding="utf-8"))
    unsupported = {"peft_type": "LORA", "bias": "none", "fan_in_fan_out": False, "use_rslora": False,
                   "use_dora": False, "lora_bias": False, "layers_to_transform": None}
    wrong = [f"{k}={config[k]!r}" for k, v in unsupported.items() if k in config and config[k] not in (v, None)]
    for key in ("rank_pattern", "alpha_pattern"):  # minift's layers share one r and α; the word embeddings have theirs
        wrong += [f"{key} {{{k!r}: ...}}" for k in config.get(key) or {} if not WORDS_PATTERN.fullmatch(k)]
    if wrong:
        raise checkpoint.CheckpointError(f"{path}: minift reads plain LoRA adapters only (one r and α for the "
                                         f"layers, another for the word embeddings); this one has {', '.join(wrong)}")
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
    ends = {f".{peft}": f".{ours}" for pair in PARAMS.values() for peft, ours in zip(pair, ("lora_A", "lora_B"))}
    state, heads, unknown = {}, {name: {} for name in head_names}, []
    for key, t in tensors.items():
        module, _, param = key.removeprefix(PEFT_PREFIX).rpartition(".")  # classifier, weight
        end = next((e for e in ends if key.endswith(e)), "")
        inner = key.removeprefix(prefix).removesuffix(end)  # encoder.layer.0.attention.self.query
        ours = checkpoint.rename(inner + ".weight", family) if key.startswith(prefix) and end else None
        if ours:
            state[ours.removesuffix(".weight") + ends[end]] = t  # layers.0.attn.query.lora_A
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
    embedding_r = _embedding_pattern(config, "rank_pattern") or config["r"]
    embedding_alpha = _embedding_pattern(config, "alpha_pattern") or config["lora_alpha"]
    apply_lora(model, config["r"], config["lora_alpha"], config.get("lora_dropout", 0.0),
               targets_of({n.rpartition(".")[0] for n in state}), embedding_r, embedding_alpha)
    shapes = {n: tuple(p.shape) for n, p in encoder.named_parameters() if n.endswith((".lora_A", ".lora_B"))}
    checkpoint.check_fit(shapes, state, unknown, str(folder))
    encoder.load_state_dict(state, strict=False)
    for ours, t in heads.items():
        model.get_submodule(ours).load_state_dict(t)
    return model

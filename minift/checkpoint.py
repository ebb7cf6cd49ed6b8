"""Checkpoints: find a pretrained model's files, read its tensors, and rename them to minift's modules.

A checkpoint is a folder with `config.json`, tokenizer files and `model.safetensors` (or several shards listed
in `model.safetensors.index.json`). It is found either as a local folder or as a Hugging Face Hub id, resolved
by `huggingface_hub.snapshot_download` (which honours `HF_HUB_CACHE`, `HF_HUB_OFFLINE` and `revision`).

Tensors are read with `safetensors` only: a `.bin` file is a pickle, and unpickling runs code, so minift refuses it.

Each family names its tensors its own way; `NAME_MAPS` holds one readable table per family,
`checkpoint name -> minift module name`, with `{i}` standing for a layer index. Example for BERT:

    encoder.layer.{i}.attention.self.query  ->  layers.{i}.attn.query
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from minift import atomic

# Files a checkpoint needs; everything else in a Hub repository (ONNX, TF, pickles) is left undownloaded.
HUB_PATTERNS = ["config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                "vocab.txt", "vocab.json", "merges.txt", "*.safetensors", "model.safetensors.index.json",
                "minift.json"]

# Tensors of task heads that a checkpoint may carry; reported, not loaded into the encoder.
HEAD_PREFIXES = ("cls.", "classifier.", "qa_outputs.", "pre_classifier.", "lm_head.",
                 "vocab_transform.", "vocab_layer_norm.", "vocab_projector.")

_BERT_LAYER = [
    ("encoder.layer.{i}.attention.self.query", "layers.{i}.attn.query"),
    ("encoder.layer.{i}.attention.self.key", "layers.{i}.attn.key"),
    ("encoder.layer.{i}.attention.self.value", "layers.{i}.attn.value"),
    ("encoder.layer.{i}.attention.output.dense", "layers.{i}.attn.out"),
    ("encoder.layer.{i}.attention.output.LayerNorm", "layers.{i}.attn_norm"),
    ("encoder.layer.{i}.intermediate.dense", "layers.{i}.ffn.up"),
    ("encoder.layer.{i}.output.dense", "layers.{i}.ffn.down"),
    ("encoder.layer.{i}.output.LayerNorm", "layers.{i}.ffn_norm"),
]
NAME_MAPS = {
    "bert": [
        ("embeddings.word_embeddings", "embeddings.word"),
        ("embeddings.position_embeddings", "embeddings.position"),
        ("embeddings.token_type_embeddings", "embeddings.token_type"),
        ("embeddings.LayerNorm", "embeddings.norm"),
        *_BERT_LAYER,
        ("pooler.dense", "pooler"),
    ],
    "distilbert": [
        ("embeddings.word_embeddings", "embeddings.word"),
        ("embeddings.position_embeddings", "embeddings.position"),
        ("embeddings.LayerNorm", "embeddings.norm"),
        ("transformer.layer.{i}.attention.q_lin", "layers.{i}.attn.query"),
        ("transformer.layer.{i}.attention.k_lin", "layers.{i}.attn.key"),
        ("transformer.layer.{i}.attention.v_lin", "layers.{i}.attn.value"),
        ("transformer.layer.{i}.attention.out_lin", "layers.{i}.attn.out"),
        ("transformer.layer.{i}.sa_layer_norm", "layers.{i}.attn_norm"),
        ("transformer.layer.{i}.ffn.lin1", "layers.{i}.ffn.up"),
        ("transformer.layer.{i}.ffn.lin2", "layers.{i}.ffn.down"),
        ("transformer.layer.{i}.output_layer_norm", "layers.{i}.ffn_norm"),
    ],
}
NAME_MAPS["roberta"] = NAME_MAPS["bert"]
# The prefix a whole-model checkpoint (e.g. BertForPreTraining) puts before the encoder's names.
MODEL_PREFIX = {"bert": "bert.", "roberta": "roberta.", "distilbert": "distilbert."}
IGNORED = ("embeddings.position_ids",)  # a buffer some old checkpoints saved; it is recomputed


class CheckpointError(ValueError):
    """A checkpoint that cannot be found or read, or whose tensors do not fit the model."""


def resolve(name_or_path: str | Path, revision: str | None = None) -> Path:
    """Return the local folder holding a checkpoint: `name_or_path` itself, or a Hub snapshot of it."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise CheckpointError(f"{name}: not a checkpoint folder (expected a folder with config.json and "
                              "model.safetensors, or a Hub id such as sentence-transformers/all-MiniLM-L6-v2)")
    from huggingface_hub import snapshot_download  # imported here: only Hub ids need it
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    # Read the environment now, not when huggingface_hub was imported, so that a caller may set it late.
    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
    try:
        return Path(snapshot_download(name, revision=revision, allow_patterns=HUB_PATTERNS,
                                      cache_dir=os.environ.get("HF_HUB_CACHE"), local_files_only=offline))
    except LocalEntryNotFoundError:
        cache = os.environ.get("HF_HUB_CACHE", "the default Hugging Face cache")
        raise CheckpointError(f"{name}: not found in {cache} and HF_HUB_OFFLINE is set, so it cannot be "
                              "downloaded; point HF_HUB_CACHE at a cache that holds it, or pass a local "
                              "folder") from None
    except (HfHubHTTPError, OSError, ValueError) as e:
        raise CheckpointError(f"{name}: cannot fetch it from the Hub ({type(e).__name__}: {e})") from None


def read_tensors(folder: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint folder, from `model.safetensors` or from the shards its index lists."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (folder / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        pickles = [p.name for p in folder.glob("*.bin")]
        hint = (f" It has {', '.join(pickles)}, a pickle that minift will not load (unpickling runs code); "
                "convert it with transformers' save_pretrained(safe_serialization=True).") if pickles else ""
        raise CheckpointError(f"{folder}: no model.safetensors (nor model.safetensors.index.json).{hint}")
    tensors = {}
    for file in files:
        try:
            tensors.update(load_file(folder / file))
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{folder / file}: cannot read it as safetensors ({e}); the file may be "
                                  "truncated or corrupt: download or save it again") from None
    return tensors


def _rule(src: str, dst: str) -> tuple[re.Pattern, str]:
    """`("a.{i}.b", "x.{i}.y")` -> a regex matching `a.<digits>.b.weight|bias`, and the template to fill."""
    pattern = r"(?P<i>\d+)".join(re.escape(part) for part in src.split("{i}"))
    return re.compile(rf"^{pattern}\.(?P<param>weight|bias)$"), dst


def rename(name: str, family: str, reverse: bool = False) -> str | None:
    """Map one tensor name between checkpoint and minift (`reverse=True`: minift -> checkpoint); None if unknown."""
    for src, dst in NAME_MAPS[family]:
        pattern, template = _rule(dst, src) if reverse else _rule(src, dst)
        match = pattern.match(name)
        if match:
            return template.replace("{i}", match.groupdict().get("i", "")) + "." + match["param"]
    return None


def to_minift_names(tensors: dict, family: str) -> tuple[dict, list[str], list[str]]:
    """Rename checkpoint tensors to minift module names.

    Returns (renamed tensors, task-head tensors under their checkpoint names, names nothing maps).
    Legacy LayerNorm names (`gamma`, `beta`) are read as `weight`, `bias`.
    """
    renamed, heads, unknown = {}, {}, []
    prefix = MODEL_PREFIX[family]
    for name, tensor in tensors.items():
        key = name[len(prefix):] if name.startswith(prefix) else name
        if key.startswith(HEAD_PREFIXES):
            heads[name] = tensor
            continue
        if key in IGNORED:
            continue
        key = re.sub(r"\.gamma$", ".weight", re.sub(r"\.beta$", ".bias", key))
        ours = rename(key, family)
        if ours is None:
            unknown.append(name)
        else:
            renamed[ours] = tensor
    return renamed, heads, unknown


def check_fit(model_shapes: dict[str, tuple], tensors: dict, unknown: list[str], source: str) -> None:
    """Raise one error listing every missing, unexpected and wrongly-shaped tensor."""
    problems = [f"missing from the checkpoint: {n}" for n in model_shapes if n not in tensors]
    problems += [f"unexpected in the checkpoint: {n}" for n in unknown]
    for n, t in tensors.items():
        if n not in model_shapes:
            problems.append(f"unexpected in the checkpoint: {n}")
        elif tuple(t.shape) != tuple(model_shapes[n]):
            problems.append(f"{n}: checkpoint {tuple(t.shape)}, model {tuple(model_shapes[n])}")
    if problems:
        raise CheckpointError(f"{source}: the checkpoint does not fit the model built from its config.json "
                              f"({len(problems)} problems):\n  " + "\n  ".join(problems))


def write_tensors(folder: str | Path, tensors: dict[str, torch.Tensor], config: dict) -> None:
    """Write `model.safetensors` and `config.json`, each atomically (minift/atomic.py)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic.write_file(folder / "model.safetensors", lambda tmp: save_file(weights, tmp, metadata={"format": "pt"}))
    atomic.write_json(folder / "config.json", config, sort_keys=True)

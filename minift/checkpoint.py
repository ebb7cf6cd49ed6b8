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
import math
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


# Bytes per element of each safetensors dtype (the format's names; https://github.com/huggingface/safetensors).
DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
MAX_HEADER = 100_000_000  # bytes; the safetensors library's own limit


def _header(path: Path, size: int) -> tuple[dict, int]:
    """The JSON header of a safetensors file and where its data starts; the header's length is bounded before a
    byte of it is read, so a file that claims a huge header costs nothing."""
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{path}: {size} bytes, too short for a safetensors file (it starts with an 8-byte "
                                  "header length); the file is truncated: download or save it again")
        n = int.from_bytes(prefix, "little")
        if n > min(MAX_HEADER, size - 8):
            raise CheckpointError(f"{path}: claims a {n:,}-byte header but the file has {size:,} bytes (the limit is "
                                  f"{MAX_HEADER:,}); it is truncated or not safetensors: download or save it again")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{path}: its header is not valid JSON ({type(e).__name__}); the file is corrupt or "
                              "not safetensors: download or save it again") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: its header is not a JSON object; the file is not safetensors")
    return header, 8 + n


def check_safetensors(path: str | Path) -> None:
    """Refuse, before anything is loaded, a safetensors file whose header lies: a header length beyond the file
    (or over 100 MB), a dtype the format does not define, a tensor whose shape · bytes per element differs from
    its byte range, or ranges that overlap, leave gaps or run past the end of the data (as a truncated file's do).
    Every problem is a CheckpointError naming the file and the tensor."""
    path = Path(path)
    size = path.stat().st_size
    header, start = _header(path, size)
    ranges = []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise CheckpointError(f"{path}: __metadata__ must map names to strings")
            continue
        where = f"{path}: tensor {name!r}"
        if not isinstance(info, dict) or info.get("dtype") not in DTYPE_BYTES:
            dtype = info.get("dtype") if isinstance(info, dict) else info
            raise CheckpointError(f"{where}: dtype {dtype!r} is not one minift reads ({', '.join(DTYPE_BYTES)})")
        shape, offsets = info.get("shape"), info.get("data_offsets")
        if not (isinstance(shape, list) and all(type(d) is int and d >= 0 for d in shape)):
            raise CheckpointError(f"{where}: shape {shape!r} is not a list of sizes")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)
                and 0 <= offsets[0] <= offsets[1]):
            raise CheckpointError(f"{where}: data_offsets {offsets!r} is not a [begin, end] byte range")
        if math.prod(shape) * DTYPE_BYTES[info["dtype"]] != offsets[1] - offsets[0]:
            raise CheckpointError(f"{where}: shape {shape} of {info['dtype']} needs "
                                  f"{math.prod(shape) * DTYPE_BYTES[info['dtype']]:,} bytes but its range holds "
                                  f"{offsets[1] - offsets[0]:,}; the file is corrupt: download or save it again")
        ranges.append((offsets[0], offsets[1], name))
    end = 0
    for begin, stop, name in sorted(ranges):
        if begin != end:
            raise CheckpointError(f"{path}: tensor {name!r} starts at byte {begin:,} of the data, not at {end:,} "
                                  "(ranges overlap or leave a gap); the file is corrupt: download or save it again")
        end = stop
    if end != size - start:
        raise CheckpointError(f"{path}: the header describes {end:,} bytes of tensors but the file holds "
                              f"{size - start:,}; the file is truncated or corrupt: download or save it again")


def _shards(folder: Path, index: Path) -> list[str]:
    """The shard files `model.safetensors.index.json` lists: plain file names within the folder."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, AttributeError) as e:
        raise CheckpointError(f"{index}: not a JSON object ({type(e).__name__}); download or save it again") from None
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index}: 'weight_map' should map tensor names to shard files")
    files = sorted(set(map(str, weight_map.values())))
    for name in files:
        if Path(name).name != name or name in ("", ".", ".."):
            raise CheckpointError(f"{index}: shard {name!r} is not a file name in {folder}; minift reads shards "
                                  "beside the index only")
    return files


def read_tensors(folder: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint folder, from `model.safetensors` or from the shards its index lists; each file
    passes `check_safetensors` before it is loaded."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        files = _shards(folder, index)
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
            check_safetensors(folder / file)
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

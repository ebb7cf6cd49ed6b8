"""A checkpoint folder's tokenizer files -> a `tokenizers` pipeline, as transformers' fast tokenizers build it.

A folder holds one of three things, tried in this order (`load_folder`):

    tokenizer.json              the whole pipeline, saved by `tokenizers` or transformers: loaded as it is
    vocab.txt                   BERT's WordPiece vocabulary: the pipeline is built here (`_wordpiece`)
    vocab.json + merges.txt     RoBERTa's byte-level BPE: the pipeline is built here (`_byte_level_bpe`)

`tokenizer_config.json` (and `special_tokens_map.json`) name the special tokens, `do_lower_case` and
`model_max_length`; each is checked here, with the file and field named, before anything is encoded. What the
pipeline does with a text is minift/tokenizer.py's story.
"""
from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer as Backend
from tokenizers import decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE, WordPiece

from minift.checkpoint import CheckpointError
from minift.config import DEFAULT_PAD_ID, position_offset

# Special tokens of each model kind, used where tokenizer_config.json does not name them.
DEFAULT_SPECIALS = {
    "WordPiece": {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "mask_token": "[MASK]",
                  "unk_token": "[UNK]"},
    "BPE": {"cls_token": "<s>", "sep_token": "</s>", "pad_token": "<pad>", "mask_token": "<mask>",
            "unk_token": "<unk>"},
}
# transformers writes model_max_length = int(1e30) when a tokenizer has no limit; anything this big means "unknown".
NO_LIMIT = 10**6


def _read_json(path: Path) -> dict:
    """A JSON file of the folder as a dict; {} where the folder does not have it."""
    if not path.is_file():
        return {}
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(d, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(d).__name__}")
    return d


FLAGS = ("do_lower_case", "strip_accents", "tokenize_chinese_chars", "add_prefix_space", "trim_offsets")


def _check_config(config: dict, folder: Path) -> None:
    """Refuse tokenizer settings of the wrong type, naming the field: a special token is a string (or a dict with
    its "content"), a switch true / false, model_max_length a whole number."""
    where = f"{folder}: tokenizer_config.json / special_tokens_map.json"
    for name, value in config.items():
        token = value.get("content") if isinstance(value, dict) else value
        if name.endswith("_token") and value and not isinstance(token, str):
            raise CheckpointError(f"{where}: {name} is {value!r}; a special token is a string such as \"[CLS]\"")
        if name in FLAGS and value is not None and not isinstance(value, bool):
            raise CheckpointError(f"{where}: {name} is {value!r}; it must be true, false or null")
    limit = config.get("model_max_length")
    if limit is not None and not (isinstance(limit, (int, float)) and not isinstance(limit, bool) and limit >= 1):
        raise CheckpointError(f"{where}: model_max_length is {limit!r}; it must be a number of tokens")


def _check_vocab_fits(backend: Backend, folder: Path) -> None:
    """Every token id must index a row of the model's word-embedding matrix (config.json's vocab_size, where the
    folder has one): a tokenizer from another model would fail only mid-run, on the first rare token."""
    rows = _read_json(folder / "config.json").get("vocab_size")
    ids = max(backend.get_vocab(with_added_tokens=True).values(), default=-1) + 1
    if type(rows) is int and ids > rows:
        raise CheckpointError(f"{folder}: the tokenizer has token ids up to {ids - 1}, but the model's embedding "
                              f"matrix has {rows} rows (vocab_size in config.json): the tokenizer files and the "
                              "weights come from different models; put the tokenizer files of the model the weights "
                              "belong to in the folder")


def _specials(config: dict, kind: str) -> dict[str, str]:
    """The special tokens named in the config, else the defaults of the kind; a token may be written as a string
    or as a dict with its "content"."""
    specials = {**DEFAULT_SPECIALS.get(kind, {}), **{k: v for k, v in config.items() if k.endswith("_token") and v}}
    return {name: token["content"] if isinstance(token, dict) else token for name, token in specials.items()}


def _require_specials(backend: Backend, specials: dict[str, str], source: Path) -> None:
    """Refuse a vocabulary without the special tokens that every input needs."""
    missing = [f"{name} {specials.get(name)!r}" for name in ("cls_token", "sep_token", "pad_token")
               if backend.token_to_id(specials.get(name) or "") is None]
    if missing:
        raise CheckpointError(f"{source}: the vocabulary lacks {', '.join(missing)}; minift needs them to build "
                              "and pad inputs (name the right tokens in tokenizer_config.json)")


def _add_specials(backend: Backend, specials: dict[str, str], source: Path) -> None:
    """Mark the special tokens the vocabulary has, so that "[MASK]" in a text stays one token and decode can
    skip them (tokens it lacks are not added: their ids would fall outside the model's embedding table)."""
    _require_specials(backend, specials, source)
    backend.add_special_tokens([token for token in dict.fromkeys(specials.values())
                                if backend.token_to_id(token) is not None])


def _wordpiece(folder: Path, config: dict, specials: dict[str, str]) -> Backend:
    """BERT's pipeline built from vocab.txt, as transformers' BertTokenizer builds it."""
    backend = Backend(WordPiece.from_file(str(folder / "vocab.txt"), unk_token=specials["unk_token"]))
    backend.normalizer = normalizers.BertNormalizer(
        clean_text=True, lowercase=config.get("do_lower_case", True),
        strip_accents=config.get("strip_accents"),  # None: strip them when lower-casing, as the original BERT
        handle_chinese_chars=config.get("tokenize_chinese_chars", True))  # a space around each CJK character
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()  # split on whitespace and punctuation
    backend.decoder = decoders.WordPiece(prefix="##")
    _add_specials(backend, specials, folder / "vocab.txt")
    cls, sep = specials["cls_token"], specials["sep_token"]
    backend.post_processor = processors.TemplateProcessing(
        single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
        special_tokens=[(cls, backend.token_to_id(cls)), (sep, backend.token_to_id(sep))])
    return backend


def _byte_level_bpe(folder: Path, config: dict, specials: dict[str, str]) -> Backend:
    """RoBERTa's pipeline built from vocab.json + merges.txt, as transformers' RobertaTokenizer builds it."""
    backend = Backend(BPE.from_file(str(folder / "vocab.json"), str(folder / "merges.txt")))
    # Spaces are part of tokens ("Ġworld"); without a prefix space the first word is spelled as if it began a text.
    prefix_space = config.get("add_prefix_space", False)
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix_space)
    backend.decoder = decoders.ByteLevel()
    _add_specials(backend, specials, folder / "vocab.json")
    cls, sep = specials["cls_token"], specials["sep_token"]
    backend.post_processor = processors.RobertaProcessing(  # trim_offsets: an offset leaves out the leading space
        (sep, backend.token_to_id(sep)), (cls, backend.token_to_id(cls)),
        trim_offsets=config.get("trim_offsets", True), add_prefix_space=prefix_space)
    return backend


def _model_max_length(config: dict, folder: Path) -> int:
    """The longest input the model takes: tokenizer_config.json's, or else config.json's position count."""
    value = config.get("model_max_length")
    if value is not None and value < NO_LIMIT:
        return int(value)
    model = _read_json(folder / "config.json")
    family = model.get("model_type", "bert")
    pad_id = model.get("pad_token_id", DEFAULT_PAD_ID.get(family, 0)) or 0
    return model.get("max_position_embeddings", 512) - position_offset(family, pad_id)  # RoBERTa: 514 - 2


def load_folder(path: str | Path) -> tuple[Backend, dict[str, str], int, dict]:
    """A checkpoint folder's tokenizer: tokenizer.json as it is, or the pipeline built from vocab.txt or from
    vocab.json + merges.txt. Returns (backend, special tokens, model_max_length, the tokenizer config as read)."""
    folder = Path(path)
    config = {**_read_json(folder / "special_tokens_map.json"), **_read_json(folder / "tokenizer_config.json")}
    _check_config(config, folder)
    if (folder / "tokenizer.json").is_file():
        try:
            backend = Backend.from_file(str(folder / "tokenizer.json"))
        except Exception as e:  # tokenizers raises a bare Exception for a file it cannot parse
            raise CheckpointError(f"{folder / 'tokenizer.json'}: cannot read it ({e})") from None
        specials = _specials(config, type(backend.model).__name__)
        _require_specials(backend, specials, folder / "tokenizer.json")
    elif (folder / "vocab.txt").is_file():
        specials = _specials(config, "WordPiece")
        backend = _wordpiece(folder, config, specials)
    elif (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file():
        specials = _specials(config, "BPE")
        backend = _byte_level_bpe(folder, config, specials)
    else:
        raise CheckpointError(f"{folder}: no tokenizer files; looked for tokenizer.json, vocab.txt (WordPiece) "
                              "and vocab.json + merges.txt (byte-level BPE)")
    _check_vocab_fits(backend, folder)
    return backend, specials, _model_max_length(config, folder), config

"""The tokenizer: text -> the `input_ids`, `attention_mask` and `token_type_ids` the encoder reads.

A thin wrapper over Hugging Face's `tokenizers` library (the Rust code behind transformers' fast tokenizers), made
to give the same ids, offsets and windows as `transformers.AutoTokenizer` (BertTokenizerFast, RobertaTokenizerFast).
A checkpoint folder holds one of three things, tried in this order:

    tokenizer.json              the whole pipeline, saved by `tokenizers` or transformers: loaded as it is
    vocab.txt                   BERT's WordPiece vocabulary: the pipeline is built here (`_wordpiece`)
    vocab.json + merges.txt     RoBERTa's byte-level BPE: the pipeline is built here (`_byte_level_bpe`)

`tokenizer_config.json` (and `special_tokens_map.json`) name the special tokens, `do_lower_case` and
`model_max_length`. The pipeline, for one example or a pair (A, B):

    text -> normalize (lower-case, strip accents) -> pre-tokenize (split on spaces and punctuation)
         -> model (WordPiece / BPE pieces) -> truncate (to max_length, leaving room for the special tokens)
         -> post-process (BERT:    [CLS] A [SEP] B [SEP], type ids 0..0 1..1
                          RoBERTa: <s> A </s></s> B </s>, type ids all 0)  -> pad to the longest in the batch

    tok = Tokenizer.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    batch = tok(["Hello world!", "Hi"])   # {"input_ids": LongTensor (2, 5), "attention_mask", "token_type_ids"}

The `tokenizers.Tokenizer` keeps truncation and padding as settings (a tokenizer.json may even carry some), so every
call sets them afresh before encoding; padding is done here, on the list of encodings, after long examples have been
split into windows.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import Tokenizer as Backend
from tokenizers import decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE, WordPiece

from minift import atomic
from minift.checkpoint import CheckpointError, resolve
from minift.config import DEFAULT_PAD_ID, position_offset

# Special tokens of each model kind, used where tokenizer_config.json does not name them.
DEFAULT_SPECIALS = {
    "WordPiece": {"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "mask_token": "[MASK]",
                  "unk_token": "[UNK]"},
    "BPE": {"cls_token": "<s>", "sep_token": "</s>", "pad_token": "<pad>", "mask_token": "<mask>",
            "unk_token": "<unk>"},
}
# The transformers class that reads each kind back from a saved folder.
TOKENIZER_CLASS = {"WordPiece": "BertTokenizer", "BPE": "RobertaTokenizer"}
# transformers writes model_max_length = int(1e30) when a tokenizer has no limit; anything this big means "unknown".
NO_LIMIT = 10**6
TRUNCATIONS = ("longest_first", "only_first", "only_second")


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


def _as_batch(texts, words: bool) -> list:
    """One example or a list of them -> a list of examples (an example is a str, or with `words` a list of str)."""
    single = isinstance(texts, str) or (words and len(texts) > 0 and isinstance(texts[0], str))
    return [texts] if single else list(texts)


def _examples(texts, text_pairs, words: bool) -> list:
    """The B examples of a call: texts, or (text, pair) tuples; refuses an empty batch or unmatched pairs."""
    batch = _as_batch(texts, words)
    if text_pairs is not None:
        pairs = _as_batch(text_pairs, words)
        if len(pairs) != len(batch):
            raise ValueError(f"{len(batch)} texts but {len(pairs)} text_pairs: give one pair per text")
        batch = list(zip(batch, pairs))
    if not batch:
        raise ValueError("nothing to tokenize: texts is empty")
    return batch


def _windows(encodings, overflowing: bool) -> tuple[list, list[int]]:
    """One row per example, or with `overflowing` one per window (the first, then the overflowing ones); and
    for each row the index of its example."""
    rows, sample = [], []
    for i, encoding in enumerate(encodings):
        windows = [encoding, *encoding.overflowing] if overflowing else [encoding]
        rows += windows
        sample += [i] * len(windows)
    return rows, sample


class Tokenizer:
    """Encodes texts, text pairs or pre-split words into padded batches; see `__call__`."""

    def __init__(self, backend: Backend, specials: dict[str, str], model_max_length: int, config: dict):
        self._backend = backend  # one tokenizers.Tokenizer, reused by every call
        self.special_tokens = specials  # {"cls_token": "[CLS]", "sep_token": ..., "pad_token", "mask_token", ...}
        self.model_max_length = model_max_length
        self.config = config  # tokenizer_config.json as read; `save` writes it back, updated
        self.kind = type(backend.model).__name__  # "WordPiece", "BPE", ...

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, revision: str | None = None) -> Tokenizer:
        """Load the tokenizer of a local folder or a Hub id (downloaded, or read from the cache when offline)."""
        return cls.from_folder(resolve(name_or_path, revision))

    @classmethod
    def from_folder(cls, path: str | Path) -> Tokenizer:
        """Load tokenizer.json, or build the pipeline from vocab.txt or from vocab.json + merges.txt."""
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
        return cls(backend, specials, _model_max_length(config, folder), config)

    def save(self, folder: str | Path) -> None:
        """Write tokenizer.json and tokenizer_config.json, which minift and transformers both load back."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self._backend.no_truncation()  # the settings of the last call are not part of the tokenizer
        self._backend.no_padding()
        atomic.write_file(folder / "tokenizer.json", lambda tmp: self._backend.save(str(tmp)))
        config = {k: v for k, v in self.config.items() if k not in ("name_or_path", "tokenizer_file")}
        config.update(self.special_tokens, model_max_length=self.model_max_length)
        config.setdefault("tokenizer_class", TOKENIZER_CLASS.get(self.kind, "PreTrainedTokenizerFast"))
        if isinstance(self._backend.normalizer, normalizers.BertNormalizer):
            config["do_lower_case"] = self._backend.normalizer.lowercase
        atomic.write_json(folder / "tokenizer_config.json", config, sort_keys=True)

    # The special tokens and their ids.
    cls_token = property(lambda self: self.special_tokens["cls_token"])
    sep_token = property(lambda self: self.special_tokens["sep_token"])
    pad_token = property(lambda self: self.special_tokens["pad_token"])
    mask_token = property(lambda self: self.special_tokens.get("mask_token"))
    unk_token = property(lambda self: self.special_tokens.get("unk_token"))
    cls_id = property(lambda self: self.token_to_id(self.cls_token))
    sep_id = property(lambda self: self.token_to_id(self.sep_token))
    pad_id = property(lambda self: self.token_to_id(self.pad_token))
    mask_id = property(lambda self: self.token_to_id(self.mask_token))  # None where the vocabulary has no mask
    unk_id = property(lambda self: self.token_to_id(self.unk_token))

    @property
    def vocab_size(self) -> int:
        """The number of ids, special and added tokens included: the rows the word-embedding table needs."""
        return self._backend.get_vocab_size(with_added_tokens=True)

    def token_to_id(self, token: str | None) -> int | None:
        """The id of one token, or None if the vocabulary does not have it."""
        return None if token is None else self._backend.token_to_id(token)

    def convert_ids_to_tokens(self, ids) -> list[str]:
        """[101, 7592, 102] -> ["[CLS]", "hello", "[SEP]"]; takes a list or a 1-D tensor."""
        return [self._backend.id_to_token(i) for i in torch.as_tensor(ids).tolist()]

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        """Ids back to text: word pieces joined, "##" and byte-level marks undone; takes a list or a 1-D tensor."""
        return self._backend.decode(torch.as_tensor(ids).tolist(), skip_special_tokens=skip_special_tokens)

    def __call__(self, texts, text_pairs=None, max_length: int | None = None,
                 truncation: str | None = "longest_first", return_offsets: bool = False, padding: bool = True,
                 return_tensors: str | None = "pt", stride: int = 0, return_overflowing: bool = False,
                 is_split_into_words: bool = False) -> dict:
        """Encode a batch; B examples (or, with `return_overflowing`, N windows) of T tokens each.

        texts, text_pairs: a str or a list of B str (with `is_split_into_words`: a list of words, or B such lists);
            pairs give [CLS] A [SEP] B [SEP].
        max_length: at most this many tokens per row, special tokens included (default `model_max_length`).
        truncation: which part to cut: "longest_first" (a token at a time from the longer of the pair),
            "only_first", "only_second" (QA: keep the question, cut the context), or None (cut nothing).
        return_overflowing, stride: keep what truncation cuts, as more windows of the same example, each repeating
            the last `stride` tokens of the one before (QA's doc_stride; NER's long sentences).
        Returns {"input_ids", "attention_mask", "token_type_ids"}: LongTensors (N, T) with return_tensors="pt",
        lists with None; padded on the right to the longest row when `padding`. With return_offsets also
        "offsets" (per row, a (start, end) character span per token, (0, 0) for special and pad tokens; with
        `is_split_into_words` spans are within each word) and "sequence_ids" (per row, 0 or 1 for the text a token
        comes from, None for special and pad tokens); with `is_split_into_words` "word_ids" (the word each token
        comes from, None for special and pad tokens); with return_overflowing "overflow_to_sample" (N,):
        the example each window comes from.
        """
        if truncation not in (*TRUNCATIONS, None):
            raise ValueError(f"truncation={truncation!r}: expected one of {TRUNCATIONS} or None")
        if return_tensors not in ("pt", None):
            raise ValueError(f"return_tensors={return_tensors!r}: expected 'pt' (torch tensors) or None (lists)")
        batch = _examples(texts, text_pairs, is_split_into_words)  # B examples, or B (A, B) pairs
        max_length = self.model_max_length if max_length is None else max_length
        self._set_truncation(truncation, max_length, stride, pair=text_pairs is not None)
        try:
            encodings = self._backend.encode_batch(batch, is_pretokenized=is_split_into_words)
        except BaseException as e:  # a cut tokenizers cannot make is a bare Exception, or a Rust panic (stride)
            if "truncat" not in str(e).lower() and "stride" not in str(e):
                raise
            raise ValueError(f"cannot cut an example to max_length={max_length} with truncation={truncation!r} "
                             f"and stride={stride}: the part that may not be cut leaves too little room "
                             f"({str(e).splitlines()[0]}); raise max_length or lower stride") from None

        rows, sample = _windows(encodings, return_overflowing)
        if padding:
            longest = max(len(row) for row in rows)
            for row in rows:
                row.pad(longest, pad_id=self.pad_id, pad_token=self.pad_token)  # ids, mask, offsets, word ids...
        out = {"input_ids": [row.ids for row in rows],
               "attention_mask": [row.attention_mask for row in rows],
               "token_type_ids": [row.type_ids for row in rows]}
        if return_tensors == "pt":
            if len({len(ids) for ids in out["input_ids"]}) > 1:
                raise ValueError("rows of different lengths cannot form a tensor: pass padding=True, "
                                 "or return_tensors=None for lists")
            out = {name: torch.tensor(value, dtype=torch.long) for name, value in out.items()}  # (N, T)
        if return_offsets:
            out["offsets"] = [row.offsets for row in rows]
            out["sequence_ids"] = [row.sequence_ids for row in rows]
        if is_split_into_words:
            out["word_ids"] = [row.word_ids for row in rows]
        if return_overflowing:
            out["overflow_to_sample"] = torch.tensor(sample, dtype=torch.long) if return_tensors == "pt" else sample
        return out

    def _set_truncation(self, truncation: str | None, max_length: int, stride: int, pair: bool) -> None:
        """Set this call's truncation on the shared backend, and drop any padding a tokenizer.json carried."""
        self._backend.no_padding()  # padding is done in __call__, after the windows are laid out
        if truncation is None:
            self._backend.no_truncation()
            return
        room = max_length - self._backend.num_special_tokens_to_add(pair)  # tokens left for the text(s)
        if room < 1:
            raise ValueError(f"max_length={max_length} leaves no room for text beside the "
                             f"{max_length - room} special tokens")
        if not 0 <= stride < room:
            raise ValueError(f"stride={stride} must be at least 0 and less than the {room} tokens of text that "
                             f"max_length={max_length} leaves")
        self._backend.enable_truncation(max_length, stride=stride, strategy=truncation)

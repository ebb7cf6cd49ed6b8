"""The tokenizer: text -> the `input_ids`, `attention_mask` and `token_type_ids` the encoder reads.

A thin wrapper over Hugging Face's `tokenizers` library (the Rust code behind transformers' fast tokenizers), made
to give the same ids, offsets and windows as `transformers.AutoTokenizer` (BertTokenizerFast, RobertaTokenizerFast).
A checkpoint folder's tokenizer.json, vocab.txt (WordPiece) or vocab.json + merges.txt (byte-level BPE) becomes
that pipeline in minift/tokenizer_files.py. The pipeline, for one example or a pair (A, B):

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

from pathlib import Path

import torch
from tokenizers import Tokenizer as Backend
from tokenizers import normalizers

from minift import atomic
from minift.checkpoint import resolve
from minift.tokenizer_files import load_folder

# The transformers class that reads each kind back from a saved folder.
TOKENIZER_CLASS = {"WordPiece": "BertTokenizer", "BPE": "RobertaTokenizer"}
TRUNCATIONS = ("longest_first", "only_first", "only_second")


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
        """Load tokenizer.json, or build the pipeline from vocab.txt or from vocab.json + merges.txt
        (minift/tokenizer_files.py)."""
        return cls(*load_folder(path))

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

"""Token classification (named-entity recognition): one BIO tag per word, as Devlin et al. (2019, §4.3) tag
CoNLL-2003 and Hugging Face's `BertForTokenClassification` does:

    x  = [CLS] w1-pieces w2-pieces ... [SEP]                    token ids (B, T), words pre-split
    h  = Encoder(x)                                              (B, T, H)
    z  = W · dropout(h) + b                                      (B, T, C), C tags
    loss = Σ cross-entropy(z_t, y_t) over labelled tokens        count = number of labelled tokens

Label alignment: a word's first word piece carries its tag, the others get -100 (ignored by the loss);
`label_all_subtokens` gives the others the I- form of the tag instead ("B-LOC" -> "I-LOC").

Long sentences: a sentence of more than `max_length` tokens is cut into windows by the tokenizer, each repeating
the last `stride` tokens of the one before, so window k starts at text token k·(room - stride) (room = max_length
minus the special tokens). Decoding takes each word's tag from the window where its first piece has the most
context, min(tokens to its left, tokens to its right) within the window (Devlin et al.'s rule for SQuAD windows);
on a tie, the first such window. A word that yields no token at all (say, a lone control character) is tagged O.

Metrics: entity-level micro precision / recall / F1 on the original words (seqeval's default mode), main metric
`f1`, and the same per entity type under "per_type". A saved model is a Hugging Face `*ForTokenClassification`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from minift import losses
from minift.batching import padded_batches
from minift.data import DataError, LabelMap, decode_error, text_encoding
from minift.heads import ClassifierHead
from minift.metrics import get_entities, tagging_report, tagging_summary
from minift.tasks import Recipe, Task, label_config

TAG = re.compile(r"O|[BIES]-\S+")
MODEL_KEYS = ("input_ids", "token_type_ids", "labels")  # what a batch holds; the rest of a feature is for decoding


@dataclass(frozen=True)
class Sentence:
    """Words, their tags (None when unlabelled), the file line of the first word (for error messages), and for a
    raw text (`predict --text`) the text and each word's (start, end) characters in it."""

    words: list
    tags: list | None = None
    line: int | None = None
    text: str | None = None
    spans: list | None = None


def read_conll(path, need_labels: bool = True, encoding: str = "utf-8") -> list[Sentence]:
    """CoNLL-style file: one `token<TAB or spaces>...<TAB>tag` per line (the tag is the last column), a blank line
    between sentences, `-DOCSTART-` lines skipped. Without `need_labels` a line may hold the token alone. Within a
    sentence every line has as many columns as its first (a token holding a space would shift its tag); an empty
    file, a line of another shape and a file not in `encoding` are DataErrors naming the file and line."""
    sentences, words, tags, first, width = [], [], [], None, None

    def close():
        nonlocal words, tags, width
        width = None
        if words:
            sentences.append(Sentence(words, tags if need_labels else None, first))
        words, tags = [], []

    try:
        with open(path, encoding=text_encoding(encoding)) as f:
            for n, raw in enumerate(f, 1):
                line = raw.rstrip("\r\n").strip(" \t")
                if not line or line.startswith("-DOCSTART-"):
                    close()
                    continue
                fields = re.split(r"[ \t]+", line)
                if need_labels and len(fields) < 2:
                    raise DataError(f"{path}, line {n}: expected `token<TAB>tag`, got {raw.rstrip()!r}; "
                                    "separate the token and its tag with a tab or a space")
                if need_labels and not TAG.fullmatch(fields[-1]):
                    raise DataError(f"{path}, line {n}: the tag {fields[-1]!r} is not a BIO tag (O, B-TYPE, "
                                    "I-TYPE); the tag must be the last column")
                width = width or (len(fields), n)
                if need_labels and len(fields) != width[0]:
                    raise DataError(f"{path}, line {n}: {len(fields)} columns where line {width[1]} has {width[0]}; "
                                    "every line is `token<TAB>...<TAB>tag` (a token may not hold a space)")
                first = n if not words else first
                words.append(fields[0])
                tags.append(fields[-1])
    except UnicodeError:
        raise decode_error(path, encoding) from None
    close()
    if not sentences:
        raise DataError(f"{path}: no sentences in the file (one `token<TAB>tag` per line, a blank line between "
                        "sentences)")
    return sentences


def split_words(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Pre-split a raw text on whitespace and punctuation: (words, their (start, end) character spans)."""
    spans = [m.span() for m in re.finditer(r"\w+|[^\w\s]", text)]
    return [text[s:e] for s, e in spans], spans


def inside_tag(tag: str) -> str:
    """The tag a word's later pieces get with `label_all_subtokens`: "B-LOC" -> "I-LOC"; others unchanged."""
    return "I" + tag[1:] if tag.startswith("B-") else tag


class TaggerModel(nn.Module):
    """Encoder + a linear layer on every token: token ids (B, T) -> tag logits (B, T, C)."""

    def __init__(self, encoder, num_labels: int):
        super().__init__()
        self.encoder = encoder
        self.head = ClassifierHead(encoder.cfg.hidden_size, num_labels, dropout=encoder.cfg.hidden_dropout)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        return self.head(self.encoder(input_ids, attention_mask, token_type_ids))  # (B, T, C)


class TaggingTask(Task):
    """Everything the training loop needs to know about tagging words: data, windows, model, loss, metrics."""

    main_metric = "f1"
    # WNUT-17's best of 5 and 10 epochs at lr 1e-4 (benchmarks/results/gpu/ner_qa_wnut17_10ep.json, ner_qa.json):
    # entity F1 0.571 on emerging.dev.conll, where the generic 5e-5 for 3 epochs leaves rare tags unlearnt.
    recipe = Recipe(lr=1e-4, epochs=5, batch_size=16)
    architecture_head = "ForTokenClassification"
    peft_task_type, adapter_heads = "TOKEN_CLS", {"head.out": ClassifierHead.hf_name}  # --save-adapter

    def __init__(self, kind: str, tokenizer, max_length: int = 128, labels: LabelMap | None = None,
                 stride: int | None = None, label_all_subtokens: bool = False, encoding: str = "utf-8"):
        super().__init__(tokenizer)
        self.kind, self.max_length, self.labels = kind, max_length, labels
        self.stride = max_length // 4 if stride is None else stride
        self.label_all_subtokens, self.encoding = label_all_subtokens, encoding

    @classmethod
    def from_args(cls, args, tokenizer) -> "TaggingTask":
        return cls(args.task, tokenizer, args.max_length, stride=args.doc_stride,
                   label_all_subtokens=args.label_all_subtokens, encoding=args.encoding)

    # ---- data ----
    def read(self, path, need_labels: bool = True, training: bool = False) -> list[Sentence]:
        return read_conll(path, need_labels, self.encoding)

    def example(self, text: str, pair=None) -> Sentence:
        """A raw text to tag (`predict --text`), split into words."""
        words, spans = split_words(text)
        return Sentence(words, text=text, spans=spans)

    def fit_labels(self, sentences) -> None:
        """The tags of the training file, sorted; with `label_all_subtokens` also the I- form of every B- tag."""
        if self.labels is None:
            tags = {t for s in sentences for t in s.tags}
            if self.label_all_subtokens:
                tags |= {inside_tag(t) for t in tags}
            self.labels = LabelMap(sorted(tags))

    def featurize(self, sentences, source: str = "data", with_labels: bool = True) -> list[dict]:
        """Each sentence -> one or more windows: {"input_ids", "token_type_ids", "labels", and for decoding
        "sentence" (its index), "example" (the Sentence), "words" (per token its word or None), "positions" (per
        token its place among the whole sentence's tokens, or None), "first" (per token: is it its word's first
        piece)}."""
        if not sentences:
            return []
        enc = self.tokenizer([s.words for s in sentences], max_length=self.max_length, truncation="only_first",
                             stride=self.stride, return_overflowing=True, padding=False, return_tensors=None,
                             is_split_into_words=True)
        windows, start, previous = [], 0, None
        for ids, types, word_ids, i in zip(enc["input_ids"], enc["token_type_ids"], enc["word_ids"],
                                           enc["overflow_to_sample"]):
            start = 0 if i != previous else start
            text_at = [t for t, w in enumerate(word_ids) if w is not None]
            positions = [None] * len(ids)
            for k, t in enumerate(text_at):
                positions[t] = start + k
            windows.append({"input_ids": ids, "token_type_ids": types, "sentence": i, "example": sentences[i],
                            "words": word_ids,
                            "positions": positions})
            start, previous = start + len(text_at) - self.stride, i
        first_piece = {}  # (sentence, word) -> position of the word's first token
        for w in windows:
            for word, pos in zip(w["words"], w["positions"]):
                if word is not None:
                    key = (w["sentence"], word)
                    first_piece[key] = min(pos, first_piece.get(key, pos))
        for w in windows:
            w["first"] = [word is not None and first_piece[(w["sentence"], word)] == pos
                          for word, pos in zip(w["words"], w["positions"])]
            if with_labels:
                w["labels"] = self._align(w, sentences[w["sentence"]])
        return windows

    def _align(self, window: dict, sentence: Sentence) -> list[int]:
        """Per token: the word's tag id on its first piece, -100 (or the I- tag) on the rest and on specials.
        A tag the training file never had (a rare type in a validation file) is -100 too: no loss is learned
        from it, but evaluate still scores the word's gold tag, so such entities count as missed."""
        out = []
        for word, first in zip(window["words"], window["first"]):
            if word is None or not (first or self.label_all_subtokens):
                out.append(-100)
                continue
            tag = sentence.tags[word] if first else inside_tag(sentence.tags[word])
            out.append(self.labels.ids.get(tag, -100))
        return out

    def batches(self, features, batch_size: int, seed: int = 0, epoch: int = 0, shuffle: bool = False,
                bucket: bool = False):
        """Yield padded batches of windows: (B, T) ids, segments, mask and labels (-100 on padding)."""
        yield from padded_batches(features, batch_size, self.tokenizer.pad_id, seed, epoch, shuffle, bucket,
                                  keys=MODEL_KEYS)

    # ---- model ----
    def build_model(self, encoder) -> TaggerModel:
        """A fresh per-token head, or the saved one when the encoder's checkpoint carries a `classifier`."""
        model = TaggerModel(encoder, len(self.labels))
        model.head.load_saved(encoder.head_tensors)
        return model

    def loss(self, model, batch) -> tuple[torch.Tensor, float]:
        """(summed cross-entropy over labelled tokens, their number)."""
        logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])  # (B, T, C)
        y = batch["labels"]  # (B, T), -100 where nothing is learned
        total = losses.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum")
        return total, float((y != -100).sum())

    # ---- evaluation and prediction ----
    @torch.no_grad()
    def logits(self, model, features, batch_size: int = 64, device="cpu") -> list[torch.Tensor]:
        """One (T_i, C) tensor per window, padding removed."""
        model.eval()
        out = []
        for b in self.batches(features, batch_size):
            z = model(b["input_ids"].to(device), b["attention_mask"].to(device), b["token_type_ids"].to(device))
            out += [row[:n].float().cpu() for row, n in zip(z, b["attention_mask"].sum(-1).tolist())]
        return out

    def decode(self, logits: list[torch.Tensor], features, sizes: list[int]) -> list[list[str]]:
        """One tag per original word: from the window where the word's first piece has the most context."""
        best = [[(-1, "O")] * n for n in sizes]  # per word: (context, tag) of the best window so far
        for z, f in zip(logits, features):
            text_at = [t for t, w in enumerate(f["words"]) if w is not None]
            if not text_at:
                continue
            lo, hi = text_at[0], text_at[-1]
            for t in text_at:
                if f["first"][t]:
                    context = min(t - lo, hi - t)
                    word = f["words"][t]
                    if context > best[f["sentence"]][word][0]:
                        best[f["sentence"]][word] = (context, self.labels.decode(int(z[t].argmax())))
        return [[tag for _, tag in words] for words in best]

    def predict_tags(self, model, sentences, batch_size: int = 64, device="cpu") -> list[list[str]]:
        """Tag every word of every sentence."""
        features = self.featurize(sentences, with_labels=False)
        return self.decode(self.logits(model, features, batch_size, device), features,
                           [len(s.words) for s in sentences])

    def evaluate(self, model, features, batch_size: int = 64, device="cpu") -> dict:
        """Entity-level micro precision / recall / F1 over the original words, and the same "per_type"."""
        sentences = list({f["sentence"]: f["example"] for f in features}.values())  # windows are in order
        pred = self.decode(self.logits(model, features, batch_size, device), features,
                           [len(s.words) for s in sentences])
        gold = [s.tags for s in sentences]
        report = tagging_report(gold, pred, zero_division=0.0)
        per_type = {k: v for k, v in report.items() if not k.endswith(" avg")}
        return {**tagging_summary(gold, pred), "per_type": per_type}

    def predict(self, model, examples, batch_size: int = 64, device="cpu") -> list[dict]:
        """`predict`'s rows: each word's tag, and the entities with their character spans in the text (a raw
        text as given; the words of a file joined by single spaces)."""
        rows = []
        for s, tags in zip(examples, self.predict_tags(model, examples, batch_size, device)):
            text = s.text if s.text is not None else " ".join(s.words)
            spans = s.spans if s.spans is not None else _joined_spans(s.words)
            entities = [{"text": text[spans[a][0]:spans[b][1]], "type": kind, "start": spans[a][0],
                         "end": spans[b][1]} for kind, a, b in get_entities([tags])]
            rows.append({"text": text, "tags": tags, "entities": entities})
        return rows

    # ---- saving ----
    def meta(self) -> dict:
        return {"task": self.kind, "labels": self.labels.names, "max_length": self.max_length, "stride": self.stride,
                "label_all_subtokens": self.label_all_subtokens, "encoding": self.encoding}

    @classmethod
    def from_meta(cls, meta: dict, tokenizer) -> "TaggingTask":
        return cls(meta["task"], tokenizer, meta["max_length"], LabelMap(meta["labels"]), meta["stride"],
                   meta["label_all_subtokens"], meta.get("encoding", "utf-8"))

    def hf_config(self) -> dict:
        return label_config(self.labels.names)


def _joined_spans(words: list[str]) -> list[tuple[int, int]]:
    """The (start, end) of each word in " ".join(words)."""
    spans, at = [], 0
    for w in words:
        spans.append((at, at + len(w)))
        at += len(w) + 1
    return spans

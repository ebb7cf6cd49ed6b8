"""Sequence-to-sequence generation with the pretrained encoder alone: UniLM fine-tuning (Dong et al., 2019, §2.3).

One Transformer, and the mask decides what it can do (minift/unilm.py draws the mask and explains the cache):

    x  = [CLS] source [SEP] t_1 .. t_m                         token ids (B, T); segments 0 .. 0 1 .. 1
    h  = Encoder(x, mask = seq2seq_mask)                        (B, T, H): source bidirectional, target left-to-right
    z  = E · LayerNorm(gelu(W h + b)) + b_vocab                 LM head tied to the word embeddings E: (N, V)
    loss = Σ cross-entropy(z_i, y_i) over the m + 1 target slots, count = m + 1 per pair
           with y = t_1 .. t_m [SEP] read at the positions [SEP] (source end), t_1 .. t_m

The objective: predict every next target token (a prefix language model), not UniLM's masked-token one (mask
15-20% of the target, predict those, and at decoding time append a [MASK] whose output is the next token). Why:
(1) every target position gives a loss term, so training is dense instead of learning from a fifth of the tokens;
(2) training sees exactly the inputs decoding sees (the true previous tokens, no [MASK] in the sequence), so
greedy decoding is the model's own argmax at each step with nothing appended; (3) the cache is then trivially exact:
each decoding step is the training forward restricted to one new position. The cost is that the pretrained MLM
head was trained to predict the token *at* a [MASK], not the next one; fine-tuning adapts it quickly.

The LM head (transform, LayerNorm, decoder tied to the word embeddings) loads `cls.predictions.*` when the
checkpoint has them (a BertForMaskedLM / BertForPreTraining checkpoint, or a model saved by this task) and starts
fresh otherwise (sentence-transformers checkpoints such as all-MiniLM-L6-v2 have no head). A saved model is a
Hugging Face `*ForMaskedLM` checkpoint plus minift.json.

Metrics: corpus BLEU (sacrebleu semantics, 0-100; main metric) and ROUGE-1/2/L/Lsum F (0-100), against every
reference of a source: rows with the same source text are one input with several references (E2E repeats each
meaning representation once per reference). Evaluation decodes greedily (or `beams`); during training at most
`max_eval_sources` distinct validation sources (0: all), to keep it fast, while a saved model (results.json's final
scores, `minift.evaluate`) scores every source. Generated tokens are written back as text with the case and
spacing learned from the training targets (truecasing: `fit_truecasing`, which is this task's `fit_labels`;
minift/surface.py).
"""
from __future__ import annotations

import torch

from minift import losses
from minift.batching import padded_batches
from minift.data import DataError, Example, read_table
from minift.generate import generate
from minift.metrics import generation_summary
from minift.surface import fit_surface, restore
from minift.tasks import Recipe, Task, override_columns
from minift.unilm import Seq2SeqLM

MODEL_KEYS = ("input_ids", "token_type_ids", "labels")  # what a training batch holds


def pack(source_ids: list, target_ids: list) -> dict:
    """[CLS] s [SEP] and t_1 .. t_m [SEP] -> one training row: inputs [CLS] s [SEP] t_1 .. t_m (segments 0 then 1),
    labels -100 on the source but its [SEP], which predicts t_1; t_i predicts t_{i+1}; t_m predicts [SEP]."""
    inputs = target_ids[:-1]  # the final [SEP] is only ever predicted
    return {"input_ids": source_ids + inputs, "token_type_ids": [0] * len(source_ids) + [1] * len(inputs),
            "labels": [-100] * (len(source_ids) - 1) + target_ids}


class Seq2SeqTask(Task):
    """Everything the training loop needs to know about generating a target text from a source text."""

    kind, main_metric = "seq2seq", "bleu"
    # The E2E benchmark's rate and batch (benchmarks/results/e2e.json): lr 2e-4 and batch 32 for the encoder, 1e-3
    # for the LM-head transform that starts fresh. On 3,000 rows, greedy BLEU on the first 100 dev MRs: 5e-5 for 3
    # epochs 31.5 (issue 19), this recipe for 1 epoch 33.65, for 2 epochs 53.10 (benchmarks/README.md, "defaults.py").
    recipe = Recipe(lr=2e-4, lr_head=1e-3, epochs=2, batch_size=32)
    architecture_head = "ForMaskedLM"

    def __init__(self, kind: str, tokenizer, columns: dict, max_length: int = 128, max_target_length: int = 64,
                 beams: int = 1, length_penalty: float = 1.0, max_eval_sources: int = 0, has_header: bool = True,
                 encoding: str = "utf-8", surface: dict | None = None):
        super().__init__(tokenizer)
        self.columns, self.max_length, self.max_target_length = columns, max_length, max_target_length
        self.beams, self.length_penalty, self.max_eval_sources = beams, length_penalty, max_eval_sources
        self.has_header, self.encoding = has_header, encoding
        self.surface = surface  # the truecasing table: how the training targets write each token

    @classmethod
    def from_args(cls, args, tokenizer) -> "Seq2SeqTask":
        return cls(args.task, tokenizer, {"text": args.source_col, "label": args.target_col}, args.max_length,
                   args.max_target_length, args.beams, args.length_penalty, args.max_eval_sources,
                   not args.no_header, args.encoding)

    # ---- data ----
    def read(self, path, need_labels: bool = True, training: bool = False) -> list[Example]:
        """Rows of (source, target) from a CSV / TSV / JSONL file: `text` is the source, `label` the target."""
        rows = read_table(path, self.columns["text"], self.columns["label"] if need_labels else None,
                          has_header=self.has_header, encoding=self.encoding)
        for e in rows:
            if need_labels and not e.label:
                raise DataError(f"{path}, line {e.line}: the target column {self.columns['label']!r} is empty")
        return rows

    def example(self, text: str, pair=None) -> Example:
        """A raw source text (`predict --text`)."""
        return Example(text)

    def fit_truecasing(self, examples) -> None:
        """Learn how the training targets write each token (case, accents, spacing), to write outputs back."""
        if self.surface is None:
            self.surface = fit_surface(self.tokenizer, [e.label for e in examples])

    fit_labels = fit_truecasing  # the task contract's fit step: seq2seq has no label map, only the truecasing

    def featurize(self, examples, source: str = "data", with_labels: bool = True) -> list[dict]:
        """Each row -> {"source_ids" ([CLS] s [SEP], cut to max_length), "source", "target", and with labels the
        packed "input_ids", "token_type_ids", "labels" (target cut to max_target_length tokens with its [SEP])}."""
        if not examples:
            return []
        src = self.tokenizer([e.text for e in examples], max_length=self.max_length, padding=False,
                             return_tensors=None)["input_ids"]
        features = [{"source_ids": s, "source": e.text, "target": e.label} for s, e in zip(src, examples)]
        if with_labels:
            tgt = self.tokenizer([e.label for e in examples], max_length=self.max_target_length + 1, padding=False,
                                 return_tensors=None)["input_ids"]
            for f, t in zip(features, tgt):
                f.update(pack(f["source_ids"], t[1:]))  # t[1:]: drop the target's [CLS], keep its [SEP]
        return features

    def batches(self, features, batch_size: int, seed: int = 0, epoch: int = 0, shuffle: bool = False,
                bucket: bool = False):
        """Yield padded training batches: (B, T) ids, segments, mask and labels (-100 off the target)."""
        yield from padded_batches(features, batch_size, self.tokenizer.pad_id, seed, epoch, shuffle, bucket,
                                  keys=MODEL_KEYS)

    # ---- model ----
    def build_model(self, encoder) -> Seq2SeqLM:
        """Encoder + LM head; the head's pretrained or saved tensors when the checkpoint has them."""
        model = Seq2SeqLM(encoder)
        model.head.load_saved(encoder.head_tensors, encoder.cfg.model_type)
        return model

    def loss(self, model, batch) -> tuple[torch.Tensor, float]:
        """(summed cross-entropy over the target slots, their number). Only those slots go through the LM head:
        the (B, T, V) logits of every position would be mostly wasted."""
        hidden = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])  # (B, T, H)
        y = batch["labels"]  # (B, T)
        slots = y != -100
        logits = model.head(hidden[slots])  # (N, V)
        return losses.cross_entropy(logits.float(), y[slots], reduction="sum"), float(slots.sum())

    # ---- generation, evaluation, prediction ----
    def text(self, ids: list) -> str:
        """Generated ids -> text, written as the training targets write their tokens (or plainly decoded)."""
        return restore(ids, self.surface, self.tokenizer) if self.surface else self.tokenizer.decode(ids)

    def generate(self, model, sources: list, batch_size: int = 64, beams: int | None = None) -> list:
        """Generated text for each source (token id lists), in order; sources of similar length are batched.
        Decoding runs where the model's weights are."""
        model.eval()
        order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
        out = [None] * len(sources)
        beams = self.beams if beams is None else beams
        for at in range(0, len(order), batch_size):
            chunk = order[at:at + batch_size]
            found = generate(model, [sources[i] for i in chunk], self.tokenizer.sep_id, self.tokenizer.pad_id,
                             beams, self.length_penalty, self.max_target_length)
            for i, (ids, _) in zip(chunk, found):
                out[i] = self.text(ids)
        return out

    def evaluate(self, model, features, batch_size: int = 64, device="cpu", beams: int | None = None) -> dict:
        """BLEU and ROUGE (0-100) of the generated texts against all references of each distinct source."""
        groups = {}  # source text -> (source ids, [references])
        for f in features:
            groups.setdefault(f["source"], (f["source_ids"], []))[1].append(f["target"])
        chosen = list(groups.values())[:self.max_eval_sources or None]
        hyps = self.generate(model, [ids for ids, _ in chosen], batch_size, beams)
        return {**generation_summary(hyps, [refs for _, refs in chosen]), "sources": len(chosen)}

    def predict(self, model, examples, batch_size: int = 64, device="cpu") -> list[dict]:
        """`predict`'s rows: {"text": the source, "generated": the output}."""
        features = self.featurize(examples, with_labels=False)
        texts = self.generate(model, [f["source_ids"] for f in features], batch_size)
        return [{"text": e.text, "generated": g} for e, g in zip(examples, texts)]

    # ---- saving ----
    def meta(self) -> dict:
        return {"task": self.kind, "columns": self.columns, "max_length": self.max_length,
                "max_target_length": self.max_target_length, "beams": self.beams,
                "length_penalty": self.length_penalty, "has_header": self.has_header, "encoding": self.encoding,
                "surface": self.surface}

    @classmethod
    def from_meta(cls, meta: dict, tokenizer) -> "Seq2SeqTask":
        return cls(meta["task"], tokenizer, meta["columns"], meta["max_length"], meta["max_target_length"],
                   meta["beams"], meta["length_penalty"], 0, meta.get("has_header", True),
                   meta.get("encoding", "utf-8"), meta.get("surface"))

    def override(self, flags: dict) -> None:
        """The table's columns and header, and `predict`'s decoding flags (--beams, --length-penalty)."""
        super().override(flags)
        override_columns(self, flags)
        for name in ("beams", "length_penalty"):
            if flags.get(name) is not None:
                setattr(self, name, flags[name])

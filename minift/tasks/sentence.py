"""Sentence tasks: one label, several labels, or a number for each text (or text pair).

The recipe of Devlin et al. (2019, §4.1), as in Hugging Face's `BertForSequenceClassification`:

    x      = [CLS] text [SEP] (pair [SEP])                     token ids (B, T)
    h      = Encoder(x)                                         (B, T, H)
    v      = pool(h)                                            (B, H): the pretrained pooler by default
    z      = W · dropout(v) + b                                 (B, C)

    classification  C = number of labels   loss = cross-entropy(z, y) (optionally class-weighted)
                                           predict argmax z, probabilities softmax(z)
    multilabel      C = number of labels   loss = binary cross-entropy of sigmoid(z) against a 0/1 vector
                                           predict every label with z > 0 (probability > 0.5)
    regression      C = 1                  loss = mean squared error (z - y)²; predict z

Losses are returned as a sum with the count it is normalised by (examples, or example-labels for multilabel), so
the training loop can divide by the count of a whole accumulated batch. `--class-weights balanced` weighs each
class by n / (C · n_c) (its weight counts in the count), `--oversample` resamples the minority classes up to the
majority in every training epoch, `--undersample` the others down to the smallest. `--loss focal` replaces
cross-entropy by the focal loss (softmax, or sigmoid for multilabel; class weights become its α), and
`--label-smoothing ε` smooths the cross-entropy's targets.

Turning outputs into predictions may use two fitted settings, saved in minift.json: a temperature T
(`--calibrate`: probabilities softmax(z / T), the argmax unchanged) and per-label thresholds t_l (`--tune-thresholds`:
label l is predicted when sigmoid(z_l) > t_l, instead of z_l > 0), each fitted on the validation rows.
A saved model folder is a Hugging Face `*ForSequenceClassification` checkpoint plus `minift.json`, the settings
that reading new data needs.
"""
from __future__ import annotations

import torch
from torch import nn

from minift import losses
from minift.batching import balanced_class_weights, oversampled_indices, padded_batches, undersampled_indices
from minift.data import DataError, Example, LabelMap, encode_labels, read_table, regression_targets
from minift.heads import ClassifierHead, pool
from minift.metrics import best_thresholds, classification_summary, multilabel_summary, regression_summary
from minift.tasks import Recipe, Task, label_config, override_columns

MAIN_METRIC = {"classification": "accuracy", "multilabel": "f1_micro", "regression": "pearson"}
# Default hyperparameters per kind (benchmarks/results/defaults.json, gpu/README.md). Classification: BERT's
# 3 epochs at lr 1e-4 and batch 32 (4,000 training rows, 1,000 held out: TREC 0.942 against BERT's 5e-5 at batch 16
# 0.929, SST-2 0.874 against 0.870; 1e-4 was also above 5e-5 on the H200's 20,000 SST-2 rows). Regression: STS-B's
# best of lr 5e-5 / 1e-4 / 2e-4 at batch 32, 2 epochs (Pearson 0.842 against 0.801 at 5e-5). Multi-label: 28 rare
# sigmoid outputs stay under 0.5 at 1e-4 for 2 epochs (micro-F1 0), so the new classifier learns at 2e-3; even so
# rare labels stay under 0.5, so the recipe tunes each label's threshold on the validation set: 10,000 GoEmotions
# rows, 4 epochs, held-out micro-F1 0.439 against 0.254 after 2 epochs
# (benchmarks/results/recipes_goemotions_4ep_cpu.json, recipes_goemotions_cpu.json).
RECIPES = {"classification": Recipe(lr=1e-4, batch_size=32),
           "regression": Recipe(lr=2e-4, epochs=2, batch_size=32),
           "multilabel": Recipe(lr=1e-4, lr_head=2e-3, epochs=4, batch_size=32, tune_thresholds=True)}
PROBLEM_TYPE = {"classification": "single_label_classification", "multilabel": "multi_label_classification",
                "regression": "regression"}


class SentenceModel(nn.Module):
    """Encoder + pooling + a linear head: token ids (B, T) -> logits (B, C)."""

    def __init__(self, encoder, num_outputs: int, pooling: str = "pooler"):
        super().__init__()
        self.encoder, self.pooling = encoder, pooling
        self.head = ClassifierHead(encoder.cfg.hidden_size, num_outputs, dropout=encoder.cfg.hidden_dropout)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        hidden = self.encoder(input_ids, attention_mask, token_type_ids)  # (B, T, H)
        return self.head(pool(self.encoder, hidden, attention_mask, self.pooling))  # (B, C)


class SentenceTask(Task):
    """Everything the training loop needs to know about a sentence task: data, model, loss, metrics, output."""

    architecture_head = "ForSequenceClassification"
    peft_task_type, adapter_heads = "SEQ_CLS", {"head.out": ClassifierHead.hf_name}  # --save-adapter

    def __init__(self, kind: str, tokenizer, columns: dict, max_length: int = 128, labels: LabelMap | None = None,
                 pooling: str = "pooler", has_header: bool = True, encoding: str = "utf-8",
                 label_delimiter: str = ",", balanced: bool = False, oversample: bool = False,
                 undersample: bool = False, loss: str = "ce", focal_gamma: float = 2.0, label_smoothing: float = 0.0,
                 tune_thresholds: bool = False, temperature: float | None = None, thresholds: list | None = None):
        if kind not in MAIN_METRIC:
            raise ValueError(f"task {kind!r}: expected one of {', '.join(MAIN_METRIC)}")
        super().__init__(tokenizer)
        self.kind, self.columns, self.max_length = kind, columns, max_length
        self.labels, self.pooling, self.has_header, self.encoding = labels, pooling, has_header, encoding
        self.label_delimiter, self.balanced, self.oversample = label_delimiter, balanced, oversample
        self.main_metric = self.main_metric_of(kind)
        self.class_weights: torch.Tensor | None = None  # (C,), fitted by fit_loss when `balanced`
        self.head_bias: torch.Tensor | None = None  # (C,): where a fresh head's bias starts, fitted by fit_loss
        self.undersample, self.loss_name, self.focal_gamma = undersample, loss, focal_gamma
        self.label_smoothing, self.tune_thresholds = label_smoothing, tune_thresholds
        self.temperature, self.thresholds = temperature, thresholds  # fitted on validation rows, or None

    @classmethod
    def from_args(cls, args, tokenizer) -> "SentenceTask":
        """The task as `python -m minift.train` flags describe it."""
        columns = {"text": args.text_col, "label": args.label_col, "text_pair": args.text_pair_col}
        return cls(args.task, tokenizer, columns, args.max_length, pooling=args.pooling,
                   has_header=not args.no_header, encoding=args.encoding, label_delimiter=args.label_delimiter,
                   balanced=args.class_weights == "balanced", oversample=args.oversample,
                   undersample=args.undersample, loss=args.loss, focal_gamma=args.focal_gamma,
                   label_smoothing=args.label_smoothing, tune_thresholds=args.tune_thresholds)

    @classmethod
    def main_metric_of(cls, kind: str) -> str:
        return MAIN_METRIC[kind]

    @classmethod
    def recipe_of(cls, kind: str) -> Recipe:
        return RECIPES[kind]

    # ---- data ----
    @property
    def paired(self) -> bool:
        """Whether the model reads text pairs."""
        return self.columns.get("text_pair") is not None

    def read(self, path, need_labels: bool = True, training: bool = False):
        """Read a CSV / TSV / JSONL file into Examples with the task's columns."""
        return read_table(path, self.columns["text"], self.columns.get("label") if need_labels else None,
                          self.columns.get("text_pair"), has_header=self.has_header, encoding=self.encoding)

    def fit_labels(self, examples) -> None:
        """Build the label map from the training examples (not for regression)."""
        if self.kind != "regression" and self.labels is None:
            self.labels = LabelMap.from_labels([e.label for e in examples], multi_label=self.kind == "multilabel",
                                               delimiter=self.label_delimiter)

    def featurize(self, examples, source: str = "data", with_labels: bool = True) -> list[dict]:
        """Tokenize (truncating to max_length) and attach label ids / vectors / values."""
        if not examples:
            return []
        pairs = [e.text_pair for e in examples] if self.paired else None
        enc = self.tokenizer([e.text for e in examples], pairs, max_length=self.max_length, return_tensors=None,
                             padding=False)
        features = [{"input_ids": ids, "token_type_ids": types}
                    for ids, types in zip(enc["input_ids"], enc["token_type_ids"])]
        if with_labels:
            if self.kind == "regression":
                targets = regression_targets(examples, source)
            else:
                targets = encode_labels(examples, self.labels, source)
            for f, y in zip(features, targets):
                f["labels"] = y
        return features

    def fit_loss(self, features) -> None:
        """With `balanced`: the class weights n / (C · n_c) of the training features. And where a fresh head's bias
        starts (`build_model`): regression at the mean target ȳ = Σ y_i / n; multi-label at each label's log odds
        log(p_l / (1 - p_l)), p_l = (n_l + 0.5) / (n + 1) its smoothed share of the n rows, so that the first
        sigmoid is the label's frequency (the prior start of Lin et al. 2017, §4.1)."""
        if self.kind == "regression" and features:
            self.head_bias = torch.tensor([f["labels"] for f in features], dtype=torch.float64).mean().reshape(1)
        elif self.kind == "multilabel" and features:
            on = torch.stack([torch.as_tensor(f["labels"], dtype=torch.float64) for f in features]).sum(0)  # (C,)
            p = (on + 0.5) / (len(features) + 1)
            self.head_bias = torch.log(p / (1 - p))
        if self.balanced:
            counts = [int(f["labels"]) for f in features]
            self.class_weights = balanced_class_weights(counts, len(self.labels)).float()

    def batches(self, features, batch_size: int, seed: int = 0, epoch: int = 0, shuffle: bool = False,
                bucket: bool = False):
        """Yield padded batches: dicts of (B, T) tensors and `labels`."""
        if (self.oversample or self.undersample) and shuffle and self.kind == "classification":  # resampled
            resample = oversampled_indices if self.oversample else undersampled_indices
            order = resample([int(f["labels"]) for f in features], seed, epoch)
            features, shuffle = [features[i] for i in order], False
        yield from padded_batches(features, batch_size, self.tokenizer.pad_id, seed, epoch, shuffle, bucket)

    # ---- model ----
    @property
    def num_outputs(self) -> int:
        return 1 if self.kind == "regression" else len(self.labels)

    def build_model(self, encoder) -> SentenceModel:
        """A fresh head on the encoder, or the saved head when the encoder's checkpoint carries one. A fresh
        regression or multi-label head's bias starts where the training targets lie (`fit_loss`; "init well",
        Karpathy 2019): from a zero bias every first regression prediction is about ȳ off, and every first
        label probability 0.5 where most labels are rare; the first updates then go to closing that gap instead
        of telling the texts apart (under LoRA it decided whether anything was learnt: benchmarks/README.md)."""
        model = SentenceModel(encoder, self.num_outputs, self.pooling)
        if self.head_bias is not None:
            with torch.no_grad():
                model.head.out.bias.copy_(self.head_bias)
        model.head.load_saved(encoder.head_tensors)  # a saved head replaces the fresh one
        return model

    def loss(self, model, batch) -> tuple[torch.Tensor, float]:
        """(summed loss, the count it is an average over) for one batch."""
        logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])  # (B, C)
        y = batch["labels"]
        if self.kind == "classification":
            w = self.class_weights
            if w is not None and w.device != logits.device:
                self.class_weights = w = w.to(logits.device)
            if self.loss_name == "focal":
                total = losses.focal_loss(logits, y, self.focal_gamma, alpha=w, reduction="sum")
            else:
                total = losses.cross_entropy(logits, y, weight=w, label_smoothing=self.label_smoothing,
                                             reduction="sum")
            return total, float(w[y].sum()) if w is not None else float(len(y))
        if self.kind == "multilabel":
            if self.loss_name == "focal":
                return losses.sigmoid_focal_loss(logits, y, self.focal_gamma, reduction="sum"), float(y.numel())
            return losses.binary_cross_entropy_with_logits(logits, y, reduction="sum"), float(y.numel())
        return losses.mse(logits.squeeze(-1), y, reduction="sum"), float(len(y))

    # ---- evaluation and prediction ----
    def logits(self, model, features, batch_size: int = 64, device="cpu") -> torch.Tensor:
        """(N, C) logits, in the order of `features`. The rows run sorted by length, so that each batch pads to
        little more than its own tokens, under inference_mode (no autograd bookkeeping), and are put back."""
        model.eval()
        order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
        with torch.inference_mode():
            out = [model(b["input_ids"].to(device), b["attention_mask"].to(device), b["token_type_ids"].to(device))
                   for b in self.batches([features[i] for i in order], batch_size)]
        by_length = torch.cat(out).float().cpu()  # row j is features[order[j]]'s
        return by_length[torch.tensor(order).argsort()]  # (N, C), back in input order

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, C) probabilities: softmax(z / T) (T = 1 until --calibrate fits one), or sigmoid(z) for multilabel."""
        if self.kind == "multilabel":
            return logits.sigmoid()
        return (logits / (self.temperature or 1.0)).softmax(-1)

    def decide(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, L) 0/1 multi-label predictions: sigmoid(z_l) > t_l with tuned thresholds, else z_l > 0."""
        if self.thresholds is None:
            return (logits > 0).long()
        return (logits.sigmoid().double() > torch.tensor(self.thresholds, dtype=torch.float64)).long()

    def metrics(self, logits: torch.Tensor, features) -> dict:
        y = torch.stack([f["labels"] for f in features])
        if self.kind == "classification":
            return classification_summary(y, logits.argmax(-1), self.probabilities(logits))
        if self.kind == "multilabel":
            return multilabel_summary(y.long(), self.decide(logits))
        return regression_summary(y, logits.squeeze(-1))

    def tune(self, model, features, device="cpu") -> None:
        """--tune-thresholds: each label's threshold maximising its F1 on `features` (the validation rows)."""
        if self.kind == "multilabel" and self.tune_thresholds:
            y = torch.stack([f["labels"] for f in features])
            probs = self.logits(model, features, device=device).sigmoid().double()
            self.thresholds = best_thresholds(y.numpy(), probs.numpy()).tolist()

    def evaluate(self, model, features, batch_size: int = 64, device="cpu") -> dict:
        return self.metrics(self.logits(model, features, batch_size, device), features)

    def example(self, text: str, pair: str | None = None) -> Example:
        """One text (`predict --text`), and its pair (`--text-pair`) when the model reads pairs."""
        if self.paired and pair is None:
            raise DataError("this model reads text pairs: give one --text-pair per --text")
        return Example(text, pair if self.paired else None)

    def predict(self, model, examples, batch_size: int = 64, device="cpu") -> list[dict]:
        """`predict`'s rows: the text (and its pair), then `predictions`."""
        logits = self.logits(model, self.featurize(examples, with_labels=False), batch_size, device)
        return [{"text": e.text, **({"text_pair": e.text_pair} if self.paired else {}), **row}
                for e, row in zip(examples, self.predictions(logits))]

    def predictions(self, logits: torch.Tensor) -> list[dict]:
        """One JSON-ready dict per row: the label and probabilities, the labels predicted (`decide`) and every
        label's probability, or the value."""
        if self.kind == "regression":
            return [{"value": float(z[0])} for z in logits]
        rows, probs = [], self.probabilities(logits)
        chosen = self.decide(logits) if self.kind == "multilabel" else None
        for i, p in enumerate(probs):
            if self.kind == "classification":
                rows.append({"label": self.labels.decode(int(p.argmax())),
                             "probabilities": {self.labels.decode(j): round(float(q), 6) for j, q in enumerate(p)}})
            elif self.kind == "multilabel":
                rows.append({"labels": [self.labels.decode(j) for j in range(len(p)) if chosen[i, j]],
                             "probabilities": {self.labels.decode(j): round(float(q), 6) for j, q in enumerate(p)}})
        return rows

    # ---- saving ----
    def meta(self) -> dict:
        """What minift.json records, so that evaluate and predict read new data the same way."""
        return {"task": self.kind, "labels": self.labels.names if self.labels else None, "columns": self.columns,
                "max_length": self.max_length, "pooling": self.pooling, "has_header": self.has_header,
                "encoding": self.encoding, "label_delimiter": self.label_delimiter,
                "temperature": self.temperature, "thresholds": self.thresholds}

    @classmethod
    def from_meta(cls, meta: dict, tokenizer) -> "SentenceTask":
        labels = None
        if meta.get("labels") is not None:
            labels = LabelMap(meta["labels"], multi_label=meta["task"] == "multilabel",
                              delimiter=meta.get("label_delimiter", ","))
        return cls(meta["task"], tokenizer, meta["columns"], meta["max_length"], labels, meta["pooling"],
                   meta.get("has_header", True), meta.get("encoding", "utf-8"), meta.get("label_delimiter", ","),
                   temperature=meta.get("temperature"), thresholds=meta.get("thresholds"))

    def override(self, flags: dict) -> None:
        super().override(flags)
        override_columns(self, flags)

    def hf_config(self) -> dict:
        names = [str(i) for i in range(self.num_outputs)] if self.labels is None else self.labels.names
        return {**label_config(names), "problem_type": PROBLEM_TYPE[self.kind]}

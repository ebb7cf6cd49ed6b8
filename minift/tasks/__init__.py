"""What a task is: everything the training loop and the commands know about one task family, and the registry.

The loop (minift/train.py), `minift.evaluate` and `minift.predict` talk to a task only through these methods;
a new task family is one new module with a `Task` subclass, plus one line in `TASKS` below.

    from_args(args, tokenizer)   the task as `python -m minift.train` flags describe it
    read(path, need_labels, training)   a file -> examples (`training`: it is the file to train on)
    fit_labels(examples)         learn from the training examples what the targets need: a label map
                                 (sentence, tagging), the targets' truecasing table (seq2seq), nothing (qa)
    featurize(examples, source, with_labels)   examples -> token-id features, unpadded
    fit_loss(features)           learn from the training features what the loss and a fresh head need
                                 (balanced class weights; where a regression or multi-label head starts)
    batches(features, batch_size, seed, epoch, shuffle, bucket)   -> padded batches: dicts of (B, T) tensors
    build_model(encoder)         encoder + the task's head (the saved head when the checkpoint has one)
    loss(model, batch)           -> (summed loss, the count it is an average over): the loop divides the sum of
                                 a whole accumulated update by the sum of its counts
    tune(model, features, device)   learn from the validation rows how outputs become predictions (multilabel
                                 thresholds); the loop calls it before each `evaluate` on them
    evaluate(model, features, batch_size, device) -> {metric: value}; `main_metric` picks the best model
    example(text, pair)          one input given on the command line (`predict --text`)
    predict(model, examples, batch_size, device) -> one JSON-ready row per example
    override(flags)              `evaluate` / `predict` flags that replace what minift.json saved
    meta() / from_meta(meta, tokenizer)   the settings minift.json keeps, so new data is read the same way
    save(model, folder, adapter_of)   the model folder (below): written once, here, for every task
    write_meta(folder)           minift.json and README.md alone (the loop adds the scores when training ends)
    peft_task_type, adapter_heads     PEFT's task type and the head's module -> Hugging Face name, for the adapter
                                 folder of a LoRA model (minift/lora.py); None / {} where PEFT has no layout
    recipe / recipe_of(kind)     the task family's default hyperparameters (`Recipe`): what a flag the user leaves
                                 out means (minift/train_flags.py `resolve_defaults`)

A saved model folder is a Hugging Face checkpoint that `transformers` loads (`config.json` names the class, e.g.
`BertForSequenceClassification`; the encoder's tensors carry the family prefix `bert.`, the head's its Hugging
Face names), plus the tokenizer, `minift.json` (`meta()`, and `record`: what `minift.train` records of the run)
and a model card, `README.md` (minift/card.py); it is written atomically (minift/atomic.py). A LoRA model is
saved merged (W + (α/r)·B·A): the same plain checkpoint; with `--save-adapter` its subfolder `adapter/` holds the
adapters and the head alone in PEFT's layout (`adapter_config.json`, `adapter_model.safetensors`) and `minift.json`.
Not beside the model: `transformers` would load an adapter it finds there on top of the merged weights.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from minift import adapter, atomic, card, lora
from minift.checkpoint import MODEL_PREFIX
from minift.config import architecture
from minift.data import DataError, Example

ADAPTER_FOLDER = "adapter"  # OUT/adapter: a LoRA run's adapters in PEFT's layout (--save-adapter)


@dataclass(frozen=True)
class Recipe:
    """A task family's default hyperparameters: the value of each of these `python -m minift.train` flags when the
    user does not give it. Chosen from measured runs (benchmarks/defaults.py, benchmarks/results/defaults.json).

    lr_head is the rate of the newly initialised head (the classifier, the span or LM-head layers: `optim.is_head`);
    None: the same as lr. A new, randomly initialised layer usually wants a higher rate than the pretrained encoder.
    The base recipe is BERT's fine-tuning recipe (Devlin et al., 2019, Appendix A.3; a 10 % linear warmup)."""

    lr: float = 5e-5
    lr_head: float | None = None
    epochs: int = 3
    batch_size: int = 16
    max_length: int = 128
    warmup: float = 0.1  # a fraction of all updates if < 1, else a number of updates
    schedule: str = "linear"
    tune_thresholds: bool = False  # multilabel: per-label thresholds chosen on the validation set


class Task:
    """The shared part of every task; each method a subclass must write raises NotImplementedError here."""

    kind: str  # the --task name
    main_metric: str  # the metric that picks the best model (higher is better)
    architecture_head = "Model"  # the `transformers` class of a saved model: family stem + this
    encoding = "utf-8"
    peft_task_type: str | None = None  # PEFT's task_type of a saved adapter (SEQ_CLS ...); None: no adapter layout
    adapter_heads: dict[str, str] = {}  # head module -> Hugging Face name, saved whole beside the adapters
    record: dict | None = None  # the run that trained it: base model, data, flags, scores (minift.json "training")
    lora_settings: dict | None = None  # a LoRA model's r, alpha, dropout, targets, base (minift.json "lora")
    recipe = Recipe()  # the family's default hyperparameters
    train_settings: dict | None = None  # the hyperparameters it was trained with, for minift.json (set by the loop)

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    @classmethod
    def from_args(cls, args, tokenizer) -> "Task":
        raise NotImplementedError

    @classmethod
    def main_metric_of(cls, kind: str) -> str:
        """The main metric of a task of this `kind`, before (or without) building one."""
        return cls.main_metric

    @classmethod
    def recipe_of(cls, kind: str) -> Recipe:
        """The default hyperparameters of a task of this `kind` (a family may differ per kind)."""
        return cls.recipe

    def read(self, path, need_labels: bool = True, training: bool = False) -> list:
        raise NotImplementedError

    def fit_labels(self, examples) -> None:
        """Nothing to learn by default."""

    def featurize(self, examples, source: str = "data", with_labels: bool = True) -> list[dict]:
        raise NotImplementedError

    def fit_loss(self, features) -> None:
        """Nothing to learn by default."""

    def batches(self, features, batch_size: int, seed: int = 0, epoch: int = 0, shuffle: bool = False,
                bucket: bool = False):
        raise NotImplementedError

    def build_model(self, encoder):
        raise NotImplementedError

    def loss(self, model, batch):
        raise NotImplementedError

    def tune(self, model, features, device="cpu") -> None:
        """Nothing to tune by default."""

    def evaluate(self, model, features, batch_size: int = 64, device="cpu") -> dict:
        raise NotImplementedError

    def example(self, text: str, pair: str | None = None):
        """One text from the command line, as the examples `read` gives."""
        return Example(text, pair)

    def predict(self, model, examples, batch_size: int = 64, device="cpu") -> list[dict]:
        raise NotImplementedError

    def override(self, flags: dict) -> None:
        """Apply a command's flags (a dict of flag name -> value, None for not given) over the saved settings."""
        if flags.get("encoding"):
            self.encoding = flags["encoding"]
        if flags.get("articles"):
            raise DataError(f"--articles selects SQuAD articles; this model does {self.kind}")

    def meta(self) -> dict:
        raise NotImplementedError

    @classmethod
    def from_meta(cls, meta: dict, tokenizer) -> "Task":
        raise NotImplementedError

    def hf_config(self) -> dict:
        """The task's fields of the saved config.json (`num_labels`, `id2label`, ...), beside `architectures`."""
        return {}

    def save(self, model, folder: str | Path, adapter_of: str | None = None) -> None:
        """Write the model folder atomically: weights and config.json under Hugging Face names, the tokenizer,
        and minift.json (`meta`). A model with LoRA layers is saved merged, from a copy (the training model keeps
        its adapters), and minift.json records its LoRA settings; with `adapter_of`, the base model it adapts
        (folder or Hub id), the subfolder ADAPTER_FOLDER holds the adapters and head alone, and minift.json."""
        settings = lora.settings(model)
        self.lora_settings = None if settings is None else {**settings, "adapter_of": adapter_of}
        plain = model if settings is None else lora.merge_lora(copy.deepcopy(model))

        def fill(tmp: Path) -> None:
            family = plain.encoder.cfg.model_type
            config = {"architectures": [architecture(family, self.architecture_head)], **self.hf_config()}
            plain.encoder.save_pretrained(tmp, plain.head.hf_tensors(family), config, prefix=MODEL_PREFIX[family])
            self.tokenizer.save(tmp)
            if adapter_of is not None:
                adapter.save_adapter(model, tmp / ADAPTER_FOLDER, adapter_of, self.peft_task_type, self.adapter_heads)
            self.write_meta(tmp)
        atomic.write_folder(folder, fill)

    def remember_run(self, meta: dict) -> "Task":
        """Take back what `write_meta` adds to `meta()` (the run's record, LoRA settings, hyperparameters), so a
        reloaded task rewrites minift.json whole."""
        self.record, self.lora_settings = meta.get("training"), meta.get("lora")
        self.train_settings = meta.get("train_settings")
        return self

    def write_meta(self, folder: str | Path) -> None:
        """minift.json (`meta()`, and the run's `record` as "training") and the model card README.md rendered
        from it, each file written atomically."""
        meta = {**self.meta(), **({"lora": self.lora_settings} if self.lora_settings else {}),
                **({"train_settings": self.train_settings} if self.train_settings else {}),
                **({"training": self.record} if self.record else {})}
        text = card.render(meta, self.architecture_head)
        for where in (Path(folder), Path(folder) / ADAPTER_FOLDER):  # the adapter folder (LoRA), if any, too
            if where.is_dir():
                atomic.write_json(where / "minift.json", meta)
                atomic.write_file(where / "README.md", lambda tmp: tmp.write_text(text, encoding="utf-8"))


def override_columns(task, flags: dict) -> None:
    """For a task that reads a table (sentence, seq2seq): the column and header flags over the saved ones."""
    for key, flag in (("text", "text_col"), ("text_pair", "text_pair_col"), ("label", "label_col")):
        if flags.get(flag) is not None:
            task.columns[key] = flags[flag]
    if flags.get("no_header"):
        task.has_header = False


def label_config(names: list[str]) -> dict:
    """config.json's label fields, as `transformers` writes them."""
    return {"num_labels": len(names), "id2label": {str(i): n for i, n in enumerate(names)},
            "label2id": {n: i for i, n in enumerate(names)}}


# The registry: --task name -> the class that knows that task. Imported here, after `Task`, which they subclass.
from minift.tasks.qa import QATask  # noqa: E402
from minift.tasks.sentence import SentenceTask  # noqa: E402
from minift.tasks.seq2seq import Seq2SeqTask  # noqa: E402
from minift.tasks.tagging import TaggingTask  # noqa: E402

TASKS = {"classification": SentenceTask, "multilabel": SentenceTask, "regression": SentenceTask,
         "ner": TaggingTask, "qa": QATask, "seq2seq": Seq2SeqTask}

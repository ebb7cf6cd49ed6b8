"""The encoder's configuration: one dataclass, read from a checkpoint's `config.json`.

Three families of BERT-style encoders name the same hyper-parameters differently:

    field               bert / roberta              distilbert
    ------------------  --------------------------  -------------------------
    hidden_size         hidden_size                 dim
    num_layers          num_hidden_layers           n_layers
    num_heads           num_attention_heads         n_heads
    intermediate_size   intermediate_size           hidden_dim
    activation          hidden_act                  activation
    hidden_dropout      hidden_dropout_prob         dropout
    attention_dropout   attention_probs_dropout_prob attention_dropout

`EncoderConfig.from_dict` maps them to one set of names and refuses, naming the field, any setting the encoder in
`minift/encoder.py` cannot honour (relative position embeddings, an unknown activation or model type).
Reference: the `config.json` files written by Hugging Face `transformers` (BertConfig, RobertaConfig, DistilBertConfig).

This module is also the one home of every other fact that differs by family; everything else reads them here:

    FAMILIES, ARCHITECTURE       the family names, and the `transformers` class a saved model names (`architecture`)
    DEFAULT_PAD_ID, position_offset   RoBERTa numbers positions from pad_token_id + 1, the others from 0
    ACTIVATIONS                  the activation functions a config may name
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch.nn.functional as F

FAMILIES = ("bert", "roberta", "distilbert")
# The `transformers` class-name stem of each family: BertModel, RobertaForSequenceClassification, ...
ARCHITECTURE = {"bert": "Bert", "roberta": "Roberta", "distilbert": "DistilBert"}
DEFAULT_PAD_ID = {"bert": 0, "roberta": 1, "distilbert": 0}  # where config.json does not say
ACTIVATIONS = {
    "gelu": F.gelu,  # exact: x·Φ(x)
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),  # GPT-2's tanh approximation
    "relu": F.relu,
}


def architecture(family: str, head: str = "Model") -> str:
    """The `transformers` class a checkpoint names in `architectures`: ("bert", "ForMaskedLM") -> "BertForMaskedLM"."""
    return ARCHITECTURE[family] + head


def position_offset(family: str, pad_token_id: int) -> int:
    """The first position id: RoBERTa counts real tokens from pad_token_id + 1 (fairseq's make_positions; position
    pad_token_id itself is the padding row), so its first max_positions - pad_token_id - 1 positions are usable;
    BERT and DistilBERT count from 0."""
    return pad_token_id + 1 if family == "roberta" else 0

# Our name <- the family's name in config.json (only where they differ from ours).
DISTILBERT_KEYS = {
    "hidden_size": "dim",
    "num_layers": "n_layers",
    "num_heads": "n_heads",
    "intermediate_size": "hidden_dim",
    "activation": "activation",
    "hidden_dropout": "dropout",
    "attention_dropout": "attention_dropout",
}
BERT_KEYS = {
    "hidden_size": "hidden_size",
    "num_layers": "num_hidden_layers",
    "num_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size",
    "activation": "hidden_act",
    "hidden_dropout": "hidden_dropout_prob",
    "attention_dropout": "attention_probs_dropout_prob",
}


class ConfigError(ValueError):
    """A config.json that minift cannot honour; the message names the file and the field."""


def _check_numbers(d: dict, keys: dict, fail) -> None:
    """Refuse a size, id, probability or epsilon of the wrong type or range, naming the field, before it reaches
    a tensor constructor (where it would be a traceback, or a model of absurd size)."""
    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    sizes = [keys[k] for k in ("hidden_size", "num_layers", "num_heads", "intermediate_size")]
    for name in (*sizes, "vocab_size", "max_position_embeddings"):
        if type(d[name]) is not int or d[name] < 1:
            fail(name, f"is {d[name]!r}; it must be a whole number of at least 1")
    for name in ("type_vocab_size", "pad_token_id"):
        if d.get(name) is not None and (type(d[name]) is not int or not 0 <= d[name] < (
                d["vocab_size"] if name == "pad_token_id" else 2**31)):
            fail(name, f"is {d[name]!r}; it must be a whole number from 0" +
                 (f" to vocab_size - 1 ({d['vocab_size'] - 1})" if name == "pad_token_id" else ""))
    for name in (keys["hidden_dropout"], keys["attention_dropout"]):
        if not (number(d[name]) and 0 <= d[name] < 1):
            fail(name, f"is {d[name]!r}; a dropout probability is a number from 0 to below 1")
    if "layer_norm_eps" in d and not (number(d["layer_norm_eps"]) and d["layer_norm_eps"] > 0):
        fail("layer_norm_eps", f"is {d['layer_norm_eps']!r}; it must be a number above 0")


@dataclass
class EncoderConfig:
    model_type: str = "bert"
    vocab_size: int = 30522
    hidden_size: int = 384
    num_layers: int = 6
    num_heads: int = 12
    intermediate_size: int = 1536
    activation: str = "gelu"
    max_positions: int = 512
    type_vocab_size: int = 2  # 0 for distilbert: no token-type embeddings
    layer_norm_eps: float = 1e-12
    pad_token_id: int = 0
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    has_pooler: bool = True
    raw: dict = field(default_factory=dict, repr=False)  # the original config.json, written back on save

    @property
    def position_offset(self) -> int:
        """The first position id (see `position_offset`): pad_token_id + 1 for RoBERTa, else 0."""
        return position_offset(self.model_type, self.pad_token_id)

    @property
    def max_tokens(self) -> int:
        """The longest sequence the position embeddings cover: max_positions less the position offset."""
        return self.max_positions - self.position_offset

    @classmethod
    def from_dict(cls, d: dict, source: str = "config.json") -> "EncoderConfig":
        """Build a config from a `config.json` dict; `source` names the file in error messages."""

        def fail(field_name, why):
            raise ConfigError(f"{source}: field '{field_name}' {why}")

        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a JSON object of settings, got {type(d).__name__}")
        model_type = d.get("model_type")
        if model_type is None:
            fail("model_type", f"is missing; minift supports {', '.join(FAMILIES)}")
        if model_type not in FAMILIES:
            fail("model_type", f"is {model_type!r}; minift supports {', '.join(FAMILIES)}")
        pos_type = d.get("position_embedding_type", "absolute")
        if pos_type != "absolute":
            fail("position_embedding_type", f"is {pos_type!r}; minift implements only 'absolute' positions")

        keys = DISTILBERT_KEYS if model_type == "distilbert" else BERT_KEYS
        values = {}
        for ours, theirs in keys.items():
            if theirs not in d:
                fail(theirs, "is missing")
            values[ours] = d[theirs]
        for name in ("vocab_size", "max_position_embeddings"):
            if name not in d:
                fail(name, "is missing")
        _check_numbers(d, keys, fail)
        if not isinstance(values["activation"], str) or values["activation"] not in ACTIVATIONS:
            fail(keys["activation"], f"is {values['activation']!r}; minift supports {', '.join(ACTIVATIONS)}")
        if values["hidden_size"] % values["num_heads"]:
            fail(keys["num_heads"], f"({values['num_heads']}) does not divide {keys['hidden_size']} "
                                    f"({values['hidden_size']})")
        if model_type == "distilbert" and d.get("sinusoidal_pos_embds"):
            fail("sinusoidal_pos_embds", "is true; minift loads learned position embeddings only")

        distil = model_type == "distilbert"
        return cls(
            model_type=model_type,
            vocab_size=d["vocab_size"],
            max_positions=d["max_position_embeddings"],
            type_vocab_size=0 if distil else d.get("type_vocab_size", 2),
            layer_norm_eps=1e-12 if distil else d.get("layer_norm_eps", 1e-12),
            pad_token_id=d.get("pad_token_id", DEFAULT_PAD_ID[model_type]) or 0,
            has_pooler=not distil,
            raw=dict(d),
            **values,
        )

    @classmethod
    def from_file(cls, path: str | Path) -> "EncoderConfig":
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no config.json here; a checkpoint folder needs one "
                              "(it is written by save_pretrained)")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}, line {e.lineno}, column {e.colno}: not valid JSON ({e.msg})") from None
        except (UnicodeDecodeError, RecursionError) as e:
            raise ConfigError(f"{path}: not a UTF-8 JSON file ({type(e).__name__}); download or save it again") \
                from None
        return cls.from_dict(d, source=str(path))

    def to_dict(self) -> dict:
        """The config in its family's own names, as `transformers` reads it (the original fields are kept)."""
        keys = DISTILBERT_KEYS if self.model_type == "distilbert" else BERT_KEYS
        d = dict(self.raw)
        d["model_type"] = self.model_type
        d["vocab_size"] = self.vocab_size
        d["max_position_embeddings"] = self.max_positions
        d["pad_token_id"] = self.pad_token_id
        for ours, theirs in keys.items():
            d[theirs] = asdict(self)[ours]
        if self.model_type != "distilbert":
            d["type_vocab_size"] = self.type_vocab_size
            d["layer_norm_eps"] = self.layer_norm_eps
        return d

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
        if values["activation"] not in ACTIVATIONS:
            fail(keys["activation"], f"is {values['activation']!r}; minift supports {', '.join(ACTIVATIONS)}")
        if values["hidden_size"] % values["num_heads"]:
            fail(keys["num_heads"], f"({values['num_heads']}) does not divide {keys['hidden_size']} "
                                    f"({values['hidden_size']})")
        if model_type == "distilbert" and d.get("sinusoidal_pos_embds"):
            fail("sinusoidal_pos_embds", "is true; minift loads learned position embeddings only")
        for name in ("vocab_size", "max_position_embeddings"):
            if name not in d:
                fail(name, "is missing")

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

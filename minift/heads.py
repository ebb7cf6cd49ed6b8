"""Task heads: the small layers put on top of a pretrained encoder, one per kind of output.

Fine-tuning (Devlin et al., 2019, §4) adds as little as possible to the encoder: a linear layer on one vector
per sentence, per token, or per answer boundary. Given hidden states h of shape (B, T, H):

    pool(h)              one vector per sentence (B, H): the pretrained pooler tanh(W h[CLS]), h[CLS], or the
                         mean of the real tokens Σ_t m_t h_t / Σ_t m_t (sentence-transformers' pooling)
    ClassifierHead       logits = W · dropout(x) + b           x: (B, H) -> (B, C), or per token (B, T, H) -> (B, T, C)
    SpanHead             [start, end] = W h + b                 (B, T, H) -> two (B, T): extractive QA
    LMHead               logits = E · LayerNorm(act(W h + b)) + b_vocab, E the tied word embeddings: (B, T, V)

Each head knows its own names in a Hugging Face checkpoint (`classifier`, `qa_outputs`, `cls.predictions` …):
`hf_tensors(family)` gives its tensors under them (for saving) and `load_saved(head_tensors, family)` loads them
back from a checkpoint that has them; minift/tasks/__init__.py saves every task's model through them.
"""
from __future__ import annotations

import torch
from torch import nn

from minift.checkpoint import CheckpointError
from minift.config import ACTIVATIONS
from minift.encoder import Encoder

POOLINGS = ("pooler", "cls", "mean")
# LMHead parameter -> its name in a Hugging Face masked-LM checkpoint, per family (the decoder weight is tied).
LM_HEAD_NAMES = {
    "bert": {"transform": "cls.predictions.transform.dense", "norm": "cls.predictions.transform.LayerNorm",
             "bias": "cls.predictions.bias"},
    "roberta": {"transform": "lm_head.dense", "norm": "lm_head.layer_norm", "bias": "lm_head.bias"},
    "distilbert": {"transform": "vocab_transform", "norm": "vocab_layer_norm", "bias": "vocab_projector.bias"},
}


def load_saved(linear: nn.Linear, head_tensors: dict, name: str) -> None:
    """Load `name.weight` and `name.bias` from a checkpoint's head tensors into `linear`, if the checkpoint has
    them (a model minift saved after fine-tuning); a head of another shape is an error, not a silent reset."""
    saved = {k: head_tensors.get(f"{name}.{k}") for k in ("weight", "bias")}
    if any(t is None for t in saved.values()):
        return
    if tuple(saved["weight"].shape) != tuple(linear.weight.shape):
        raise CheckpointError(f"the checkpoint's {name} has {saved['weight'].shape[0]} outputs but this task needs "
                         f"{linear.weight.shape[0]}: start from an encoder without that head")
    linear.load_state_dict(saved)


def pool(encoder: Encoder, hidden: torch.Tensor, attention_mask: torch.Tensor, how: str) -> torch.Tensor:
    """One vector per sequence: (B, T, H) -> (B, H)."""
    if how == "pooler":
        return encoder.pool(hidden)
    if how == "cls":
        return hidden[:, 0]
    if how == "mean":
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
        return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
    raise ValueError(f"pooling {how!r}: expected one of {', '.join(POOLINGS)}")


class LinearHead(nn.Module):
    """What a head that ends in one linear layer `out` shares: its name in a Hugging Face checkpoint."""

    hf_name = ""

    def hf_tensors(self, family: str = "bert") -> dict[str, torch.Tensor]:
        """`{hf_name}.weight` and `{hf_name}.bias` (the same in every family)."""
        return {f"{self.hf_name}.{k}": t for k, t in self.out.state_dict().items()}

    def load_saved(self, head_tensors: dict, family: str = "bert") -> None:
        load_saved(self.out, head_tensors, self.hf_name)


class ClassifierHead(LinearHead):
    """Dropout then one linear layer; works on (B, H) sentence vectors and on (B, T, H) token vectors."""

    hf_name = "classifier"  # as in *ForSequenceClassification and *ForTokenClassification

    def __init__(self, hidden_size: int, num_outputs: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, num_outputs)
        nn.init.normal_(self.out.weight, std=0.02)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., H) -> (..., C)
        return self.out(self.dropout(x))


class SpanHead(LinearHead):
    """Start and end logits of an answer span, one pair per token (Devlin et al., 2019, §4.2)."""

    hf_name = "qa_outputs"  # as in *ForQuestionAnswering

    def __init__(self, hidden_size: int):
        super().__init__()
        self.out = nn.Linear(hidden_size, 2)
        nn.init.normal_(self.out.weight, std=0.02)
        nn.init.zeros_(self.out.bias)

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # (B, T, H) -> 2 x (B, T)
        start, end = self.out(hidden).unbind(dim=-1)
        return start, end


class LMHead(nn.Module):
    """BERT's masked-language-model head: transform, LayerNorm, then scores against the tied word embeddings."""

    def __init__(self, encoder: Encoder):
        super().__init__()
        cfg = encoder.cfg
        self.transform = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.act = ACTIVATIONS[cfg.activation]
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        self.word = encoder.embeddings.word  # tied: the same tensor as the input embeddings
        nn.init.normal_(self.transform.weight, std=0.02)
        nn.init.zeros_(self.transform.bias)

    def hf_tensors(self, family: str) -> dict[str, torch.Tensor]:
        """The head's own tensors under their Hugging Face names (`cls.predictions.*` for BERT)."""
        names = LM_HEAD_NAMES[family]
        out = {names["bias"]: self.bias}
        for part in ("transform", "norm"):
            out.update({f"{names[part]}.{k}": t for k, t in getattr(self, part).state_dict().items()})
        return out

    def load_saved(self, head_tensors: dict, family: str) -> bool:
        """Load the pretrained head when the checkpoint has every tensor of it (a BertForMaskedLM / BertForPreTraining
        checkpoint, or a model minift saved); otherwise keep the fresh initialisation. True if loaded."""
        mine = self.hf_tensors(family)
        if not all(name in head_tensors for name in mine):
            return False
        for name, t in mine.items():
            if tuple(head_tensors[name].shape) != tuple(t.shape):
                raise CheckpointError(f"the checkpoint's {name} has shape {tuple(head_tensors[name].shape)}, the "
                                      f"model needs {tuple(t.shape)}")
            with torch.no_grad():
                t.copy_(head_tensors[name])
        return True

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, T, V)
        return self.norm(self.act(self.transform(hidden))) @ self.word.weight.T + self.bias

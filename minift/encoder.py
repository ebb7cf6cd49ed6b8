"""A BERT-family Transformer encoder, written out module by module.

Follows Devlin et al. (2019), "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding",
which uses the encoder of Vaswani et al. (2017), "Attention Is All You Need". The same code runs BERT, MiniLM
(a BERT with fewer, narrower layers), RoBERTa (Liu et al., 2019: positions offset past the padding index) and
DistilBERT (Sanh et al., 2019: no token types, no pooler). Given token ids `x` of shape (B, T):

    h_0 = LayerNorm(E_word[x] + E_pos[0..T-1] + E_type[segment])           embeddings      (B, T, H)
    a   = softmax(Q Kᵀ / √d + mask) V,  Q = h W_q, K = h W_k, V = h W_v     self-attention, per head
    h'  = LayerNorm(h + a W_o)                                              post-LN residual
    h   = LayerNorm(h' + act(h' W_up) W_down)                              feed-forward, post-LN
    pooled = tanh(h_L[:, 0] W_pool)                                         pooler ([CLS]), BERT/RoBERTa only

Attention has two paths that compute the same thing: `attention_reference` is the formula above written out;
`torch.nn.functional.scaled_dot_product_attention` is the fast path used by default. A test proves them equal.
Every module here reads (B, T, H). On a CPU, a padded batch instead runs its per-token work on the real tokens
only: that speed path lives in minift/packing.py, chosen in `Encoder.forward` (`Encoder.pack`), tested equal.
Parameter names (`embeddings.word`, `layers.3.attn.query`, ...) are minift's own; `minift/checkpoint.py` maps them
to and from the names in Hugging Face checkpoints.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as recompute

from minift import checkpoint
from minift.config import ACTIVATIONS, EncoderConfig, architecture
from minift.packing import packed_layers

log = logging.getLogger(__name__)


def additive_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Turn a mask into the additive form broadcast over heads: 0 where attending is allowed, a huge negative
    number where it is not.

    (B, T) keep-mask of 1/0 (padding)           -> (B, 1, 1, T): every query sees the same keys
    (B, T, T) additive mask (0 or -inf / min)    -> (B, 1, T, T): each query row has its own keys (seq2seq)
    (B, T, T) boolean mask, True = may attend    -> (B, 1, T, T), as torch's scaled_dot_product_attention reads it
    """
    if mask is None:
        return None
    if mask.dim() == 3 and mask.dtype == torch.bool:  # added as 1.0 / 0.0 it would hide nothing
        mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
    if mask.dim() == 2:
        blocked = mask[:, None, None, :] == 0  # (B, 1, 1, T)
        return torch.zeros(blocked.shape, dtype=dtype, device=mask.device).masked_fill(blocked,
                                                                                   torch.finfo(dtype).min)
    if mask.dim() == 3:
        return mask[:, None, :, :].to(dtype).clamp(min=torch.finfo(dtype).min)  # (B, 1, T, T)
    raise ValueError(f"attention_mask must be (B, T) or (B, T, T); got shape {tuple(mask.shape)}")


def attention_reference(q, k, v, mask=None, dropout_p=0.0):
    """softmax(Q Kᵀ / √d + mask) V, written as the formula. q, k, v: (B, heads, T, d); mask: (B, 1, T|1, T)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, heads, T, T)
    if mask is not None:
        scores = scores + mask
    probs = F.dropout(scores.softmax(dim=-1), p=dropout_p)  # each query's weights over the keys sum to 1
    return probs @ v  # (B, heads, T, d)


class Embeddings(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.word = nn.Embedding(cfg.vocab_size, cfg.hidden_size, padding_idx=cfg.pad_token_id)
        pos_pad = cfg.position_offset - 1 if cfg.position_offset else None  # RoBERTa: padding sits at pad_id
        self.position = nn.Embedding(cfg.max_positions, cfg.hidden_size, padding_idx=pos_pad)
        self.token_type = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size) if cfg.type_vocab_size else None
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)

    def positions(self, input_ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Position ids (B, T): 0, 1, 2, ... (from `start`); with a position offset o (RoBERTa, o = pad_id + 1),
        real tokens count from o and padding tokens sit at o - 1 = pad_id."""
        offset = self.cfg.position_offset
        if offset:
            real = (input_ids != self.cfg.pad_token_id).long()
            return (torch.cumsum(real, dim=1) + start) * real + offset - 1
        T = input_ids.size(1)
        return torch.arange(start, start + T, device=input_ids.device).expand_as(input_ids)

    def forward(self, input_ids, token_type_ids=None, position_ids=None):  # (B, T) -> (B, T, H)
        if position_ids is None:
            position_ids = self.positions(input_ids)
        if position_ids.max() >= self.cfg.max_positions:
            raise ValueError(f"sequence of {input_ids.size(1)} tokens is longer than the model's "
                             f"{self.cfg.max_positions} positions: truncate it (max_length)")
        h = self.word(input_ids) + self.position(position_ids)
        if self.token_type is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            h = h + self.token_type(token_type_ids)
        return self.dropout(self.norm(h))


class SelfAttention(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        H = cfg.hidden_size
        self.heads, self.dropout_p = cfg.num_heads, cfg.attention_dropout
        self.query, self.key, self.value, self.out = (nn.Linear(H, H) for _ in range(4))
        self.fast = True  # False: use attention_reference (the formula), e.g. to compare or to teach

    def split_heads(self, x):  # (B, T, H) -> (B, heads, T, d)
        B, T, H = x.shape
        return x.view(B, T, self.heads, H // self.heads).transpose(1, 2)

    def project_qkv(self, x):
        """Q, K, V = x W_q, x W_k, x W_v. The fast path stacks the three weights into one (3H, H) matrix:
        one large matrix product is quicker than three small ones, and the result is the same.

        A wrapped projection (minift.lora.LoRALinear) has its frozen linear layer as `base` and an
        `adapt(y, x)` that adds its own term to y = base(x): the fast path stacks the bases and then adapts."""
        mods = (self.query, self.key, self.value)
        if not self.fast:
            return tuple(m(x) for m in mods)
        linears = [getattr(m, "base", m) for m in mods]
        w = torch.cat([m.weight for m in linears])  # (3H, H)
        b = torch.cat([m.bias for m in linears])  # (3H,)
        qkv = F.linear(x, w, b).chunk(3, dim=-1)
        return tuple(m.adapt(y, x) if hasattr(m, "adapt") else y for m, y in zip(mods, qkv))

    def attend(self, q, k, v, mask=None, past=None):
        """softmax(Q Kᵀ / √d + mask) V for every head: q, k, v (B, T, H) -> ((B, T, H), the (k, v) to cache).

        past: cached (k, v) of earlier positions, each (B, heads, S - T, d), for step-by-step decoding."""
        q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)  # (B, heads, T, d)
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)  # (B, heads, S, d)
        p = self.dropout_p if self.training else 0.0
        if self.fast:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
        else:
            y = attention_reference(q, k, v, mask, p)
        B, _, T, _ = y.shape
        return y.transpose(1, 2).reshape(B, T, -1), (k, v)  # (B, T, H)

    def forward(self, x, mask=None, past=None):
        """x: (B, T, H); mask: additive (B, 1, T|1, S); past: see `attend`. -> (output (B, T, H), (k, v))."""
        q, k, v = self.project_qkv(x)
        y, kv = self.attend(q, k, v, mask, past)
        return self.out(y), kv


class FeedForward(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.up = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.down = nn.Linear(cfg.intermediate_size, cfg.hidden_size)
        self.act = ACTIVATIONS[cfg.activation]

    def forward(self, x):  # (B, T, H) -> (B, T, I) -> (B, T, H)
        return self.down(self.act(self.up(x)))


class Block(nn.Module):
    """One post-LN Transformer layer: attention then feed-forward, each added back and normalised."""

    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.attn = SelfAttention(cfg)
        self.attn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.ffn = FeedForward(cfg)
        self.ffn_norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.hidden_dropout)
        # DistilBERT drops nothing between attention and its LayerNorm (its only dropouts are on the attention
        # weights and after the feed-forward); BERT and RoBERTa drop the attention output too.
        self.attn_dropout = nn.Identity() if cfg.model_type == "distilbert" else self.dropout

    def forward(self, x, mask=None, past=None):  # (B, T, H) -> (B, T, H)
        a, kv = self.attn(x, mask, past)
        x = self.attn_norm(x + self.attn_dropout(a))
        x = self.ffn_norm(x + self.dropout(self.ffn(x)))
        return x, kv


class Encoder(nn.Module):
    def __init__(self, cfg: EncoderConfig):
        super().__init__()
        self.cfg = cfg
        self.embeddings = Embeddings(cfg)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.num_layers))
        self.pooler = nn.Linear(cfg.hidden_size, cfg.hidden_size) if cfg.has_pooler else None
        self.head_tensors: dict[str, torch.Tensor] = {}  # task-head tensors found in the checkpoint, if any
        # Fast path with padding: run the per-token layers on the real tokens only (True) or on the padded batch
        # (False). None picks by device, as measured by benchmarks/encoder_speed.py: packing saves the padded
        # tokens' work on a CPU (MiniLM, 32 x 128, ¼ padded: 0.89x transformers' time), but on a GPU its gathers
        # cost more than they save (H200: 20.0 ms packed, 15.5 ms padded, 19.5 ms transformers).
        self.pack: bool | None = None
        # Gradient checkpointing (Chen et al., 2016, "Training Deep Nets with Sublinear Memory Cost"): keep only
        # each block's input in the forward pass and recompute the block's activations in the backward pass, for
        # about a third more time and a fraction of the activation memory (long inputs: QA and documents at
        # 384-512 tokens). torch's checkpoint replays the random state, so dropout masks and gradients are the same.
        self.gradient_checkpointing = False
        self.apply(self._init_weights)

    def _init_weights(self, m):
        """BERT's initialisation: N(0, 0.02) weights, zero biases, LayerNorm at identity, zero padding row."""
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.Embedding) and m.padding_idx is not None:
            nn.init.zeros_(m.weight[m.padding_idx])
        if isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def use_reference_attention(self, on: bool = True) -> "Encoder":
        """Switch every layer between the written-out formula (on) and scaled_dot_product_attention (off)."""
        for layer in self.layers:
            layer.attn.fast = not on
        return self

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        """input_ids (B, T); attention_mask (B, T) of 1/0, or a (B, T, T) additive or boolean mask
        -> hidden states (B, T, H). Only real-token positions mean anything; padded ones hold whatever the layers
        computed there (zeros on the packed path)."""
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, H)
        mask = additive_mask(attention_mask, x.dtype)
        padding = attention_mask is not None and attention_mask.dim() == 2
        if padding and bool(attention_mask.all()):
            mask, padding = None, False  # nothing to hide: the unmasked kernel is faster
        if padding and self.packs(x.device):  # the speed path: minift/packing.py
            return packed_layers(self.layers, x, attention_mask, self.recomputes())
        for layer in self.layers:
            x, _ = recompute(layer, x, mask, use_reentrant=False) if self.recomputes() else layer(x, mask)
        return x

    def recomputes(self) -> bool:
        """Whether blocks are checkpointed now: asked for, and a backward pass may follow."""
        return self.gradient_checkpointing and torch.is_grad_enabled()

    def packs(self, device: torch.device) -> bool:
        """Whether a padded batch takes the packed path: `self.pack`, or by device when None, and only with the
        fast attention (the reference path stays the formula)."""
        pack = self.pack if self.pack is not None else device.type == "cpu"
        return pack and all(layer.attn.fast for layer in self.layers)

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """The pretrained pooler: tanh(W h[CLS] + b), (B, T, H) -> (B, H)."""
        if self.pooler is None:
            raise ValueError(f"a {self.cfg.model_type} checkpoint has no pooler; pool with [CLS] or the mean")
        return torch.tanh(self.pooler(hidden[:, 0]))

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, revision: str | None = None) -> "Encoder":
        """Build the encoder from a checkpoint folder or Hub id, check every tensor fits, and load them."""
        folder = checkpoint.resolve(name_or_path, revision)
        cfg = EncoderConfig.from_file(folder / "config.json")
        tensors, heads, unknown = checkpoint.to_minift_names(checkpoint.read_tensors(folder), cfg.model_type)
        model = cls(cfg)
        if cfg.has_pooler and "pooler.weight" not in tensors:  # e.g. a checkpoint saved without its pooler
            model.pooler = None
            cfg.has_pooler = False
        shapes = {name: tuple(p.shape) for name, p in model.state_dict().items()}
        checkpoint.check_fit(shapes, tensors, unknown, source=str(folder))
        model.load_state_dict(tensors)
        model.head_tensors = heads
        if heads:
            log.info("%s: task-head tensors not part of the encoder: %s", folder, ", ".join(sorted(heads)))
        return model

    def set_dropout(self, hidden: float | None = None, attention: float | None = None) -> "Encoder":
        """Override the checkpoint's dropout rates (`--dropout`, `--attention-dropout`; None keeps one): every
        hidden-state dropout layer and the attention-probability dropout, and the config that is saved with the
        model (a task head built afterwards takes `hidden` too, as Hugging Face's classifier_dropout does)."""
        for name, p in (("hidden", hidden), ("attention", attention)):
            if p is not None and not 0.0 <= p < 1.0:
                raise ValueError(f"{name} dropout {p}: must lie in [0, 1)")
        if hidden is not None:
            self.cfg.hidden_dropout = hidden
            for m in self.modules():
                if isinstance(m, nn.Dropout):
                    m.p = hidden
        if attention is not None:
            self.cfg.attention_dropout = attention
            for m in self.modules():
                if isinstance(m, SelfAttention):
                    m.dropout_p = attention
        return self

    def hf_state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """The weights under their Hugging Face names, e.g. `bert.` + `encoder.layer.0.attention.self.query.weight`."""
        family = self.cfg.model_type
        return {prefix + checkpoint.rename(name, family, reverse=True): t for name, t in self.state_dict().items()}

    def save_pretrained(self, folder: str | Path, head_tensors: dict | None = None, config: dict | None = None,
                        prefix: str = "") -> None:
        """Write `config.json` and `model.safetensors` with the original (Hugging Face) names.

        A task model passes its head's tensors (already under Hugging Face names), its extra config fields
        (`architectures`, `id2label`, ...) and the family prefix (`bert.`) that a model with a head uses."""
        base = architecture(self.cfg.model_type)  # BertModel, RobertaModel, DistilBertModel
        checkpoint.write_tensors(folder, {**self.hf_state_dict(prefix), **(head_tensors or {})},
                                 {**self.cfg.to_dict(), "architectures": [base], **(config or {})})

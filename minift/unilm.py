"""Generation with one encoder: the UniLM sequence-to-sequence mask and the prefix language model it makes.

Follows Dong et al. (2019), "Unified Language Model Pre-training for Natural Language Understanding and
Generation" (UniLM), §2.3: source and target are packed into one sequence, and the self-attention mask alone
turns a bidirectional encoder into a conditional generator. For one row of a batch:

    x        = [CLS] s_1 .. s_n [SEP] t_1 .. t_m  [PAD] ..            token ids (B, T)
    segments =   0    0  ..  0    0    1  ..  1     0   ..            token type ids (B, T)
    S = n + 2 source tokens, L = S + m real tokens, T >= L the padded width

    M[i, j] = 1 (query i may attend key j)  iff  i, j < L and (j < S or S <= i and j <= i),  and M[i, i] = 1

The source sees the whole source and nothing of the target; a target token sees the source and the target tokens
up to itself. A padded query row sees only itself, so that no row is empty (an all-masked row is NaN under
softmax, and NaN times a zero weight is still NaN); no real query sees a padded key. Drawn for S = 3, m = 2, T = 6:

                 keys  [CLS] s_1 [SEP] t_1  t_2  [PAD]
    query [CLS]          1    1    1    0    0    0
          s_1            1    1    1    0    0    0
          [SEP]          1    1    1    0    0    0
          t_1            1    1    1    1    0    0
          t_2            1    1    1    1    1    0
          [PAD]          0    0    0    0    0    1

Next-token objective (minift's choice, see minift/tasks/seq2seq.py): the hidden state at [SEP] (the last source
position) predicts t_1, the one at t_i predicts t_{i+1}, and the one at t_m predicts [SEP], the end. So the target
[SEP] is never an input, and decoding is a prefix language model: run the source, read the next token off the last
position, feed it in, repeat.

Why caching is exact: every operation of a post-LN block except attention works on each position alone, and under
M a source position's attention never reads a target key. So the source's hidden states and per-layer keys and
values are the same with or without a target after it (by induction over the layers): run the source once and keep
its K, V. A target position reads only keys at or before it, so feeding one new position at a time, with the K, V of
all earlier positions cached, computes what the full sequence computes at that position.

Cache layout with right-padded sources: the cache holds the source's keys at 0 .. S_max - 1 (row b's are real up
to S_b) and the k-th generated token's at S_max + k, while that token's position id is S_b + k, as in the packed
sequence. Its mask row allows keys j < S_b and S_max <= j <= S_max + k: the padding between is hidden.
"""
from __future__ import annotations

import torch
from torch import nn

from minift.batching import pad_batch
from minift.encoder import Encoder, additive_mask
from minift.heads import LMHead


def seq2seq_mask(source_lengths: torch.Tensor, lengths: torch.Tensor, width: int) -> torch.Tensor:
    """The UniLM seq2seq mask above, as booleans (B, T, T), True where query i may attend key j.

    source_lengths (B,): S_b, the [CLS] source [SEP] tokens; lengths (B,): L_b, all real tokens; width: T."""
    i = torch.arange(width, device=lengths.device)[:, None]  # (T, 1) queries
    j = torch.arange(width, device=lengths.device)[None, :]  # (1, T) keys
    S, L = source_lengths[:, None, None], lengths[:, None, None]  # (B, 1, 1)
    allowed = (i < L) & (j < L) & ((j < S) | ((i >= S) & (j <= i)))  # (B, T, T)
    return allowed | (i == j)


class Seq2SeqLM(nn.Module):
    """Encoder + LM head under the seq2seq mask. `forward` runs packed sequences (training, and decoding without a
    cache); `start` and `step` decode with a cache of keys and values."""

    def __init__(self, encoder: Encoder):
        super().__init__()
        self.encoder = encoder
        self.head = LMHead(encoder)

    def segments(self, token_type_ids: torch.Tensor) -> torch.Tensor:
        """Segment 1 for the target where the model has two token types (BERT); 0 where it has one (RoBERTa)."""
        return token_type_ids if (self.encoder.cfg.type_vocab_size or 0) >= 2 else torch.zeros_like(token_type_ids)

    def forward(self, input_ids, attention_mask, token_type_ids) -> torch.Tensor:
        """Packed, right-padded sequences (B, T) -> hidden states (B, T, H). The source is the real tokens of
        segment 0, so S_b and L_b come from the segments and the padding mask."""
        real = attention_mask.bool()
        source_lengths = (real & (token_type_ids == 0)).sum(1)  # (B,)
        allowed = seq2seq_mask(source_lengths, real.sum(1), input_ids.size(1))  # (B, T, T)
        return self.encoder(input_ids, allowed, self.segments(token_type_ids))  # boolean: True = may attend

    def prefix_logits(self, sources: list, prefixes: list, pad_id: int) -> torch.Tensor:
        """Without a cache: pack each source with its generated prefix, run everything, and return the logits at
        each row's last real position (B, V), the scores of the next token."""
        device = self.head.bias.device
        ids, real = pad_batch([s + p for s, p in zip(sources, prefixes)], pad_id)  # (B, T) each
        types = pad_batch([[0] * len(s) + [1] * len(p) for s, p in zip(sources, prefixes)], 0)[0]
        hidden = self(ids.to(device), real.to(device), types.to(device))  # (B, T, H)
        last = real.sum(1).to(device) - 1  # (B,)
        return self.head(hidden[torch.arange(len(last), device=device), last])  # (B, V)

    def _layers(self, x, allowed, past=None):
        """Run every block on new positions x (B, T, H) against the cached keys (`past`, one (k, v) per layer)."""
        mask = additive_mask(allowed, x.dtype)  # (B, 1, T, S)
        kv = []
        for i, layer in enumerate(self.encoder.layers):
            x, layer_kv = layer(x, mask, None if past is None else past[i])
            kv.append(layer_kv)
        return x, kv

    def start(self, source_ids, source_mask) -> tuple[torch.Tensor, dict]:
        """Run the right-padded sources (B, S_max) once: (logits of the first target token (B, V), the cache)."""
        lengths = source_mask.sum(1)  # (B,) S_b
        x = self.encoder.embeddings(source_ids, self.segments(torch.zeros_like(source_ids)))  # (B, S_max, H)
        x, kv = self._layers(x, seq2seq_mask(lengths, lengths, source_ids.size(1)))
        last = x[torch.arange(len(lengths), device=x.device), lengths - 1]  # (B, H) at each source's [SEP]
        return self.head(last), {"kv": kv, "source_lengths": lengths, "width": source_ids.size(1), "steps": 0}

    def step(self, tokens: torch.Tensor, cache: dict) -> tuple[torch.Tensor, dict]:
        """Feed one new token per row (B,): one position through every layer. -> (next logits (B, V), cache)."""
        k, width, lengths = cache["steps"], cache["width"], cache["source_lengths"]
        positions = (lengths + k + self.encoder.cfg.position_offset)[:, None]  # (B, 1): S_b + k, packed
        x = self.encoder.embeddings(tokens[:, None], self.segments(torch.ones_like(tokens[:, None])), positions)
        j = torch.arange(width + k + 1, device=tokens.device)  # keys: the source, then the generated tokens
        allowed = ((j[None, :] < lengths[:, None]) | (j[None, :] >= width))[:, None, :]  # (B, 1, S_max + k + 1)
        x, kv = self._layers(x, allowed, cache["kv"])
        return self.head(x[:, 0]), {**cache, "kv": kv, "steps": k + 1}

    @staticmethod
    def reorder(cache: dict, index: torch.Tensor) -> dict:
        """Keep the cache rows `index` (N,), in that order (beam search regroups its beams; finished rows leave)."""
        kv = [(k.index_select(0, index), v.index_select(0, index)) for k, v in cache["kv"]]
        return {**cache, "kv": kv, "source_lengths": cache["source_lengths"].index_select(0, index)}

"""The CPU speed path of the encoder: run the per-token work of a padded batch on its real tokens only.

In a post-LN block (minift/encoder.py) every operation but attention works on each position alone: the Q, K, V
and output projections, the residual additions, both LayerNorms and the feed-forward network. So for a padded
batch x (B, T, H) with N real tokens, those can run on the real tokens packed as h (N, H); and attention, which
mixes the tokens of one row, runs row by row over that row's n_b real tokens, with no mask at all:

    index = positions of the real tokens in the flattened batch (B·T)          (N,)
    h     = x.reshape(B·T, H)[index]                                           (N, H)   pack: row b's n_b tokens
    per layer:                                                                          are contiguous in h
        q, k, v = h W_q, h W_k, h W_v                                          (N, H) each
        a_b     = softmax(q_b k_bᵀ / √d) v_b  for each row b                   (n_b, H), concatenated: (N, H)
        h       = LayerNorm(h + a W_o)
        h       = LayerNorm(h + FFN(h))
    out   = unpack(h)                                                          (B, T, H), zeros at padding

The arithmetic of the real tokens is the padded path's (tests/test_encoder.py checks they agree); what is saved is
the work on padding: about the padded share of the per-token work, and in attention Σ n_b² instead of B·T² (at
T = 512 attention is most of the step). On a GPU the gathers cost more than they save, so `Encoder.pack` (None: by
device) takes this path on a CPU only; see benchmarks/encoder_speed.py.
"""
from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint as recompute


def unpack(h: torch.Tensor, index: torch.Tensor, B: int, T: int) -> torch.Tensor:
    """(N, C) real-token rows -> (B, T, C), zeros at the padded positions."""
    return h.new_zeros(B * T, h.size(-1)).index_copy(0, index, h).view(B, T, -1)


def packed_block(layer, h: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """One minift.encoder.Block on the packed real tokens h (N, H), rows of `lengths` tokens in turn -> (N, H)."""
    q, k, v = layer.attn.project_qkv(h)  # (N, H) each
    rows = zip(q.split(lengths), k.split(lengths), v.split(lengths))  # row b: (n_b, H) each
    a = torch.cat([layer.attn.attend(qb[None], kb[None], vb[None])[0][0] for qb, kb, vb in rows])  # (N, H)
    h = layer.attn_norm(h + layer.attn_dropout(layer.attn.out(a)))
    return layer.ffn_norm(h + layer.dropout(layer.ffn(h)))


def packed_layers(layers, x: torch.Tensor, attention_mask: torch.Tensor, checkpointed: bool = False) -> torch.Tensor:
    """Run the encoder's `layers` (minift.encoder.Block) on x (B, T, H) as above, given the (B, T) padding mask
    -> hidden states (B, T, H), zeros at padded positions.
    `checkpointed`: recompute each block in the backward pass (`Encoder.gradient_checkpointing`)."""
    B, T, H = x.shape
    index = attention_mask.reshape(-1).nonzero().squeeze(1)  # (N,) positions of real tokens in B·T
    lengths = [n for n in attention_mask.sum(dim=1).tolist() if n]  # real tokens of each (non-empty) row
    h = x.reshape(B * T, H)[index]  # (N, H)
    for layer in layers:
        if checkpointed:
            h = recompute(packed_block, layer, h, lengths, use_reentrant=False)
        else:
            h = packed_block(layer, h, lengths)
    return unpack(h, index, B, T)

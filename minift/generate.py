"""Decoding a sequence-to-sequence model one token at a time: greedy search and beam search, batched.

The model is a prefix language model (minift/unilm.py): given a source and the tokens generated so far, it scores
the next token, log p(y_t | x, y_<t). A hypothesis ends when it emits [SEP], or after `max_new_tokens`.

    greedy        y_t = argmax_v log p(v | x, y_<t);  score = Σ_t log p(y_t | x, y_<t)  ([SEP] included)
    beam search   keep the K best partial outputs by Σ log p; at each step extend each by every token and keep
                  the K best of the K·V; an extension by [SEP] among the K best candidates is finished (as in
                  Hugging Face's BeamSearchScorer), the others continue. A source is done as soon as K hypotheses
                  have finished ("early stopping"); the answer is the finished one with the best
                      score / length^length_penalty        (length = generated tokens, [SEP] included)
                  length_penalty 0 ranks by the plain sum of log-probabilities, > 0 favours longer outputs.
                  With K = 1 the [SEP] candidate finishes only when it is the best token, so one beam is greedy.

`cache=True` (the default) runs each source once and then one new position per step, with the keys and values of
the earlier positions cached (minift/unilm.py explains why that is exact); `cache=False` re-runs the whole packed
sequence every step. Both give the same tokens and scores (up to float rounding), which the tests check.

Rows are batched: each step scores every live row at once, and rows that finish leave the batch (the cache is
re-indexed), so a batch costs as many steps as its longest output.
"""
from __future__ import annotations

import torch

from minift.batching import pad_batch


class Decoder:
    """The next-token log-probabilities of N partial outputs, advanced a token at a time, with or without a cache.

    sources: N token id lists ([CLS] source [SEP]); `prefixes[r]` is what row r has generated so far."""

    def __init__(self, model, sources: list, pad_id: int, cache: bool = True):
        self.model, self.pad_id, self.cache_on = model, pad_id, cache
        self.sources, self.prefixes = [list(s) for s in sources], [[] for _ in sources]
        self.device = model.head.bias.device
        self.room = model.encoder.cfg.max_tokens - max(map(len, sources))  # positions left to fill
        if cache:
            ids, real = pad_batch(self.sources, pad_id)  # (N, S_max) right-padded
            self.logits, self.cache = model.start(ids.to(self.device), real.to(self.device))

    def log_probs(self) -> torch.Tensor:
        """(N, V) float32 log p(next token)."""
        logits = self.logits if self.cache_on else self.model.prefix_logits(self.sources, self.prefixes, self.pad_id)
        return logits.float().log_softmax(-1)

    def keep(self, rows: list) -> None:
        """Keep rows `rows` of the batch, in that order (a row may appear several times: beams that share a past)."""
        self.sources = [self.sources[r] for r in rows]
        self.prefixes = [list(self.prefixes[r]) for r in rows]
        if self.cache_on:
            index = torch.tensor(rows, dtype=torch.long, device=self.device)
            self.cache, self.logits = self.model.reorder(self.cache, index), self.logits.index_select(0, index)

    def push(self, tokens: list) -> None:
        """Append one token to every row and compute the next scores."""
        for prefix, t in zip(self.prefixes, tokens):
            prefix.append(t)
        if self.cache_on:
            self.logits, self.cache = self.model.step(torch.tensor(tokens, device=self.device), self.cache)


def _steps(decoder: Decoder, max_new_tokens: int) -> int:
    return max(1, min(max_new_tokens, decoder.room))


@torch.no_grad()
def greedy(model, sources: list, sep_id: int, pad_id: int, max_new_tokens: int = 64, cache: bool = True) -> list:
    """Greedy decoding of every source: a list of (generated ids without [SEP], Σ log p) per source."""
    model.eval()
    dec = Decoder(model, sources, pad_id, cache)
    out = [[] for _ in sources]
    scores = [0.0] * len(sources)
    live = list(range(len(sources)))  # the source of each row still in the batch
    steps = _steps(dec, max_new_tokens)
    for t in range(steps):
        best, token = dec.log_probs().max(-1)  # (N,) each
        still, tokens = [], []
        for row, (b, s, t) in enumerate(zip(live, best.tolist(), token.tolist())):
            scores[b] += s
            if t != sep_id:
                out[b].append(t)
                still.append(row)
                tokens.append(t)
        if not still or t == steps - 1:
            break
        if len(still) < len(live):
            dec.keep(still)
        live = [live[r] for r in still]
        dec.push(tokens)
    return list(zip(out, scores))


@torch.no_grad()
def beam_search(model, sources: list, sep_id: int, pad_id: int, beams: int = 4, length_penalty: float = 1.0,
                max_new_tokens: int = 64, cache: bool = True) -> list:
    """Beam search for every source: a list of (best hypothesis's ids without [SEP], its Σ log p) per source."""
    model.eval()
    K = beams
    dec = Decoder(model, [s for s in sources for _ in range(K)], pad_id, cache)  # row a·K + k: beam k of source a
    live = list(range(len(sources)))
    seqs = {b: [[] for _ in range(K)] for b in live}  # the tokens of each live beam
    sums = torch.full((len(sources), K), float("-inf"), device=dec.device)  # Σ log p of each live beam
    sums[:, 0] = 0.0  # at first all K beams are the same empty output: extend only one
    finished = {b: [] for b in live}  # (normalised score, tokens, Σ log p)
    steps = _steps(dec, max_new_tokens)
    for t in range(steps):
        logp = dec.log_probs()  # (len(live)·K, V)
        V = logp.size(-1)
        candidates = (sums[:, :, None] + logp.view(len(live), K, V)).view(len(live), K * V)
        top, where = candidates.topk(min(2 * K, K * V), dim=-1)  # (len(live), 2K): enough to keep K non-[SEP]
        rows, tokens, still, kept_sums = [], [], [], []
        for a, (b, scores, indices) in enumerate(zip(live, top.tolist(), where.tolist())):
            kept = []
            for rank, (s, i) in enumerate(zip(scores, indices)):
                k, token = divmod(i, V)
                if token == sep_id:
                    if rank < K and s > float("-inf"):
                        finished[b].append((s / (t + 1) ** length_penalty, seqs[b][k], s))
                elif len(kept) < K:
                    kept.append((s, k, token))
            if len(finished[b]) >= K or t == steps - 1 or not kept:
                if len(finished[b]) < K:  # out of steps: the live beams count as they are
                    finished[b] += [(s / (t + 1) ** length_penalty, seqs[b][k] + [token], s) for s, k, token in kept]
                continue
            still.append(b)
            kept += [kept[-1]] * (K - len(kept))  # never needed with 2K candidates, but keeps K rows per source
            seqs[b] = [seqs[b][k] + [token] for _, k, token in kept]
            kept_sums.append([s for s, _, _ in kept])
            rows += [a * K + k for _, k, _ in kept]
            tokens += [token for _, _, token in kept]
        if not still:
            break
        dec.keep(rows)
        dec.push(tokens)
        live, sums = still, torch.tensor(kept_sums, device=dec.device)
    best = [max(finished[b], key=lambda h: h[0]) for b in range(len(sources))]
    return [(tokens, score) for _, tokens, score in best]


def generate(model, sources: list, sep_id: int, pad_id: int, beams: int = 1, length_penalty: float = 1.0,
             max_new_tokens: int = 64, cache: bool = True) -> list:
    """Greedy for one beam, beam search for more: a list of (ids, Σ log p) per source."""
    if not sources:
        return []
    if beams <= 1:
        return greedy(model, sources, sep_id, pad_id, max_new_tokens, cache)
    return beam_search(model, sources, sep_id, pad_id, beams, length_penalty, max_new_tokens, cache)

"""Writing generated word pieces back as text, with the case, accents and spacing learned from training targets.

An uncased WordPiece vocabulary (BERT-uncased, MiniLM) lowercases and strips accents before it splits, so a model
can only generate "the vaults pub near cafe adriatic". Scored against references written "The Vaults pub near
Café Adriatic", every name and sentence start would count as a wrong word. This module learns, from the training
targets alone, how each token was written where it occurred: for every token t and the token p before it, the most
common (space before t?, characters of t in the original text), read off the tokenizer's character offsets.

    restore(p, t) = table[(p, t)]  if the pair was seen,  else table[t]  if t was seen,
                    else (not t.startswith("##"), t without "##")        (WordPiece's own rule)

Keying on the previous token is what recovers context: "the" is "The" after "." and "the" elsewhere, and
"vaults" after "the" is "Vaults". It is a truecaser and detokenizer in one table (a bigram model of surface forms,
cf. Lita et al., 2003, "tRuEcasIng"); only entries that differ from the fallback are stored.
"""
from __future__ import annotations

from collections import Counter


def _fallback(token: str) -> tuple[bool, str]:
    return (False, token[2:]) if token.startswith("##") else (True, token)


def fit_surface(tokenizer, texts: list[str]) -> dict:
    """{"pair": {"p t": [space, text]}, "token": {"t": [space, text]}} from how `texts` write their tokens."""
    enc = tokenizer(texts, return_offsets=True, padding=False, return_tensors=None, truncation=None)
    pairs, tokens = {}, {}
    for text, ids, offsets, seq in zip(texts, enc["input_ids"], enc["offsets"], enc["sequence_ids"]):
        prev, prev_end = None, None
        for t, (start, end), s in zip(ids, offsets, seq):
            if s is None or end <= start:  # special tokens
                continue
            form = (prev_end is not None and start > prev_end, text[start:end])
            pairs.setdefault(f"{prev} {t}", Counter())[form] += 1
            tokens.setdefault(str(t), Counter())[form] += 1
            prev, prev_end = t, end
    names = tokenizer.convert_ids_to_tokens([int(t) for t in tokens])
    token_table = {t: list(c.most_common(1)[0][0]) for t, c in tokens.items()}
    token_table = {t: f for (t, f), name in zip(token_table.items(), names) if tuple(f) != _fallback(name)}
    pair_table = {}
    for key, c in pairs.items():
        form = list(c.most_common(1)[0][0])
        t = key.split()[1]
        if form != token_table.get(t, list(_fallback(tokenizer.convert_ids_to_tokens([int(t)])[0]))):
            pair_table[key] = form
    return {"pair": pair_table, "token": token_table}


def restore(ids: list[int], table: dict, tokenizer) -> str:
    """Generated ids (no special tokens) -> text, each token written as the training targets wrote it."""
    out, prev = "", None
    for t, name in zip(ids, tokenizer.convert_ids_to_tokens(ids)):
        space, text = table["pair"].get(f"{prev} {t}") or table["token"].get(str(t)) or _fallback(name)
        out += (" " if space and out else "") + text
        prev = t
    return out

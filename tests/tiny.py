"""A tiny random BERT with a real WordPiece tokenizer, written to a folder: the model the CLI tests train."""
import json
import string
from pathlib import Path

import torch

from minift.config import EncoderConfig
from minift.encoder import Encoder

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def make_tiny_model(folder: Path, words=(), hidden: int = 32, layers: int = 2, seed: int = 0,
                    dropout: float = 0.1) -> Path:
    """Write vocab.txt (specials, letters, word pieces of letters, digits, punctuation, `words`), a
    tokenizer_config.json and a seeded random 2-layer BERT of hidden size 32 to `folder`; `dropout` 0 makes
    runs that differ only in how a batch is split (accumulation, processes) compute the same thing."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chars = string.ascii_lowercase + string.digits
    vocab = SPECIALS + list(chars) + ["##" + c for c in chars] + list(string.punctuation)
    vocab += sorted({w.lower() for w in words} - set(vocab))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 64}))
    torch.manual_seed(seed)
    cfg = EncoderConfig(vocab_size=len(vocab), hidden_size=hidden, num_layers=layers, num_heads=4,
                        intermediate_size=2 * hidden, max_positions=64, type_vocab_size=2, hidden_dropout=dropout,
                        attention_dropout=dropout, raw={"model_type": "bert", "hidden_dropout_prob": dropout})
    Encoder(cfg).save_pretrained(folder)
    return folder

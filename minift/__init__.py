"""minift: fine-tuning BERT-style encoders, written from scratch in plain PyTorch.

    from minift import Encoder, Tokenizer
    encoder = Encoder.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    tokenizer = Tokenizer.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    hidden = encoder(**tokenizer(["a sentence"]))   # (B, T, H)
"""
from minift.encoder import Encoder
from minift.tokenizer import Tokenizer

__version__ = "0.1.0"
__all__ = ["Encoder", "Tokenizer"]

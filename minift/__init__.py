"""minift: fine-tuning BERT-style encoders, written from scratch in plain PyTorch."""

__version__ = "0.1.0"

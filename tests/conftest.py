"""Shared test fixtures: where the read-only ../shared folder lies, and skips when it is absent.

`MINIFT_TEST_DEVICE=cuda` runs the encoder parity tests (tests/test_encoder.py) on a GPU; the default is the CPU.
"""
import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MINIFT_SHARED", ROOT.parent / "shared"))
HF_CACHE = SHARED / "hf-cache"
DATA = SHARED / "data"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
DEVICE = torch.device(os.environ.get("MINIFT_TEST_DEVICE", "cpu"))


@pytest.fixture
def shared_data():
    """Path to ../shared/data, or a skip with the reason."""
    if not DATA.is_dir():
        pytest.skip(f"real datasets not found at {DATA} (the ../shared folder beside the project root)")
    return DATA


@pytest.fixture
def minilm_hub(monkeypatch):
    """Point huggingface_hub at the offline cache holding all-MiniLM-L6-v2, or skip."""
    if not HF_CACHE.is_dir():
        pytest.skip(f"pretrained cache not found at {HF_CACHE} (the ../shared folder beside the project root)")
    monkeypatch.setenv("HF_HUB_CACHE", str(HF_CACHE))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return MINILM


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module (`pytestmark = pytest.mark.usefixtures("one_thread")`): tensors as small as
    the tiny test models' gain nothing from threads, and on a busy machine their spin-waits cost a second a step."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

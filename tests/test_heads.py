"""Task heads: pooling by formula, head shapes, tied LM weights, and loading saved head tensors."""
import pytest
import torch
from torch import nn

from minift.checkpoint import CheckpointError
from minift.config import EncoderConfig
from minift.encoder import Encoder
from minift.heads import ClassifierHead, LMHead, SpanHead, load_saved, pool


@pytest.fixture
def encoder():
    torch.manual_seed(0)
    return Encoder(EncoderConfig(vocab_size=30, hidden_size=8, num_layers=1, num_heads=2, intermediate_size=16,
                                 max_positions=16)).eval()


def test_pooling_modes_follow_their_formulas(encoder):
    hidden = torch.randn(2, 4, 8)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    assert torch.equal(pool(encoder, hidden, mask, "cls"), hidden[:, 0])
    mean = pool(encoder, hidden, mask, "mean")
    torch.testing.assert_close(mean[0], hidden[0, :2].mean(0))
    torch.testing.assert_close(mean[1], hidden[1].mean(0))
    torch.testing.assert_close(pool(encoder, hidden, mask, "pooler"),
                               torch.tanh(hidden[:, 0] @ encoder.pooler.weight.T + encoder.pooler.bias))
    with pytest.raises(ValueError, match="pooling 'max'"):
        pool(encoder, hidden, mask, "max")


def test_head_shapes_and_tied_lm_weights(encoder):
    h = torch.randn(3, 5, 8)
    assert ClassifierHead(8, 4)(h[:, 0]).shape == (3, 4)
    assert ClassifierHead(8, 4)(h).shape == (3, 5, 4)
    start, end = SpanHead(8)(h)
    assert start.shape == end.shape == (3, 5)
    lm = LMHead(encoder)
    assert lm(h).shape == (3, 5, 30)
    assert lm.word.weight is encoder.embeddings.word.weight


def test_load_saved_head_tensors():
    linear = nn.Linear(8, 3)
    saved = {"classifier.weight": torch.ones(3, 8), "classifier.bias": torch.zeros(3)}
    load_saved(linear, saved, "classifier")
    assert torch.equal(linear.weight, torch.ones(3, 8))
    before = linear.weight.clone()
    load_saved(linear, {}, "classifier")  # nothing saved: the fresh head stays
    assert torch.equal(linear.weight, before)
    with pytest.raises(CheckpointError, match="classifier has 5 outputs but this task needs 3"):
        load_saved(linear, {"classifier.weight": torch.ones(5, 8), "classifier.bias": torch.zeros(5)}, "classifier")

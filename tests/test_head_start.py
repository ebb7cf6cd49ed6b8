"""A fresh regression head starts at the mean training target, a fresh multi-label head at each label's smoothed
log odds (SentenceTask.fit_loss, build_model). Would catch: another statistic than the mean (the median, the
midrange), the mean taken in float32 and drifting on large values, frequencies without smoothing (infinite for a
label on every row), log odds of the wrong sign, a classification head moved too, a saved head overwritten by the
fresh start, and weights changed along with the bias."""
import statistics

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minift.data import LabelMap
from minift.encoder import Encoder
from minift.tasks.sentence import SentenceTask
from minift.tokenizer import Tokenizer
from tests.tiny import make_tiny_model

TARGETS = st.lists(st.floats(-1e6, 1e6, allow_nan=False) | st.sampled_from([0.0, 5.0, -3.5]), min_size=1,
                   max_size=40)
# multi-hot rows over 3 labels, including labels on every row and on none
MULTI_HOT = st.lists(st.lists(st.sampled_from([0.0, 1.0]), min_size=3, max_size=3), min_size=1, max_size=30)
COLUMNS = {"text": "text", "label": "label"}


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny"))


def task(kind: str, folder, labels=None) -> SentenceTask:
    return SentenceTask(kind, Tokenizer.from_pretrained(folder), COLUMNS, max_length=16, labels=labels)


def fitted_model(t: SentenceTask, folder, rows):
    t.fit_loss([{"labels": y} for y in rows])
    torch.manual_seed(0)
    return t.build_model(Encoder.from_pretrained(folder))


def never_fitted(kind: str, folder, labels=None):
    torch.manual_seed(0)
    return task(kind, folder, labels).build_model(Encoder.from_pretrained(folder))


@settings(max_examples=30, deadline=None)
@given(targets=TARGETS)
def test_a_fresh_regression_head_starts_at_the_mean_target_and_only_its_bias_moves(model_folder, targets):
    regression = task("regression", model_folder)
    model = fitted_model(regression, model_folder, targets)
    mean = statistics.fmean(targets)
    assert regression.head_bias.item() == pytest.approx(mean, rel=1e-12, abs=1e-9)
    assert model.head.out.bias.item() == torch.tensor(mean, dtype=torch.float32).item()
    plain = never_fitted("regression", model_folder)
    assert plain.head.out.bias.item() == 0.0
    torch.testing.assert_close(model.head.out.weight, plain.head.out.weight, rtol=0, atol=0)


@settings(max_examples=30, deadline=None)
@given(rows=MULTI_HOT)
def test_a_fresh_multilabel_head_predicts_each_labels_smoothed_frequency(model_folder, rows):
    labels = LabelMap(["a", "b", "c"], multi_label=True)
    model = fitted_model(task("multilabel", model_folder, labels), model_folder, [torch.tensor(r) for r in rows])
    bias = model.head.out.bias.detach().double().requires_grad_()
    assert torch.isfinite(bias).all()
    # The oracle: the best constant logit under PyTorch's own BCE on the rows plus half a positive and half a
    # negative per label (the smoothing); at the start the gradient of that loss must vanish.
    y = torch.tensor(rows, dtype=torch.float64)  # (n, 3)
    smoothed = torch.cat([y, torch.full((1, 3), 1.0), torch.zeros(1, 3)])  # (n + 2, 3)
    weights = torch.cat([torch.ones(len(rows), 3), torch.full((2, 3), 0.5)]).double()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(bias.expand_as(smoothed), smoothed, weights,
                                                                reduction="sum")
    (grad,) = torch.autograd.grad(loss, bias)
    assert grad.abs().max().item() < 1e-5 * (len(rows) + 1)  # float32 bias: its rounding, nothing more
    assert torch.sign(bias.detach()).tolist() == torch.sign(y.sum(0) + 0.5 - (len(rows) + 1) / 2).tolist()
    torch.testing.assert_close(model.head.out.weight, never_fitted("multilabel", model_folder, labels).head.out.weight,
                               rtol=0, atol=0)


def test_a_classification_head_starts_at_zero(model_folder):
    t = task("classification", model_folder, LabelMap(["neg", "pos"]))
    model = fitted_model(t, model_folder, [0, 1, 1])
    assert t.head_bias is None and torch.count_nonzero(model.head.out.bias) == 0


def test_a_saved_head_is_loaded_as_saved_not_moved_to_the_new_start(model_folder):
    first = task("regression", model_folder)
    assert fitted_model(first, model_folder, [2.0, 4.0]).head.out.bias.item() == 3.0
    encoder = Encoder.from_pretrained(model_folder)
    encoder.head_tensors = {"classifier.weight": torch.zeros(1, encoder.cfg.hidden_size),
                            "classifier.bias": torch.tensor([3.0])}  # as a saved minift regression model has it
    again = task("regression", model_folder)
    again.fit_loss([{"labels": 10.0}])  # e.g. further training on other rows: the saved head still wins
    assert again.build_model(encoder).head.out.bias.item() == 3.0

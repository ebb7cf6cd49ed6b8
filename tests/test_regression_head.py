"""A fresh regression head starts at the mean training target (SentenceTask.fit_loss, build_model). Would catch:
another statistic than the mean (the median, the midrange), the mean taken in float32 and drifting on large
values, a classification or multi-label head moved too, a saved head overwritten by the fresh start, and
weights changed along with the bias."""
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
COLUMNS = {"text": "text", "label": "label"}


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny"))


def task(kind: str, folder, labels=None) -> SentenceTask:
    return SentenceTask(kind, Tokenizer.from_pretrained(folder), COLUMNS, max_length=16, labels=labels)


@settings(max_examples=30, deadline=None)
@given(targets=TARGETS)
def test_a_fresh_regression_head_starts_at_the_mean_target_and_only_its_bias_moves(model_folder, targets):
    regression = task("regression", model_folder)
    regression.fit_loss([{"labels": y} for y in targets])
    torch.manual_seed(0)
    model = regression.build_model(Encoder.from_pretrained(model_folder))
    mean = statistics.fmean(targets)
    assert regression.target_mean == pytest.approx(mean, rel=1e-12, abs=1e-9)
    assert model.head.out.bias.item() == torch.tensor(mean, dtype=torch.float32).item()
    torch.manual_seed(0)
    plain = task("regression", model_folder).build_model(Encoder.from_pretrained(model_folder))  # never fitted
    assert plain.head.out.bias.item() == 0.0
    torch.testing.assert_close(model.head.out.weight, plain.head.out.weight, rtol=0, atol=0)


def test_classification_and_multilabel_heads_start_at_zero(model_folder):
    for kind, labels, rows in (("classification", LabelMap(["neg", "pos"]), [0, 1, 1]),
                               ("multilabel", LabelMap(["a", "b"], multi_label=True), [[1.0, 0.0], [1.0, 1.0]])):
        t = task(kind, model_folder, labels)
        t.fit_loss([{"labels": y} for y in rows])
        assert t.target_mean is None
        assert torch.count_nonzero(t.build_model(Encoder.from_pretrained(model_folder)).head.out.bias) == 0


def test_a_saved_head_is_loaded_as_saved_not_moved_to_the_new_mean(model_folder, tmp_path):
    first = task("regression", model_folder)
    first.fit_loss([{"labels": 2.0}, {"labels": 4.0}])
    saved_bias = first.build_model(Encoder.from_pretrained(model_folder)).head.out.bias.item()
    assert saved_bias == 3.0
    encoder = Encoder.from_pretrained(model_folder)
    encoder.head_tensors = {"classifier.weight": torch.zeros(1, encoder.cfg.hidden_size),
                            "classifier.bias": torch.tensor([3.0])}  # as a saved minift regression model has it
    again = task("regression", model_folder)
    again.fit_loss([{"labels": 10.0}])  # e.g. further training on other rows: the saved head still wins
    assert again.build_model(encoder).head.out.bias.item() == 3.0

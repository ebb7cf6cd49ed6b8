"""Inference (`evaluate`, `predict`) runs the rows sorted by length, under inference_mode, and gives the outputs
back in input order. Would catch: outputs left in sorted order, batches cut in file order (more padding), and
autograd bookkeeping left on during inference."""
import torch

from minift.data import Example, LabelMap
from minift.encoder import Encoder
from minift.tasks.sentence import SentenceTask
from minift.tokenizer import Tokenizer
from tests.tiny import make_tiny_model

WORDS = ["good", "bad", "film", "plot", "was", "the"]
TEXTS = ["the film was good and the plot was good", "bad", "the plot was bad", "good", "film was good",
         "the film was bad bad bad bad bad", "plot", "was the film good or bad"]


def test_logits_run_sorted_by_length_and_come_back_in_input_order(tmp_path):
    folder = make_tiny_model(tmp_path, WORDS)
    task = SentenceTask("classification", Tokenizer.from_pretrained(folder), {"text": "text", "label": "label"},
                        max_length=16, labels=LabelMap(["neg", "pos"]))
    features = task.featurize([Example(t, label="pos") for t in TEXTS])
    torch.manual_seed(0)
    model = task.build_model(Encoder.from_pretrained(folder)).double()  # float64: row results do not depend on
    widths, grad_modes = [], []  # the batch they ran in beyond rounding far under 1e-12

    def record(module, args):
        widths.append(tuple(args[0].shape))
        grad_modes.append(torch.is_inference_mode_enabled())
    model.encoder.register_forward_pre_hook(record)
    together = task.logits(model, features, batch_size=3)
    lengths = sorted(len(f["input_ids"]) for f in features)
    assert widths == [(3, lengths[2]), (3, lengths[5]), (2, lengths[7])] and all(grad_modes)
    one_by_one = torch.cat([task.logits(model, [f], batch_size=1) for f in features])
    assert torch.allclose(together, one_by_one, rtol=0, atol=1e-12)
    assert not together.requires_grad and together.shape == (len(TEXTS), 2)
    rows = task.predict(model, [Example(t) for t in TEXTS], batch_size=3)
    assert [r["text"] for r in rows] == TEXTS

"""Seq2seq task: packing, the LM head's checkpoint names, surface forms, a copy task learned exactly, the CLI."""
import json

import pytest
import torch

from minift import evaluate, predict, train
from minift.encoder import Encoder
from minift.heads import LMHead
from minift.surface import fit_surface, restore
from minift.tasks.seq2seq import Seq2SeqTask, pack
from minift.tokenizer import Tokenizer
from tests.test_train_cli import write_csv
from tests.tiny import make_tiny_model

WORDS = ["alice", "bob", "carol", "paris", "london", "went", "to", "met", "in", "the", "vaults", "pub", "cafe"]
SOURCES = ["alice went to paris", "bob met carol in london", "carol went to london", "the vaults pub in paris",
           "bob went to the cafe"]
PAIRS = [(s, " ".join(s.split()[::-1])) for s in SOURCES]  # the copy task, backwards


def write_pairs(path, rows):
    return write_csv(path, ["mr", "ref"], rows)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("s2s")
    model = make_tiny_model(d / "model", WORDS)
    return {"dir": d, "model": str(model), "tok": Tokenizer.from_pretrained(model),
            "train": write_pairs(d / "train.csv", PAIRS * 4)}


def task_for(tok, **kw):
    return Seq2SeqTask("seq2seq", tok, {"text": "mr", "label": "ref"}, max_length=32, max_target_length=12, **kw)


def test_pack_puts_each_target_token_one_step_after_its_input():
    f = pack([2, 10, 11, 3], [20, 21, 3])  # [CLS] s s [SEP] + t_1 t_2 [SEP]
    assert f["input_ids"] == [2, 10, 11, 3, 20, 21]
    assert f["token_type_ids"] == [0, 0, 0, 0, 1, 1]
    assert f["labels"] == [-100, -100, -100, 20, 21, 3]  # [SEP] predicts t_1, t_1 predicts t_2, t_2 predicts [SEP]


def test_featurize_cuts_the_target_and_keeps_its_end(tiny):
    task = task_for(tiny["tok"])
    examples = task.read(tiny["train"])
    f = task.featurize(examples[:1])[0]
    assert f["source"] == "alice went to paris" and f["target"] == "paris to went alice"
    assert f["labels"][-1] == tiny["tok"].sep_id
    task.max_target_length = 2
    short = task.featurize(examples[:1])[0]
    assert short["labels"][-2:] == [tiny["tok"].token_to_id("paris"), tiny["tok"].sep_id]


def test_lm_head_loads_cls_predictions_and_saves_them_back(tiny):
    encoder = Encoder.from_pretrained(tiny["model"])
    head = LMHead(encoder)
    saved = {k: torch.randn_like(v) for k, v in head.hf_tensors("bert").items()}
    assert set(saved) == {"cls.predictions.bias", "cls.predictions.transform.dense.weight",
                          "cls.predictions.transform.dense.bias", "cls.predictions.transform.LayerNorm.weight",
                          "cls.predictions.transform.LayerNorm.bias"}
    assert head.load_saved(saved, "bert")
    assert all(torch.equal(saved[k], v) for k, v in head.hf_tensors("bert").items())
    fresh = LMHead(encoder)
    assert not fresh.load_saved({}, "bert") and torch.all(fresh.bias == 0)  # no head in the checkpoint: initialised


def test_saved_model_is_a_masked_lm_checkpoint_transformers_reads(tiny, tmp_path):
    transformers = pytest.importorskip("transformers")
    task = task_for(tiny["tok"])
    model = task.build_model(Encoder.from_pretrained(tiny["model"])).eval()
    with torch.no_grad():
        model.head.bias.normal_()
    task.save(model, tmp_path)
    reloaded = task.build_model(Encoder.from_pretrained(tmp_path))
    assert torch.equal(reloaded.head.bias, model.head.bias)
    hf = transformers.BertForMaskedLM.from_pretrained(tmp_path).eval()
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    with torch.no_grad():
        ours = model.head(model.encoder(ids))
        theirs = hf(input_ids=ids).logits
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_surface_forms_restore_case_accents_and_spacing(tiny):
    tok = tiny["tok"]  # uncased: "Café" becomes "cafe"; words outside its vocabulary become letter pieces
    texts = ["The Vaults pub near Café Adriatic.", "Near Café Adriatic, the Vaults is a pub.", "the pub is fine."]
    table = fit_surface(tok, texts)
    for text in texts[:2]:
        ids = tok(text, return_tensors=None)["input_ids"][0][1:-1]
        assert restore(ids, table, tok) == text
    assert restore(tok("the pub", return_tensors=None)["input_ids"][0][1:-1], table, tok) == "The pub"
    assert restore(tok("bob met", return_tensors=None)["input_ids"][0][1:-1], table, tok) == "bob met"  # unseen


def test_a_tiny_model_learns_five_pairs_exactly(tiny):
    torch.manual_seed(0)
    task = task_for(tiny["tok"])
    examples = task.read(tiny["train"])[:5]
    task.fit_labels(examples)
    model = task.build_model(Encoder.from_pretrained(tiny["model"]))
    features = task.featurize(examples)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    model.train()
    batch = next(task.batches(features, 5))
    for _ in range(80):
        total, n = task.loss(model, batch)
        opt.zero_grad()
        (total / n).backward()
        opt.step()
    sources = [f["source_ids"] for f in features]
    assert task.generate(model, sources) == [t for _, t in PAIRS]
    assert task.generate(model, sources, beams=3) == [t for _, t in PAIRS]
    scores = task.evaluate(model, features)
    assert scores["bleu"] == pytest.approx(100.0) and scores["rougeL"] == pytest.approx(100.0)


def test_evaluate_groups_rows_by_source_as_references(tiny):
    task = task_for(tiny["tok"])
    rows = [("a b", "w x y z"), ("a b", "z y x w"), ("c", "v w x y")]
    examples = task.read(write_pairs(tiny["dir"] / "multi.csv", rows))
    task.generate = lambda model, sources, *a, **k: ["z y x w", "v w x y"]  # stand-in for the model
    scores = task.evaluate(None, task.featurize(examples))
    assert scores["sources"] == 2 and scores["bleu"] == pytest.approx(100.0)  # the first matches its second reference


def test_train_evaluate_predict_commands(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    results = train.train(train.parser().parse_args(
        ["--task", "seq2seq", "--train", tiny["train"], "--valid", tiny["train"], "--source-col", "mr",
         "--target-col", "ref", "--model", tiny["model"], "--out", str(out), "--epochs", "2", "--batch-size", "8",
         "--lr", "1e-3", "--max-target-length", "8", "--max-eval-sources", "3", "--quiet"]))
    assert set(results["valid"]) == {"bleu", "rouge1", "rouge2", "rougeL", "rougeLsum", "sources"}
    assert [row["valid"]["sources"] for row in map(json.loads, (out / "metrics.jsonl").open())] == [3, 3]
    assert results["valid"]["sources"] == 5  # the saved model scores every source
    meta = json.loads((out / "minift.json").read_text())
    assert meta["task"] == "seq2seq" and meta["columns"] == {"text": "mr", "label": "ref"}
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    capsys.readouterr()
    evaluate.main(["--model", str(out), "--data", tiny["train"]])
    assert json.loads(capsys.readouterr().out)["sources"] == 5
    predict.main(["--model", str(out), "--text", "alice went to paris", "--text", "bob met carol", "--beams", "2"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["alice went to paris", "bob met carol"]
    assert all(isinstance(r["generated"], str) for r in rows)

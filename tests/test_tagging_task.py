"""NER task: CoNLL reading, label alignment on word pieces, windows decoded back to words, the CLI end to end."""
import json
import random
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minift import evaluate, predict, train
from minift.data import DataError, LabelMap
from minift.tasks.tagging import Sentence, TaggerModel, TaggingTask, inside_tag, read_conll, split_words
from minift.tokenizer import Tokenizer
from tests.tiny import make_tiny_model

PEOPLE, PLACES = ["alice", "bob", "carol"], ["paris", "london", "berlin"]
OTHER = ["went", "to", "with", "and", "the", "city", "today", "met"]


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def sentences(n, seed=0):
    """n random CoNLL sentences with PER (sometimes two words) and LOC entities."""
    rng, out = random.Random(seed), []
    for _ in range(n):
        rows = []
        for _ in range(rng.randint(3, 10)):
            r = rng.random()
            if r < 0.2:
                rows += [(rng.choice(PEOPLE).capitalize(), "B-PER")] + [("Smithson", "I-PER")] * (rng.random() < .3)
            elif r < 0.35:
                rows.append((rng.choice(PLACES).capitalize(), "B-LOC"))
            else:
                rows.append((rng.choice(OTHER), "O"))
        out.append(rows)
    return out


def conll(sents):
    return "-DOCSTART- -X- O O\n\n" + "".join("".join(f"{w}\t{t}\n" for w, t in s) + "\t\n" for s in sents)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("ner")
    model = make_tiny_model(d / "model", PEOPLE + PLACES + OTHER)
    return {"dir": d, "model": str(model), "tok": Tokenizer.from_pretrained(model),
            "train": write(d / "train.conll", conll(sentences(30))),
            "valid": write(d / "valid.conll", conll(sentences(8, seed=1)))}


# ---- reading ----
def test_read_conll_columns_blank_lines_and_docstart(tmp_path):
    path = write(tmp_path / "a.conll", "-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n \t\n"
                                       "\nPeter\tB-PER\nBlackburn  I-PER\n")
    got = read_conll(path)
    assert [s.words for s in got] == [["EU", "rejects"], ["Peter", "Blackburn"]]
    assert [s.tags for s in got] == [["B-ORG", "O"], ["B-PER", "I-PER"]]
    assert [s.line for s in got] == [3, 7]
    assert read_conll(write(tmp_path / "b.conll", "Peter\nruns\n"), need_labels=False)[0].words == ["Peter", "runs"]


@pytest.mark.parametrize("line,message", [("Peter\n", "line 2: expected `token<TAB>tag`"),
                                          ("Peter\tPERSON\n", "line 2: the tag 'PERSON' is not a BIO tag")])
def test_read_conll_names_file_and_line_of_a_bad_row(tmp_path, line, message):
    path = write(tmp_path / "bad.conll", "EU\tB-ORG\n" + line)
    with pytest.raises(DataError, match=message) as e:
        read_conll(path)
    assert path in str(e.value)


def test_split_words_keeps_character_spans():
    words, spans = split_words("Zoë's café, in São Paulo!")
    assert words == ["Zoë", "'", "s", "café", ",", "in", "São", "Paulo", "!"]
    assert all("Zoë's café, in São Paulo!"[a:b] == w for w, (a, b) in zip(words, spans))


def test_inside_tag_and_label_set():
    assert [inside_tag(t) for t in ("B-LOC", "I-LOC", "O")] == ["I-LOC", "I-LOC", "O"]
    task = TaggingTask("ner", None, label_all_subtokens=True)
    task.fit_labels([Sentence(["a", "b"], ["B-PER", "O"])])
    assert task.labels.names == ["B-PER", "I-PER", "O"]


# ---- label alignment ----
WORDS = ["Jürgen", "Klopp", "visited", "Lüdenscheid", ",", "São", "Paulo", "!"]
TAGS = ["B-PER", "I-PER", "O", "B-LOC", "O", "B-LOC", "I-LOC", "O"]


def test_label_alignment_on_minilm_pieces(minilm_hub):
    task = TaggingTask("ner", Tokenizer.from_pretrained(minilm_hub), labels=LabelMap(sorted(set(TAGS))))
    [w] = task.featurize([Sentence(WORDS, TAGS, 1)])
    tokens = task.tokenizer.convert_ids_to_tokens(w["input_ids"])
    assert tokens == ["[CLS]", "jurgen", "k", "##lo", "##pp", "visited", "lu", "##den", "##sche", "##id", ",", "sao",
                      "paulo", "!", "[SEP]"]
    expect = [None, "B-PER", "I-PER", None, None, "O", "B-LOC", None, None, None, "O", "B-LOC", "I-LOC", "O", None]
    assert w["labels"] == [-100 if t is None else task.labels.encode(t) for t in expect]
    task.label_all_subtokens = True  # the later pieces of "Klopp" and "Lüdenscheid" take the I- form
    [w] = task.featurize([Sentence(WORDS, TAGS, 1)])
    expect = [None, "B-PER", "I-PER", "I-PER", "I-PER", "O", "B-LOC", "I-LOC", "I-LOC", "I-LOC", "O", "B-LOC",
              "I-LOC", "O", None]
    assert w["labels"] == [-100 if t is None else task.labels.encode(t) for t in expect]


def test_label_alignment_on_the_tiny_tokenizer(tiny):
    task = TaggingTask("ner", tiny["tok"], labels=LabelMap(["B-LOC", "O"]))
    [w] = task.featurize([Sentence(["paris", "xyz", "!"], ["B-LOC", "O", "O"], 1)])  # xyz -> x ##y ##z
    assert task.tokenizer.convert_ids_to_tokens(w["input_ids"]) == ["[CLS]", "paris", "x", "##y", "##z", "!", "[SEP]"]
    assert w["labels"] == [-100, 0, 1, -100, -100, 1, -100]
    [w] = task.featurize([Sentence(["a", "b"], ["O", "B-ORG"], 7)])  # a tag unseen in training: no loss
    assert w["labels"] == [-100, 1, -100, -100]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lengths=st.lists(st.integers(1, 7), min_size=1, max_size=30), max_length=st.integers(5, 12),
       stride_share=st.floats(0, 0.99))
def test_windows_cover_every_word_once_after_decoding(tiny, lengths, max_length, stride_share):
    """Random words of 1-7 letters: windows reproduce the whole sentence's tokens at their positions, and decoding
    gives every word the tag of its own first piece (logits encode the word's index)."""
    stride = int(stride_share * (max_length - 2))
    words = ["".join("abcdefg"[(i + j) % 7] for j in range(n)) for i, n in enumerate(lengths)]
    task = TaggingTask("ner", tiny["tok"], max_length, LabelMap([f"B-W{i}" for i in range(len(words))]), stride)
    windows = task.featurize([Sentence(words)], with_labels=False)
    full = tiny["tok"](words, is_split_into_words=True, truncation=None, padding=False, return_tensors=None)
    for w in windows:
        for t, pos in enumerate(w["positions"]):
            if pos is not None:
                assert w["input_ids"][t] == full["input_ids"][0][pos + 1]
    covered = {p for w in windows for p in w["positions"] if p is not None}
    assert covered == set(range(len(full["input_ids"][0]) - 2))
    logits = [torch.nn.functional.one_hot(torch.tensor([x if x is not None else 0 for x in w["words"]]),
                                          len(words)).float() for w in windows]
    assert task.decode(logits, windows, [len(words)]) == [[f"B-W{i}" for i in range(len(words))]]


def test_decode_takes_the_window_with_most_context():
    """Word 2 is in both windows: at the right edge of the first, in the middle of the second."""
    task = TaggingTask("ner", None, labels=LabelMap(["A", "B"]))
    first = {"sentence": 0, "words": [None, 0, 1, 2, None], "first": [False, True, True, True, False]}
    second = {"sentence": 0, "words": [None, 1, 2, 3, None], "first": [False, True, True, True, False]}
    a, b = torch.tensor([[0., 0], [1, 0], [1, 0], [1, 0], [0, 0]]), torch.tensor([[0., 0], [0, 1], [0, 1], [0, 1],
                                                                                   [0, 0]])
    assert task.decode([a, b], [first, second], [5]) == [["A", "A", "B", "B", "O"]]  # word 4 has no token: O
    tie = {"sentence": 0, "words": [None, 0, 1, None], "first": [False, True, True, False]}
    later = {"sentence": 0, "words": [None, 1, 2, None], "first": [False, True, True, False]}
    a, b = torch.tensor([[0., 0], [1, 0], [1, 0], [0, 0]]), torch.tensor([[0., 0], [0, 1], [0, 1], [0, 0]])
    assert task.decode([a, b], [tie, later], [3]) == [["A", "A", "B"]]  # word 1: no context in either; the first


# ---- model, loss, prediction with a model whose output we choose ----
class Lookup(torch.nn.Module):
    """Logits (B, T, C) that put 10 on the tag `table` gives each token id (and on `default` elsewhere)."""

    def __init__(self, table, num_labels, default):
        super().__init__()
        self.table, self.num_labels, self.default = table, num_labels, default

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        ids = input_ids.clone().apply_(lambda i: self.table.get(i, self.default))
        return 10 * torch.nn.functional.one_hot(ids, self.num_labels).float()


def lookup_task(tiny):
    task = TaggingTask("ner", tiny["tok"], max_length=8, labels=LabelMap(["B-LOC", "B-PER", "I-PER", "O"]), stride=2)
    table = {tiny["tok"].token_to_id(w): 0 for w in PLACES} | {tiny["tok"].token_to_id(w): 1 for w in PEOPLE}
    return task, Lookup(table, 4, default=3)


def test_predict_returns_entities_with_character_spans(tiny):
    task, model = lookup_task(tiny)
    text = "Then Alice met bob, today, in Paris and London!"
    [row] = task.predict(model, [task.example(text)])
    assert row["entities"] == [{"text": "Alice", "type": "PER", "start": 5, "end": 10},
                               {"text": "bob", "type": "PER", "start": 15, "end": 18},
                               {"text": "Paris", "type": "LOC", "start": 30, "end": 35},
                               {"text": "London", "type": "LOC", "start": 40, "end": 46}]
    assert task.predict_tags(model, [Sentence(["bob", "xyz"])]) == [["B-PER", "O"]]


def test_evaluate_scores_original_words_and_per_type(tiny):
    task, model = lookup_task(tiny)
    gold = [Sentence(["alice", "went", "to", "paris", "with", "bob", "today"],
                     ["B-PER", "O", "O", "B-LOC", "O", "B-LOC", "O"], 1),  # bob gold LOC, predicted PER
            Sentence(["the", "city"], ["B-ORG", "I-ORG"], 9)]  # a type never trained: still a gold entity
    scores = task.evaluate(model, task.featurize(gold))
    assert len(task.featurize(gold)) > 2  # max_length 8 cuts the first sentence into windows
    assert scores["precision"] == pytest.approx(2 / 3) and scores["recall"] == pytest.approx(2 / 4)
    assert scores["per_type"]["ORG"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert scores["per_type"]["LOC"] == {"precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3), "support": 2}
    assert scores["per_type"]["PER"]["precision"] == 0.5


def test_loss_counts_labelled_tokens_and_matches_torch(tiny):
    task = TaggingTask("ner", tiny["tok"], labels=LabelMap(["B-LOC", "O"]))
    model = task.build_model(make_encoder(tiny))
    assert isinstance(model, TaggerModel)
    [batch] = task.batches(task.featurize([Sentence(["paris", "xyz"], ["B-LOC", "O"]), Sentence(["a"], ["O"])]), 8)
    model.eval()
    total, count = task.loss(model, batch)
    assert count == 3
    logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    expect = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(), reduction="sum")
    torch.testing.assert_close(total, expect)
    assert [len(z) for z in task.logits(model, task.featurize([Sentence(["a"], ["O"])]))] == [3]


def make_encoder(tiny):
    from minift.encoder import Encoder
    return Encoder.from_pretrained(tiny["model"])


# ---- the commands ----
@pytest.fixture(scope="module")
def trained(tiny):
    out = tiny["dir"] / "run"
    results = train.train(train.parser().parse_args([
        "--task", "ner", "--train", tiny["train"], "--valid", tiny["valid"], "--model", tiny["model"], "--out",
        str(out), "--max-steps", "3", "--batch-size", "8", "--lr", "1e-3", "--max-length", "10", "--quiet"]))
    return out, results


def test_train_writes_a_token_classification_model(trained, tiny, capsys):
    out, results = trained
    assert {"config.json", "model.safetensors", "tokenizer.json", "minift.json", "metrics.jsonl",
            "results.json"} <= {p.name for p in out.iterdir()}
    assert set(results["valid"]) == {"precision", "recall", "f1", "per_type"}
    meta = json.loads((out / "minift.json").read_text())
    assert meta["task"] == "ner" and meta["labels"] == ["B-LOC", "B-PER", "I-PER", "O"] and meta["stride"] == 2
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForTokenClassification"] and config["id2label"]["1"] == "B-PER"
    task = TaggingTask.from_meta(meta, tiny["tok"])
    assert meta.pop("train_settings")["lr"] == 1e-3  # the run's, beside the task's own settings
    assert meta.pop("training")["data"]["train_rows"] == 58  # what the run was trained on (the model card)
    assert task.meta() == meta
    evaluate.main(["--model", str(out), "--data", tiny["valid"]])
    scores = json.loads(capsys.readouterr().out)
    assert scores["f1"] == pytest.approx(results["valid"]["f1"]) and "per_type" in scores
    predict.main(["--model", str(out), "--text", "Alice went to Paris", "--text", "bob"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [len(r["tags"]) for r in rows] == [4, 1]
    assert all(r["text"][e["start"]:e["end"]] == e["text"] for r in rows for e in r["entities"])
    predict.main(["--model", str(out), "--data", tiny["valid"]])
    assert len(capsys.readouterr().out.splitlines()) == 8


def test_accumulation_of_token_losses_equals_a_larger_batch(tiny, tmp_path):
    """NER normalises by labelled tokens, which differ between micro-batches: two micro-batches of 4 windows per
    update (the epoch's last one shorter) give the weights of batches of 8 only if the update divides by the
    tokens of both. Dropout off."""
    model = make_tiny_model(tmp_path / "nodrop", PEOPLE + PLACES + OTHER, dropout=0.0)
    common = ["--task", "ner", "--train", tiny["train"], "--valid", tiny["valid"], "--model", str(model),
              "--epochs", "1", "--lr", "1e-3", "--max-length", "10", "--quiet"]
    train.main([*common, "--out", str(tmp_path / "big"), "--batch-size", "8"])
    train.main([*common, "--out", str(tmp_path / "acc"), "--batch-size", "4", "--accumulate", "2"])
    from safetensors.torch import load_file
    big, acc = load_file(tmp_path / "big" / "model.safetensors"), load_file(tmp_path / "acc" / "model.safetensors")
    for name in big:
        torch.testing.assert_close(acc[name], big[name], rtol=1e-4, atol=1e-5, msg=name)


def test_saved_tagger_loads_in_transformers_with_same_logits(trained, tiny):
    transformers = pytest.importorskip("transformers")
    from minift.cli import load_trained
    task, model = load_trained(trained[0], torch.device("cpu"))
    hf = transformers.AutoModelForTokenClassification.from_pretrained(trained[0]).eval()
    assert hf.config.id2label == dict(enumerate(task.labels.names))
    batch = task.tokenizer([["Alice", "went", "to", "Paris"], ["bob"]], is_split_into_words=True)
    with torch.no_grad():
        ours = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        theirs = hf(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    token_type_ids=batch["token_type_ids"]).logits
    real = batch["attention_mask"].bool()  # padding positions are nobody's output (and transformers may mask them)
    torch.testing.assert_close(ours[real], theirs[real], rtol=1e-5, atol=1e-5)
    assert real.sum() == 9 and not real.all()


def test_from_args_reads_the_ner_flags(tiny):
    a = SimpleNamespace(task="ner", max_length=64, doc_stride=None, label_all_subtokens=True, encoding="latin-1")
    task = TaggingTask.from_args(a, tiny["tok"])
    assert (task.stride, task.label_all_subtokens, task.encoding) == (16, True, "latin-1")


def test_malformed_conll_line_exits_2(tiny, tmp_path):
    bad = write(tmp_path / "bad.conll", "Alice\tB-PER\nwent\n")
    proc = subprocess.run([sys.executable, "-m", "minift.train", "--task", "ner", "--train", bad, "--model",
                           tiny["model"], "--out", str(tmp_path / "run"), "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 2 and f"{bad}, line 2" in proc.stderr and "Traceback" not in proc.stderr

"""QA task: SQuAD reading, answer tokens from offsets (checked on real SQuAD), post-processing, the CLI end to end."""
import json
import random
import re
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from minift import evaluate, predict, train
from minift.data import DataError
from minift.tasks.qa import (QAModel, QATask, Question, answer_tokens, best_answer, only_articles, parse_articles,
                             read_squad, window_candidates)
from minift.tokenizer import Tokenizer
from tests.tiny import make_tiny_model

NAMES, CITIES = ["alice", "bob", "carol", "dave"], ["paris", "london", "berlin", "rome"]
WORDS = NAMES + CITIES + ["lives", "in", "who", "where", "does", "live", "is", "a", "friend", "of"]


def squad(n_articles=3, seed=0):
    """A small SQuAD v1.1 file: per paragraph a question about where someone lives and one about a friend."""
    rng, data = random.Random(seed), []
    for a in range(n_articles):
        paragraphs = []
        for p in range(2):
            n, c, f = rng.choice(NAMES), rng.choice(CITIES).capitalize(), rng.choice(NAMES).capitalize()
            ctx = f"{n.capitalize()} lives in {c}. {f} is a friend of {n}. " * 2
            qas = [{"id": f"{a}-{p}-w", "question": f"Where does {n} live?",
                    "answers": [{"text": c, "answer_start": ctx.index(c)}]},
                   {"id": f"{a}-{p}-f", "question": f"Who is a friend of {n}?",
                    "answers": [{"text": f, "answer_start": ctx.index(f + " is")},
                                {"text": f + " is", "answer_start": ctx.index(f + " is")}]}]
            paragraphs.append({"context": ctx, "qas": qas})
        data.append({"title": str(a), "paragraphs": paragraphs})
    return {"version": "1.1", "data": data}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("qa")
    model = make_tiny_model(d / "model", WORDS)
    path = d / "squad.json"
    path.write_text(json.dumps(squad()), encoding="utf-8")
    return {"dir": d, "model": str(model), "tok": Tokenizer.from_pretrained(model), "data": str(path)}


# ---- reading ----
def test_read_squad_and_select_articles(tiny):
    questions = read_squad(tiny["data"])
    assert len(questions) == 12 and [q.article for q in questions[:5]] == [0, 0, 0, 0, 1]
    q = questions[1]
    assert q.id == "0-0-f" and q.question.startswith("Who") and q.context[q.answers[0][1]:].startswith(q.answers[0][0])
    assert parse_articles("0-1, 4") == {0, 1, 4}
    assert [q.article for q in only_articles(questions, "2")] == [2, 2, 2, 2]
    assert only_articles(questions, None) is questions
    for bad in ("3-1", "a", "1-2-3"):
        with pytest.raises(DataError, match="--articles"):
            parse_articles(bad)
    assert read_squad(tiny["data"], need_labels=False)[0].answers is None


@pytest.mark.parametrize("text,message", [
    ('{"data": [', "line 1, column 11: not valid JSON"),
    ('{"data": [{"paragraphs": [{"context": "x", "qas": [{"question": "q"}]}]}]}',
     r"data\[0\].paragraphs\[0\].qas\[0\] should be an object with 'answers'"),
    ('{"data": [{"paragraphs": [{"context": "abc", "qas": [{"question": "q", "answers": '
     '[{"text": "b", "answer_start": 0}]}]}]}]}', "answer_start 0 does not point at 'b'"),
])
def test_read_squad_errors_say_where(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_squad(path)


# ---- answer tokens ----
def test_answer_tokens_by_hand():
    offsets = [None, None, None, (0, 5), (6, 9), (9, 12), (13, 17), None]  # [CLS] q [SEP] ctx... [SEP]
    assert answer_tokens(offsets, 6, 12) == (4, 5)
    assert answer_tokens(offsets, 7, 10) == (4, 5)  # inside tokens: the tokens that hold it
    assert answer_tokens(offsets, 13, 17) == (6, 6)
    assert answer_tokens(offsets, 13, 20) == (0, 0)  # runs past the window: [CLS]
    assert answer_tokens([None, None], 0, 1) == (0, 0)


def test_answer_span_found_from_offsets_on_real_squad(shared_data, minilm_hub):
    """300 SQuAD dev questions: every window that holds the answer maps its start and end tokens back to exactly
    the gold characters, unless the answer starts or ends inside a token ('4' in '49'), which we count."""
    questions = random.Random(0).sample(read_squad(shared_data / "squad" / "squad-v1.1-dev-articles-00-37.json"), 300)
    task = QATask("qa", Tokenizer.from_pretrained(minilm_hub))
    windows = task.featurize(questions)
    held, split_inside = set(), 0
    for w in windows:
        q, o, s, e = w["question"], w["offsets"], w["start_positions"], w["end_positions"]
        text, start = q.answers[0]
        if (s, e) == (0, 0):
            continue
        held.add(w["example"])
        assert o[s][0] <= start and start + len(text) <= o[e][1] and s <= e
        if (o[s][0], o[e][1]) != (start, start + len(text)):
            split_inside += 1
        else:
            assert q.context[o[s][0]:o[e][1]] == text
    print(f"answers not on token boundaries: {split_inside} of 300")
    assert len(held) == 300 and split_inside <= 6  # 0 for this sample; 30 in all 8,582 dev questions


def test_featurize_windows_long_contexts(tiny):
    task = QATask("qa", tiny["tok"], max_length=24, doc_stride=6)
    questions = read_squad(tiny["data"])[:2]
    windows = task.featurize(questions)
    assert len(windows) > 2 and {w["example"] for w in windows} == {0, 1}
    assert all(len(w["input_ids"]) <= 24 for w in windows)
    for w in windows:  # a window's target is the answer, or [CLS]
        s, e = w["start_positions"], w["end_positions"]
        text = w["question"].answers[0][0]
        assert (s, e) == (0, 0) or w["question"].context[w["offsets"][s][0]:w["offsets"][e][1]] == text
    assert any(w["start_positions"] == 0 for w in windows) and any(w["start_positions"] > 0 for w in windows)
    with pytest.raises(DataError, match="max-length 8"):
        QATask("qa", tiny["tok"], max_length=8, doc_stride=2).featurize([Question("x", "who " * 10, "a b c")])


# ---- post-processing ----
@st.composite
def windows(draw):
    """A window: [CLS] question [SEP] context [SEP] padding, random logits."""
    q, c, pad = draw(st.integers(1, 6)), draw(st.integers(1, 25)), draw(st.integers(0, 4))
    widths = draw(st.lists(st.integers(1, 4), min_size=c, max_size=c))
    ends = [sum(widths[:i + 1]) + i for i in range(c)]  # a space between tokens
    offsets = [None] * (q + 2) + [(end - w, end) for end, w in zip(ends, widths)] + [None] * (1 + pad)
    n = len(offsets)
    logits = st.lists(st.floats(-20, 20, allow_nan=False, width=32), min_size=n, max_size=n)
    return torch.tensor(draw(logits)), torch.tensor(draw(logits)), offsets


@settings(max_examples=150, deadline=None)
@given(ws=st.lists(windows(), min_size=1, max_size=3), max_len=st.integers(1, 8), n_best=st.integers(1, 30))
def test_post_processing_never_leaves_the_context(ws, max_len, n_best):
    context = "x" * 200
    answer = best_answer(Question("0", "q", context), ws, n_best, max_len)
    spans = [[(o[s], o[e]) for s in range(len(o)) for e in range(s, min(s + max_len, len(o)))
              if o[s] is not None and o[e] is not None] for _, _, o in ws]
    assert any((a[0], b[1]) == (answer["start"], answer["end"]) for sp in spans for a, b in sp)
    assert answer["answer"] == context[answer["start"]:answer["end"]] and 0 < answer["score"] <= 1
    if n_best >= 25:  # every context token is among the n best: the answer is the best valid pair of all
        scored = [(float(s[i] + e[j]), o[i][0], o[j][1]) for s, e, o in ws for i in range(len(o))
                  for j in range(i, min(i + max_len, len(o))) if o[i] is not None and o[j] is not None]
        best = max(c[0] for c in scored)
        assert any(c == (best, answer["start"], answer["end"]) for c in scored)


def test_best_answer_by_hand():
    offsets = [None, None, None, (0, 3), (4, 7), (8, 12), None]
    start, end = torch.tensor([9., 0, 0, 1, 5, 0, 9]), torch.tensor([9., 0, 0, 0, 1, 4, 9])
    got = best_answer(Question("0", "q", "the big blue"), [(start, end, offsets)], max_answer_length=30)
    assert (got["answer"], got["start"], got["end"]) == ("big blue", 4, 12)  # [CLS] and [SEP] never answer
    got = best_answer(Question("0", "q", "the big blue"), [(start, end, offsets)], max_answer_length=1)
    assert got["answer"] == "big"  # 5 + 1 beats 1 + 0 and 0 + 4; "big blue" is two tokens
    assert window_candidates(start, end, [None] * 7) == []


# ---- model, loss ----
def test_loss_is_the_mean_of_start_and_end_cross_entropy(tiny):
    from minift.encoder import Encoder
    task = QATask("qa", tiny["tok"], max_length=24, doc_stride=6)
    model = task.build_model(Encoder.from_pretrained(tiny["model"])).eval()
    assert isinstance(model, QAModel)
    batch = next(task.batches(task.featurize(read_squad(tiny["data"])[:2]), 5))
    total, count = task.loss(model, batch)
    s, e = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    ce = torch.nn.functional.cross_entropy
    torch.testing.assert_close(total, (ce(s, batch["start_positions"], reduction="sum")
                                       + ce(e, batch["end_positions"], reduction="sum")) / 2)
    assert count == 5
    unlabelled = task.featurize([Question("0", "who", "bob")], with_labels=False)
    assert [len(x) for x, _ in task.logits(model, unlabelled)] == [5]  # [CLS] who [SEP] bob [SEP]


# ---- the commands ----
@pytest.fixture(scope="module")
def trained(tiny):
    out = tiny["dir"] / "run"
    results = train.train(train.parser().parse_args([
        "--task", "qa", "--train", tiny["data"], "--articles", "0-1", "--valid", tiny["data"], "--valid-articles",
        "2", "--model", tiny["model"], "--out", str(out), "--max-steps", "2", "--batch-size", "8", "--lr", "1e-3",
        "--max-length", "24", "--doc-stride", "6", "--quiet"]))
    return out, results


def test_train_evaluate_predict(trained, tiny, capsys):
    out, results = trained
    assert {"config.json", "model.safetensors", "tokenizer.json", "minift.json", "metrics.jsonl",
            "results.json"} <= {p.name for p in out.iterdir()}
    assert set(results["valid"]) == {"exact_match", "f1"}
    meta = json.loads((out / "minift.json").read_text())
    assert meta.pop("train_settings")["max_steps"] == 2  # the run's, beside the task's own settings
    assert meta.pop("training")["data"]["train_rows"] == 20  # what the run was trained on (the model card)
    assert meta == {"task": "qa", "max_length": 24, "doc_stride": 6, "max_answer_length": 30, "n_best": 20,
                    "encoding": "utf-8"}
    assert QATask.from_meta(meta, tiny["tok"]).meta() == meta
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForQuestionAnswering"]
    evaluate.main(["--model", str(out), "--data", tiny["data"], "--articles", "2"])
    assert json.loads(capsys.readouterr().out) == pytest.approx(results["valid"])
    context = "Bob lives in Rome. Alice is a friend of bob. Carol lives in Paris."
    predict.main(["--model", str(out), "--question", "Where does bob live?", "--context", context])
    row = json.loads(capsys.readouterr().out)
    assert set(row) == {"id", "question", "answer", "start", "end", "score"}
    assert context[row["start"]:row["end"]] == row["answer"] and row["answer"]
    predict.main(["--model", str(out), "--data", tiny["data"]])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 12
    # The reported scores equal the official SQuAD v1.1 rules applied here to predict's answers for article 2.
    golds = {q.id: [text for text, _ in q.answers] for q in read_squad(tiny["data"]) if q.article == 2}
    answers = {r["id"]: r["answer"] for r in rows if r["id"] in golds}
    assert len(answers) == len(golds) > 0
    em = 100 * sum(max(official_normalize(a) == official_normalize(g) for g in golds[i])
                   for i, a in answers.items()) / len(golds)
    f1 = 100 * sum(max(official_f1(a, g) for g in golds[i]) for i, a in answers.items()) / len(golds)
    assert results["valid"] == pytest.approx({"exact_match": em, "f1": f1})


def official_normalize(s: str) -> str:
    """The official SQuAD v1.1 evaluation script's normalize_answer, written out independently of minift."""
    import string
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def official_f1(prediction: str, gold: str) -> float:
    """The official script's f1_score: token overlap of the normalised strings."""
    from collections import Counter
    p, g = official_normalize(prediction).split(), official_normalize(gold).split()
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def test_saved_qa_model_loads_in_transformers_with_same_logits(trained):
    transformers = pytest.importorskip("transformers")
    from minift.cli import load_trained
    task, model = load_trained(trained[0], torch.device("cpu"))
    hf = transformers.AutoModelForQuestionAnswering.from_pretrained(trained[0]).eval()
    batch = task.tokenizer(["where does bob live?"], ["Bob lives in Rome."])
    with torch.no_grad():
        start, end = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
        theirs = hf(**batch)
    torch.testing.assert_close(start, theirs.start_logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(end, theirs.end_logits, rtol=1e-5, atol=1e-5)


def test_from_args_reads_the_qa_flags(tiny):
    args = SimpleNamespace(task="qa", max_length=256, doc_stride=None, max_answer_length=12, encoding="utf-8",
                           articles="0-1", valid_articles="2")
    task = QATask.from_args(args, tiny["tok"])
    assert (task.max_length, task.doc_stride, task.max_answer_length) == (256, 128, 12)
    assert [q.article for q in task.read(tiny["data"], training=True)] == [0] * 4 + [1] * 4  # its own articles
    assert {q.article for q in task.read(tiny["data"])} == {2}
    assert task.example("who?", "bob").context == "bob" and task.fit_labels([]) is None


@pytest.mark.parametrize("args,message", [(["--train", "BAD"], "line 1, column"),
                                          (["--train", "GOOD", "--task", "ner", "--articles", "1"], "--articles")])
def test_bad_input_exits_2(tiny, tmp_path, capsys, args, message):
    """In process through cli.run (test_tagging_task.py runs the real command in a subprocess)."""
    from minift import cli
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [}', encoding="utf-8")
    args = [{"BAD": str(bad), "GOOD": tiny["data"]}.get(x, x) for x in args]
    code = cli.run(train.main, ["--task", "qa", "--model", tiny["model"], "--out", str(tmp_path / "run"), "--quiet",
                                *args], prog="minift.train")
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "run" / "model.safetensors").exists()

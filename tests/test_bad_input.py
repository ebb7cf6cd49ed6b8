"""The catalogue of bad input (issue 14): each case runs `python -m minift.train` (in-process through `cli.run`, one
case as a real process) on a tiny model and a small bad file, and must end with exit code 2, one message that
names the file, line or field and the fix, no traceback, and no model in --out. Files that are fine (a UTF-8
byte-order mark, CRLF, quoted fields holding newlines and delimiters, trailing blank lines) must still train."""
import json
import shutil
import subprocess
import sys

import pytest

from minift import cli, train
from minift.data import DataError, check_training_rows
from tests.tiny import make_tiny_model

WORDS = ["the", "film", "was", "good", "bad", "great", "awful", "plot", "cast"]
GOOD = ["the film was good", "the plot was great", "the cast was good", "good film"]
BAD = ["the film was bad", "the plot was awful", "the cast was bad", "bad film"]
ROWS = "".join(f"{g},positive\n{b},negative\n" for g, b in zip(GOOD, BAD))  # 8 rows, two classes
SCORES = "".join(f"{g},4.5\n{b},0.5\n" for g, b in zip(GOOD, BAD))
CONLL = "the\tO\nfilm\tB-MISC\n\nthe\tO\ncast\tB-PER\n\n" * 3
SQUAD = {"data": [{"paragraphs": [{"context": "the film was good", "qas": [
    {"id": "1", "question": "what was good", "answers": [{"text": "film", "answer_start": 4}]}]}]}]}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("bad_input") / "model", WORDS)


def write(folder, name, content):
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


def fails(model, tmp_path, capsys, *argv):
    """Run minift.train with `argv`; check exit code 2, one message, no traceback, nothing in --out; return it."""
    out = tmp_path / "out"
    args = ["--model", str(model), "--out", str(out), "--quiet", "--max-steps", "1", "--batch-size", "4", *argv]
    capsys.readouterr()
    assert cli.run(train.main, args, prog="minift.train") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    message = err.strip().splitlines()[-1]
    assert message.startswith("minift.train: error: ") and err.count("error:") == 1
    assert not (out / "model.safetensors").exists() and not (out / "minift.json").exists()
    return message


# (case, file name, file content, extra flags, what the message must say)
TABLE_CASES = [
    ("missing column", "t.csv", "text,label\n" + ROWS, ["--label-col", "lable"],
     "column 'lable' not found in {file}; columns are: text, label"),
    ("header-less file read with a header", "t.csv", ROWS, [],
     "column 'text' not found in {file}; columns are: the film was good, positive. Name one of them, or, if that "
     "first row is data and the file has no header, pass --no-header"),
    ("header-less file, columns by index", "t.csv", SCORES, ["--task", "regression", "--text-col", "0",
                                                            "--label-col", "1"],
     "{file}, line 1: the header's label column is '4.5', a number like the labels below it: the first row seems "
     "to be data; if the file has no header, pass --no-header"),
    ("a header read as data (--no-header)", "t.csv", "text,score\n" + SCORES,
     ["--task", "regression", "--no-header", "--text-col", "0", "--label-col", "1"],
     "{file}, line 1: the label 'score' looks like a column name"),
    ("empty file", "t.csv", "", [], "{file}: the file is empty"),
    ("empty file (blank lines only)", "t.jsonl", "\n\n", [], "{file}: the file is empty"),
    ("header only", "t.csv", "text,label\n\n", [], "{file}: the file has a header row but no rows of data"),
    ("empty text cell", "t.csv", "text,label\n" + ROWS + " ,positive\n", [],
     "{file}, line 10: the text column 'text' is empty; fill it in or delete the row"),
    ("empty label cell", "t.csv", "text,label\n" + ROWS + "the film,\n", [],
     "{file}, line 10: the row has no label; fill it in or delete the row"),
    ("regression target not a number", "t.csv", "text,score\n" + SCORES + "the film,high\n",
     ["--task", "regression", "--label-col", "score"], "{file}, line 10: the label 'high' is not a number"),
    ("regression target NaN", "t.csv", "text,score\n" + SCORES + "the film,nan\n",
     ["--task", "regression", "--label-col", "score"], "{file}, line 10: the label 'nan' is not a number"),
    ("regression target inf", "t.csv", "text,score\n" + SCORES + "the film,-inf\n",
     ["--task", "regression", "--label-col", "score"], "{file}, line 10: the label '-inf' is not a number"),
    ("ragged row: an unquoted comma", "t.csv", "text,label\n" + ROWS + "the film, the cast,positive\n", [],
     "{file}, line 10: 3 fields where the header has 2; a field holding ',' must be in quotes"),
    ("a quote never closed", "t.csv", "text,label\n" + ROWS + '"the film,positive\nthe cast,negative\n', [],
     "{file}, line 10: a quoted field opened there runs on to line 11"),
    ("semicolons in a .csv", "t.csv", "text;label\n" + ROWS.replace(",", ";"), [],
     "its header 'text;label' is one field split by ';', not by ','"),
    ("a row with another delimiter", "t.csv", "text,label\n" + ROWS + "the film\tpositive\n", [],
     "{file}, line 10: expected a column 'label' but the row has 1 fields (it is split by '\\t', not ','"),
    ("JSON Lines with a broken line", "t.jsonl",
     "".join(json.dumps({"text": t, "label": "p"}) + "\n" for t in GOOD) + '{"text": "the film", "label": \n', [],
     "{file}, line 5, column 31: not valid JSON (Expecting value)"),
    ("a JSON document, not JSON Lines", "t.jsonl", json.dumps([{"text": "a", "label": "b"}], indent=1), [],
     "{file}, line 1, column 2: not valid JSON (Expecting value) (it looks like one JSON document"),
    ("not UTF-8", "t.csv", ("text,label\n" + ROWS + "caf\u00e9 film,positive\n").encode("cp1252"), [],
     f"{{file}}, line 10, column 4 (byte {len(('text,label' + chr(10) + ROWS + 'caf').encode())}): not valid utf-8 (invalid continuation byte, byte 0xe9); the file is in "
     "another encoding: pass --encoding cp1252"),
    ("not UTF-8, not cp1252", "t.csv", ("text,label\n" + ROWS).encode() + b"\x81\x8d film,positive\n", [],
     "pass --encoding latin-1"),
    ("UTF-16", "t.csv", ("text,label\n" + ROWS).encode("utf-16"), [], "pass --encoding utf-16"),
    ("unknown --encoding", "t.csv", "text,label\n" + ROWS, ["--encoding", "klingon"],
     "--encoding klingon: not an encoding Python knows"),
    ("CoNLL line of the wrong shape", "t.conll", "the\tO\nNew York\tB-LOC\n", ["--task", "ner"],
     "{file}, line 2: 3 columns where line 1 has 2"),
    ("CoNLL tag not BIO", "t.conll", "the\tO\nfilm\tMOVIE\n", ["--task", "ner"],
     "{file}, line 2: the tag 'MOVIE' is not a BIO tag"),
    ("CoNLL file empty", "t.conll", "\n-DOCSTART- O\n\n", ["--task", "ner"], "{file}: no sentences in the file"),
    ("SQuAD answer_start off", "t.json", json.dumps(SQUAD).replace('"answer_start": 4', '"answer_start": 5'),
     ["--task", "qa"], "{file}: data[0].paragraphs[0].qas[0].answers[0]: answer_start 5 does not point at 'film'"),
    ("SQuAD not JSON", "t.json", '{"data": [', ["--task", "qa"], "{file}, line 1, column 11: not valid JSON"),
    ("SQuAD without questions", "t.json", '{"data": []}', ["--task", "qa"], "{file}: no questions in the file"),
]


@pytest.mark.parametrize("case,name,content,extra,message", TABLE_CASES, ids=[c[0] for c in TABLE_CASES])
def test_a_bad_training_file(model, tmp_path, capsys, case, name, content, extra, message):
    file = write(tmp_path, name, content)
    assert message.format(file=file) in fails(model, tmp_path, capsys, "--train", file, *extra)


@pytest.mark.parametrize("task,valid,message", [
    ("classification", "text,label\nthe film,neutral\n",
     "{file}, line 2: label 'neutral' is not one of the 2 training labels: negative, positive; a model can only "
     "predict labels it was trained on"),
    ("multilabel", "text,label\nthe film,\"positive,sad\"\n", "{file}, line 2: label 'sad' is not one of the 2"),
])
def test_a_label_training_never_saw(model, tmp_path, capsys, task, valid, message):
    train_file = write(tmp_path, "train.csv", "text,label\n" + ROWS)
    valid_file = write(tmp_path, "valid.csv", valid)
    got = fails(model, tmp_path, capsys, "--task", task, "--train", train_file, "--valid", valid_file)
    assert message.format(file=valid_file) in got
    test_file = write(tmp_path, "test.csv", valid)
    got = fails(model, tmp_path, capsys, "--task", task, "--train", train_file, "--test", test_file)
    assert message.format(file=test_file) in got


def damaged_model(model, tmp_path, damage):
    folder = tmp_path / "damaged"
    shutil.copytree(model, folder)
    damage(folder)
    return str(folder)


def truncate(folder):
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:len(data) * 2 // 3])


def smaller_vocab(folder):
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] = 50
    (folder / "config.json").write_text(json.dumps(config))


def wrong_type(folder):
    config = json.loads((folder / "config.json").read_text())
    config["hidden_size"] = "32"
    (folder / "config.json").write_text(json.dumps(config))


def lying_header(folder):
    (folder / "model.safetensors").write_bytes((10**10).to_bytes(8, "little") + b"{}")


MODEL_CASES = [
    ("no weights", lambda f: (f / "model.safetensors").unlink(), "no model.safetensors"),
    ("only a pickle", lambda f: (f / "model.safetensors").rename(f / "pytorch_model.bin"),
     "pytorch_model.bin, a pickle that minift will not load"),
    ("truncated weights", truncate, "the file is truncated or corrupt: download or save it again"),
    ("a header claiming 10 GB", lying_header, "claims a 10,000,000,000-byte header"),
    ("vocabulary larger than the embeddings", smaller_vocab,
     "the tokenizer has token ids up to {last}, but the model's embedding matrix has 50 rows (vocab_size in "
     "config.json): the tokenizer files and the weights come from different models"),
    ("config.json with a wrong type", wrong_type, "field 'hidden_size' is '32'; it must be a whole number"),
    ("config.json not an object", lambda f: (f / "config.json").write_text("[]"), "expected a JSON object"),
    ("tokenizer_config.json with a wrong type",
     lambda f: (f / "tokenizer_config.json").write_text('{"cls_token": 5}'), "cls_token is 5; a special token"),
]


@pytest.mark.parametrize("case,damage,message", MODEL_CASES, ids=[c[0] for c in MODEL_CASES])
def test_a_bad_model_folder(model, tmp_path, capsys, case, damage, message):
    train_file = write(tmp_path, "train.csv", "text,label\n" + ROWS)
    folder = damaged_model(model, tmp_path, damage)
    got = fails(folder, tmp_path, capsys, "--train", train_file)
    last = len((model / "vocab.txt").read_text().split()) - 1  # the tiny WordPiece vocabulary's last id
    assert message.format(last=last) in got and folder in got




@pytest.mark.parametrize("rows,message", [
    ("the film was good,positive\n", "1 row(s), and --valid-fraction 0.2 of them is 0.2 rows"),
    ("the film was good,positive\nthe film was bad,negative\n", "validation split would be empty"),
    ("the film was good,positive\n" * 8, "all 6 training rows have the label 'positive'; a classifier needs"),
])
def test_too_few_rows_or_a_single_class(model, tmp_path, capsys, rows, message):
    file = write(tmp_path, "t.csv", "text,label\n" + rows)
    assert message in fails(model, tmp_path, capsys, "--train", file)


def test_check_training_rows():
    check_training_rows("t.csv", 7, 1, ["a", "b", "a", "a", "b", "b", "a"], 0.2)
    check_training_rows("t.csv", 7, 2)  # labels None: no class check (regression, ner, qa)
    for args, message in [
        ((0, 0), "t.csv: no rows to train on"),
        ((1, 0, None, 0.2), "t.csv: 1 row(s), and --valid-fraction 0.2 of them is 0.2 rows, so the validation "
                            "split would be empty: add rows (5 or more for that fraction)"),
        ((3, 0), "the validation data has no rows"),
        ((0, 3), "no rows are left to train on"),
        ((3, 1, ["a", "a", "a"]), "all 3 training rows have the label 'a'; a classifier needs rows of at least two"),
        ((2, 1, [None, ""]), "all 2 training rows have no label"),
    ]:
        with pytest.raises(DataError) as err:
            check_training_rows("t.csv", *args)
        assert message in str(err.value)


def test_files_that_are_fine_stay_fine(model, tmp_path, capsys):
    """BOM, CRLF, a quoted field holding a comma, a quote and a line break, trailing blank lines: all train."""
    rows = ROWS.replace("\n", "\r\n") + '"the film, ""it"" was\r\ngood",positive\r\n\r\n\r\n'
    file = write(tmp_path, "t.csv", "\ufefftext,label\r\n" + rows)
    out = tmp_path / "out"
    args = ["--train", file, "--model", str(model), "--out", str(out), "--quiet", "--max-steps", "1",
            "--batch-size", "4"]
    assert cli.run(train.main, args, prog="minift.train") == 0
    assert (out / "model.safetensors").is_file()
    for name, content, extra in [("t.conll", CONLL, ["--task", "ner"]),
                                 ("t.json", json.dumps({"data": SQUAD["data"] * 3}), ["--task", "qa", "--doc-stride", "8"])]:
        file = write(tmp_path, name, "\ufeff" + content.replace("\n", "\r\n"))
        assert cli.run(train.main, [*args[:1], file, *args[2:], *extra], prog="minift.train") == 0, name


def test_a_real_process_prints_one_message_and_no_traceback(model, tmp_path):
    file = write(tmp_path, "t.csv", ("text,label\n" + ROWS + "caf\u00e9,positive\n").encode("latin-1"))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "minift.train", "--train", file, "--model", str(model), "--out",
                           str(out), "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "pass --encoding cp1252" in proc.stderr.strip().splitlines()[-1]
    assert not (out / "model.safetensors").exists()


@pytest.mark.parametrize("edit,message", [
    (lambda m: m.update(max_length="64"), "field 'max_length' is '64', not what minift.train writes there"),
    (lambda m: m.update(task="translation"), "task 'translation' is not one of"),
    (lambda m: m.update(labels=["negative", "negative"]), "'labels' should be distinct strings"),
    (lambda m: m.pop("columns"), "no 'columns' field"),
    (lambda m: m.update(columns={"text": [0]}), "'columns' should map to column names or indices"),
    (lambda m: m.update(temperature=0), "'temperature' should be > 0"),
    (lambda m: m.update(thresholds=[0.5]), "'thresholds' should be one number per label"),
    (lambda m: m.update(training=[]), "field 'training' is []"),
])
def test_a_bad_minift_json(model, tmp_path, capsys, edit, message):
    """A trained model folder whose minift.json was edited: `minift.evaluate` refuses it with the field's name."""
    from minift import evaluate
    data, out = write(tmp_path, "t.csv", "text,label\n" + ROWS), tmp_path / "trained"
    assert cli.run(train.main, ["--train", data, "--model", str(model), "--out", str(out), "--quiet",
                                "--max-steps", "1", "--batch-size", "4"]) == 0
    meta = json.loads((out / "minift.json").read_text())
    edit(meta)
    (out / "minift.json").write_text(json.dumps(meta))
    capsys.readouterr()
    assert cli.run(evaluate.main, ["--model", str(out), "--data", data], prog="minift.evaluate") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and message in err and str(out / "minift.json") in err

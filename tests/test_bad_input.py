"""The catalogue of bad input (issue 14): each case runs `python -m minift.train` (in-process through `cli.run`, one
case as a real process) on a tiny model and a small bad file, flag, --out or --resume, and must end with exit code
2, one message that names the file, line, flag or field and the fix, no traceback, and --out exactly as it was
(absent, or with its model, checkpoints or lock: not even an empty folder is left). Files that are fine (a UTF-8
byte-order mark, CRLF, quoted fields holding newlines and delimiters, trailing blank lines) must still train."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from minift import cli, train
from minift.data import DataError
from minift.splits import check_training_rows
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


def fails(model, tmp_path, capsys, *argv, out=None, max_steps=True):
    """Run minift.train with `argv`; check exit code 2, one message, no traceback, and --out exactly as it was
    (absent if it was: not even an empty folder is left); return the message."""
    out = out or tmp_path / "out"
    before = contents(out)
    args = ["--model", str(model), "--out", str(out), "--quiet", *(["--max-steps", "1"] if max_steps else []),
            "--batch-size", "4", *argv]
    capsys.readouterr()
    assert cli.run(train.main, args, prog="minift.train") == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    message = err.strip().splitlines()[-1]
    assert message.startswith("minift.train: error: ") and err.count("error:") == 1
    assert contents(out) == before
    return message


def contents(path):
    """Everything under `path`, to compare before and after: None if absent, bytes for a file."""
    if not path.exists():
        return None
    if path.is_file():
        return path.read_bytes()
    return {str(p.relative_to(path)): p.read_bytes() if p.is_file() else "folder" for p in sorted(path.rglob("*"))}


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
        assert cli.run(train.main, [*args[:1], file, *args[2:], *extra, "--overwrite"],  # another task
                       prog="minift.train") == 0, name


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


# Flags: (case, flags, what the message must say). The fails() helper passes --max-steps 1 unless told not to.
FLAG_CASES = [
    ("--batch-size 0", ["--batch-size", "0"], "--batch-size 0: must be at least 1"),
    ("--lr -1", ["--lr", "-1"], "--lr -1.0: must be above 0 (fine-tuning takes 1e-5 to 1e-4; the default is 5e-5)"),
    ("--lr nan", ["--lr", "nan"], "--lr nan: must be above 0"),
    ("--valid-fraction 1.5", ["--valid-fraction", "1.5"], "--valid-fraction 1.5: must be between 0 and 1, the share "
     "of --train held out for validation (e.g. 0.2), or give --valid FILE"),
    ("--warmup -1", ["--warmup", "-1"], "--warmup -1.0: must be at least 0"),
    ("--max-steps 0", ["--max-steps", "0"], "--max-steps 0: must be at least 1"),
    ("--max-length above the model's positions", ["--max-length", "100"],
     "--max-length 100 tokens do not fit the 64 positions of {model}: ask for at most 64 tokens in all"),
]


@pytest.mark.parametrize("case,flags,message", FLAG_CASES, ids=[c[0] for c in FLAG_CASES])
def test_a_nonsensical_flag(model, tmp_path, capsys, case, flags, message):
    file = write(tmp_path, "t.csv", "text,label\n" + ROWS)
    assert message.format(model=model) in fails(model, tmp_path, capsys, "--train", file, *flags)


def test_epochs_0_needs_max_steps(model, tmp_path, capsys):
    """--epochs 0 alone trains nothing: refused. With --max-steps, which overrides --epochs, it is not used: fine."""
    file = write(tmp_path, "t.csv", "text,label\n" + ROWS)
    assert "--epochs 0: must be at least 1, or 0 with --max-steps N (N updates, however many epochs that is)" in \
        fails(model, tmp_path, capsys, "--train", file, "--epochs", "0", max_steps=False)
    assert "--epochs -1: must be at least 1, or 0 with --max-steps N" in \
        fails(model, tmp_path, capsys, "--train", file, "--epochs", "-1")
    assert cli.run(train.main, ["--train", file, "--model", str(model), "--out", str(tmp_path / "out"), "--quiet",
                                "--epochs", "0", "--max-steps", "1", "--batch-size", "4"]) == 0


def train_into(model, tmp_path, out, *extra):
    file = write(tmp_path, "t.csv", "text,label\n" + ROWS)
    scores = write(tmp_path, "s.csv", "text,score\n" + SCORES)
    task_file = scores if "regression" in extra else file
    return cli.run(train.main, ["--train", task_file, "--model", str(model), "--out", str(out), "--quiet",
                                "--max-steps", "1", "--batch-size", "4", *extra], prog="minift.train")


def test_out_is_a_file(model, tmp_path, capsys):
    file = write(tmp_path, "t.csv", "text,label\n" + ROWS)
    out = tmp_path / "notes.txt"
    out.write_text("my notes")
    assert f"--out {out}: {out} is a file, not a folder; give a folder (it is created if missing)" in \
        fails(model, tmp_path, capsys, "--train", file, out=out)
    assert f"--out {out / 'run'}: {out} is a file" in fails(model, tmp_path, capsys, "--train", file, out=out / "run")


def test_out_is_read_only(model, tmp_path, capsys, monkeypatch):
    """A folder without write permission. Root ignores permissions (os.access says it can write): there, os.access
    is made to answer as it would for anyone else, so that the check itself is still tested."""
    from minift import outdir
    file = write(tmp_path, "t.csv", "text,label\n" + ROWS)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):  # running as root
            monkeypatch.setattr(outdir.os, "access", lambda path, mode: Path(path) != locked)
        for out in (locked, locked / "run"):  # the folder, or one to be created in it
            assert f"--out {out}: {locked} is read-only for you; give a folder you can write to" in \
                fails(model, tmp_path, capsys, "--train", file, out=out)
    finally:
        locked.chmod(0o755)


def test_out_holding_a_model_of_another_task(model, tmp_path, capsys):
    """Another task's model is refused unless --overwrite; the same task's is replaced with a note, so the same
    command can run twice (the README's first command does)."""
    out = tmp_path / "run"
    assert train_into(model, tmp_path, out, "--task", "regression", "--label-col", "score") == 0
    file = write(tmp_path, "t.csv", "text,label\n" + ROWS)
    assert (f"--out {out}: holds a trained regression model ({out / 'minift.json'}); this run is --task "
            "classification. Give another --out, or pass --overwrite to replace it") in \
        fails(model, tmp_path, capsys, "--train", file, out=out)
    assert train_into(model, tmp_path, out, "--overwrite") == 0
    assert json.loads((out / "minift.json").read_text())["task"] == "classification"
    capsys.readouterr()
    assert train_into(model, tmp_path, out) == 0
    assert f"note: {out} holds a classification model from an earlier run; this run replaces it" in \
        capsys.readouterr().err


def test_out_holding_checkpoints_of_an_earlier_run(model, tmp_path, capsys):
    """A new run would mix its checkpoints with the old ones (and --resume OUT could pick an old one): refused,
    saying how to continue the old run or start again."""
    out = tmp_path / "run"
    assert train_into(model, tmp_path, out, "--save-every", "1") == 0
    file = write(tmp_path, "t.csv", "text,label\n" + ROWS)
    assert (f"--out {out}: holds checkpoints of an earlier run (the latest is {out / 'checkpoints' / 'step-1'}); "
            f"continue that run with --resume {out}, or start again with --overwrite (which deletes them)") in \
        fails(model, tmp_path, capsys, "--train", file, out=out)
    assert train_into(model, tmp_path, out, "--overwrite") == 0
    assert not (out / "checkpoints").exists()


def test_out_holding_other_files(model, tmp_path, capsys):
    file = write(tmp_path, "t.csv", "text,label\n" + ROWS)
    out = tmp_path / "project"
    out.mkdir()
    (out / "config.json").write_text('{"mine": true}')
    (out / "notes.txt").write_text("notes")
    assert (f"--out {out}: holds other files (config.json, notes.txt) and no minift run; a run writes config.json, "
            "model.safetensors and more there, replacing files of those names. Give a new or empty folder, or pass "
            "--overwrite") in fails(model, tmp_path, capsys, "--train", file, out=out)


def test_resume_a_folder_without_a_checkpoint(model, tmp_path, capsys):
    file = write(tmp_path, "t.csv", "text,label\n" + ROWS)
    out = tmp_path / "run"
    assert train_into(model, tmp_path, out) == 0  # a run without --save-every: a model, no checkpoint
    assert (f"--resume {out}: no trainer_state.json and no complete checkpoint in {out / 'checkpoints'}; give the "
            "--out folder of a run started with --save-every N (or stopped with Ctrl-C), or train without --resume") \
        in fails(model, tmp_path, capsys, "--train", file, "--resume", str(out), out=out)


def test_debug_prints_the_traceback_too(model, tmp_path, capsys):
    from minift import evaluate
    file = write(tmp_path, "t.csv", "text,label\n" + ROWS)
    out = tmp_path / "out"
    for command, argv in [(train.main, ["--train", file, "--model", str(model), "--out", str(out), "--batch-size",
                                        "0"]),
                          (evaluate.main, ["--model", str(tmp_path / "nowhere"), "--data", file])]:
        assert cli.run(command, argv) == 2
        assert "Traceback" not in capsys.readouterr().err
        assert cli.run(command, [*argv, "--debug"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("Traceback (most recent call last)") and err.count("error:") == 1
        assert err.strip().splitlines()[-1].startswith("minift: error: ")
    assert not out.exists()


@pytest.fixture(scope="module")
def checkpointed(model, tmp_path_factory):
    """A run folder with one checkpoint, step-1, to damage."""
    folder = tmp_path_factory.mktemp("checkpointed")
    out = folder / "run"
    assert train_into(model, folder, out, "--save-every", "1") == 0
    return out


STATE_CASES = [
    ("step a string", lambda s: s["loop"].update(step="1"), "field 'loop.step' is \"1\"; expected a whole number"),
    ("best_step a fraction", lambda s: s["loop"].update(best_step=0.5), "field 'loop.best_step' is 0.5; expected int"),
    ("a loop field missing", lambda s: s["loop"].pop("epoch"), "field 'loop' is {"),
    ("a learning rate not a number", lambda s: s["optimizer"]["param_groups"][0].update(lr="fast"),
     "field 'optimizer.param_groups[0].lr' is \"fast\"; expected a finite number"),
    ("a step count of 0", lambda s: s["optimizer"]["state"]["0"].update(step=0),
     "field 'optimizer.state.0.step' is 0; expected a whole number from 1"),
    ("a parameter group too many", lambda s: s["optimizer"]["param_groups"].append({}),
     "field 'optimizer.param_groups' is ["),
    ("optimizer state of no parameter", lambda s: s["optimizer"]["state"].update({"999": {"step": 1}}),
     "field 'optimizer.state.999' is \"999\"; expected a parameter's index"),
    ("scaler not numbers", lambda s: s.update(scaler={"scale": "big"}), "field 'scaler' is {\"scale\": \"big\"}"),
    ("python_random cut short", lambda s: s["python_random"][1].pop(), "field 'python_random' is [3, ["),
    ("numpy_random another generator", lambda s: s["numpy_random"].__setitem__(0, "PCG64"),
     "field 'numpy_random' is [\"PCG64\""),
    ("the fields missing", lambda s: s.clear(), "field 'loop' is null; expected a value (the field is missing)"),
]


@pytest.mark.parametrize("case,edit,message", STATE_CASES, ids=[c[0] for c in STATE_CASES])
def test_a_damaged_trainer_state(model, checkpointed, tmp_path, capsys, case, edit, message):
    """trainer_state.json is type-checked field by field on --resume: the message names the file and field."""
    out = tmp_path / "run"
    shutil.copytree(checkpointed, out)
    path = out / "checkpoints" / "step-1" / "trainer_state.json"
    state = json.loads(path.read_text())
    edit(state)
    path.write_text(json.dumps(state))
    file = write(tmp_path, "t.csv", "text,label\n" + ROWS)
    got = fails(model, tmp_path, capsys, "--train", file, "--resume", str(out), "--max-steps", "2", out=out,
                max_steps=False)
    assert f"{path}: {message}" in got and "resume from another checkpoint, or train without --resume" in got


def test_trainer_state_not_json(model, checkpointed, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(checkpointed, out)
    path = out / "checkpoints" / "step-1" / "trainer_state.json"
    path.write_text('{"loop": ')
    file = write(tmp_path, "t.csv", "text,label\n" + ROWS)
    assert f"{path}: not valid JSON (Expecting value: line 1 column 10 (char 9)); resume from another checkpoint" in \
        fails(model, tmp_path, capsys, "--train", file, "--resume", str(out), "--max-steps", "2", out=out,
              max_steps=False)


def resave(path, edit):
    from safetensors.torch import load_file, save_file
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


@pytest.mark.parametrize("name,edit,message", [
    ("optimizer.safetensors", lambda t: t.pop("state.0.exp_avg"), "the optimizer state of parameter 0 holds ['step'] "
     "in trainer_state.json and ['exp_avg_sq'] in optimizer.safetensors; AdamW keeps ['step'] and ['exp_avg', "
     "'exp_avg_sq']"),
    ("optimizer.safetensors", lambda t: t.update({"state.0.exp_avg": t["state.0.exp_avg"][:1]}),
     "(exp_avg not of its shape"),
    ("rng.safetensors", lambda t: t.update(torch=t["torch"][:100]), "rng.safetensors holds no CPU random state of"),
    ("model.safetensors", lambda t: t.update({k: v[:1] for k, v in list(t.items())[:1]}),
     "resume with the same --model, --lora and task flags"),
], ids=["a moment missing", "a moment of another shape", "the CPU random state cut short", "a weight cut short"])
def test_a_damaged_checkpoint_tensor(model, checkpointed, tmp_path, capsys, name, edit, message):
    out = tmp_path / "run"
    shutil.copytree(checkpointed, out)
    resave(out / "checkpoints" / "step-1" / name, edit)
    file = write(tmp_path, "t.csv", "text,label\n" + ROWS)
    got = fails(model, tmp_path, capsys, "--train", file, "--resume", str(out), "--max-steps", "2", out=out,
                max_steps=False)
    assert f"--resume {out / 'checkpoints' / 'step-1'}: " in got and message in got

"""minift.data: table readers on odd files, labels, stratified split."""
import csv
import io
import json
import math
from collections import Counter

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minift.data import DataError, Example, LabelMap, encode_labels, read_table, regression_targets
from minift.splits import stratified_split

TMP = dict(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)


def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def triples(examples):
    return [(e.text, e.text_pair, e.label) for e in examples]


# ---------------------------------------------------------------------------------------------- reading


def test_csv_quotes_bom_crlf_blank_lines_and_line_numbers(tmp_path):
    text = ('\ufefftext,label\r\n'
            '"hello, world",pos\r\n'
            '\r\n'
            '"a ""quoted"" line\r\nthat goes on",neg\r\n'
            'plain , 1 \r\n'
            ',,\r\n'
            'last,pos')
    examples = read_table(write(tmp_path, "train.csv", text), "text", "label")
    assert triples(examples) == [("hello, world", None, "pos"), ('a "quoted" line\r\nthat goes on', None, "neg"),
                                 ("plain ", None, "1"), ("last", None, "pos")]
    assert [e.line for e in examples] == [2, 4, 6, 8]


def test_columns_by_name_index_and_digit_string(tmp_path):
    path = write(tmp_path, "pairs.csv", "id,s1,s2,score\n7,a b,c d,4.5\n8,e,f,0\n")
    by_name = read_table(path, "s1", "score", text_pair_col="s2")
    assert triples(by_name) == [("a b", "c d", "4.5"), ("e", "f", "0")]
    assert read_table(path, 1, 3, text_pair_col="2") == by_name
    headerless = read_table(path, 1, 2, has_header=False)  # text labels: the header row is read as data
    assert triples(headerless)[0] == ("s1", None, "s2") and headerless[1].line == 2
    only_text = read_table(path, "s2")
    assert [(e.text, e.label) for e in only_text] == [("c d", None), ("f", None)]


def test_a_header_named_with_digits_wins_over_the_index(tmp_path):
    path = write(tmp_path, "odd.csv", "0,1\nx,y\n")
    assert read_table(path, "1", "0")[0] == Example("y", None, "x", 2)
    assert read_table(path, 1, 0)[0] == Example("y", None, "x", 2)


def test_tsv_reads_unbalanced_quotes_literally(tmp_path):
    path = write(tmp_path, "train.tsv", 'sentence\tlabel\nhe said "hi \t1\nit \'s "great\t0\n')
    assert triples(read_table(path, "sentence", "label")) == [('he said "hi ', None, "1"), ('it \'s "great', None, "0")]


def test_jsonl_keys_numbers_lists_and_blank_lines(tmp_path):
    lines = [{"text": "a", "label": 1}, {"text": "b", "label": ["x", "y"], "extra": 0}, {"text": "c", "label": None}]
    path = write(tmp_path, "train.jsonl", "\n".join(json.dumps(r) for r in lines[:2]) + "\n\n" + json.dumps(lines[2]))
    assert triples(read_table(path, "text", "label")) == [("a", None, "1"), ("b", None, "x,y"), ("c", None, None)]
    assert [e.line for e in read_table(path, "text")] == [1, 2, 4]


def test_delimiter_overrides_the_extension_and_may_be_long(tmp_path):
    path = write(tmp_path, "reviews.txt", "1 ||| great , fun\n\n0 ||| dull\n")
    assert triples(read_table(path, 1, 0, has_header=False, delimiter=" ||| ")) == [
        ("great , fun", None, "1"), ("dull", None, "0")]
    semi = write(tmp_path, "semi.txt", "t;l\nx;1\n")
    assert triples(read_table(semi, "t", "l", delimiter=";")) == [("x", None, "1")]


def test_encoding(tmp_path):
    path = write(tmp_path, "latin.tsv", "text\tlabel\ncaf\u00e9\tDESC\n", encoding="latin-1")
    with pytest.raises(DataError) as err:
        read_table(path, "text", "label")
    assert str(err.value) == (f"{path}, line 2, column 4 (byte 14): not valid utf-8 (invalid continuation byte, "
                              "byte 0xe9); the file is in another encoding: pass --encoding cp1252, or save the "
                              "file as UTF-8")
    assert read_table(path, "text", "label", encoding="latin-1")[0].text == "caf\u00e9"


def test_errors_name_the_file_line_and_column(tmp_path):
    path = write(tmp_path, "train.csv", "text,label\na,1\nb,2\n\n\nonly text\n")
    with pytest.raises(DataError) as err:
        read_table(path, "text", "label")
    assert str(err.value) == f"{path}, line 6: expected a column 'label' but the row has 1 fields"
    with pytest.raises(DataError) as err:
        read_table(path, "text", "lable")
    assert str(err.value).startswith(f"column 'lable' not found in {path}; columns are: text, label. Name one")
    with pytest.raises(DataError, match="read without a header"):
        read_table(path, "text", has_header=False)
    with pytest.raises(DataError, match="column 5 not found"):
        read_table(path, 5)
    jsonl = write(tmp_path, "d.jsonl", '{"text": "a"}\n{"text": 3}\n')
    with pytest.raises(DataError, match=r"d\.jsonl, line 2: column 'text' should hold text"):
        read_table(jsonl, "text")
    with pytest.raises(DataError, match=r"d\.jsonl, line 1: expected a column 'label' but the row has the keys text"):
        read_table(jsonl, "text", "label")
    broken = write(tmp_path, "b.jsonl", '{"text": "a"}\n{"text": \n')
    with pytest.raises(DataError, match=r"b\.jsonl, line 2, column 10: not valid JSON \(Expecting value\); each"):
        read_table(broken, "text")
    with pytest.raises(DataError, match=r"l\.jsonl, line 1: expected a JSON object on each line"):
        read_table(write(tmp_path, "l.jsonl", '["a", 1]\n'), "text")
    with pytest.raises(DataError, match="cannot tell the format"):
        read_table(write(tmp_path, "x.dat", "a,b\n"), 0)
    with pytest.raises(DataError, match=r"empty\.csv: the file is empty"):
        read_table(write(tmp_path, "empty.csv", "\n\n"), "text")
    with pytest.raises(DataError, match=r"header_only\.csv: the file has a header row but no rows of data"):
        read_table(write(tmp_path, "header_only.csv", "text\n\n"), "text")
    with pytest.raises(DataError, match=r"empty\.jsonl: the file is empty"):
        read_table(write(tmp_path, "empty.jsonl", "\n"), "text")
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "missing.csv", "text")
    assert issubclass(DataError, ValueError)


cell = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30)
text_cell = cell.filter(str.strip)  # an empty text is refused (test_bad_input.py)


@settings(max_examples=60, **TMP)
@given(rows=st.lists(st.tuples(text_cell, text_cell, st.sampled_from(["a", "b", "10", "2"])), min_size=1,
                     max_size=20))
def test_csv_and_jsonl_round_trip(tmp_path, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["text", "pair", "label"])
    writer.writerows(rows)
    path = write(tmp_path, "rt.csv", buffer.getvalue())
    assert [(e.text, e.text_pair, e.label) for e in read_table(path, "text", "label", "pair")] == rows
    lines = [json.dumps({"t": t, "p": p, "y": y}) for t, p, y in rows]
    path = write(tmp_path, "rt.jsonl", "\n".join(lines))
    assert [(e.text, e.text_pair, e.label) for e in read_table(path, "t", "y", "p")] == rows


def test_real_files(shared_data):
    sst2 = read_table(shared_data / "sst2/train.tsv", "sentence", "label")
    assert len(sst2) == 67349 and {e.label for e in sst2} == {"0", "1"}
    stsb = read_table(shared_data / "stsb/train.tsv", "sentence1", "score", text_pair_col="sentence2")
    assert len(stsb) == 5749 and stsb[0] == Example("A plane is taking off.", "An air plane is taking off.", "5.000", 2)
    emotions = read_table(shared_data / "goemotions/train.tsv", 0, 1, has_header=False)
    assert len(emotions) == 43410 and LabelMap.from_labels([e.label for e in emotions], multi_label=True).names == [
        str(i) for i in range(28)]
    reviews = read_table(shared_data / "cfimdb/cfimdb-train.txt", 1, 0, has_header=False, delimiter=" ||| ")
    assert len(reviews) == 1707 and {e.label for e in reviews} == {"0", "1"}


# ---------------------------------------------------------------------------------------------- labels


def test_label_map_orders_numbers_numerically_and_text_alphabetically():
    assert LabelMap.from_labels(["10", "9", "-1", "9", None]).names == ["-1", "9", "10"]
    assert LabelMap.from_labels(["pos", "neg", "10"]).names == ["10", "neg", "pos"]
    multi = LabelMap.from_labels(["3,1", "", "2, 1", None], multi_label=True)
    assert multi.names == ["1", "2", "3"] and len(multi) == 3
    assert multi.encode_multi("3, 1") == [1.0, 0.0, 1.0] and multi.encode_multi("") == [0.0, 0.0, 0.0]
    semi = LabelMap.from_labels(["a;b", "c"], multi_label=True, delimiter=";")
    assert semi.encode_multi("c;a") == [1.0, 0.0, 1.0]
    with pytest.raises(DataError, match="label 'x' is not one of the 3 training labels: 1, 2, 3"):
        multi.encode_multi("1,x")
    with pytest.raises(ValueError, match="repeat"):
        LabelMap(["a", "a"])


@settings(max_examples=60, deadline=None)
@given(names=st.lists(st.text(min_size=1, max_size=8).filter(lambda s: s.strip() == s and "," not in s),
                      min_size=1, max_size=12, unique=True), multi=st.booleans())
def test_label_map_round_trips(names, multi):
    labels = LabelMap.from_labels(names, multi_label=multi)
    assert sorted(labels.names) == sorted(names)
    assert [labels.decode(labels.encode(n)) for n in names] == names
    assert sorted(labels.encode(n) for n in names) == list(range(len(names)))
    again = LabelMap.from_json(labels.to_json())
    assert (again.names, again.multi_label, again.delimiter) == (labels.names, multi, ",")
    assert json.loads(labels.to_json())["names"] == labels.names


def test_encode_labels_and_regression_targets_point_at_the_line():
    single = LabelMap(["neg", "pos"])
    examples = [Example("a", label="pos", line=2), Example("b", label="neg", line=3)]
    ids = encode_labels(examples, single)
    assert ids.dtype == torch.long and ids.tolist() == [1, 0]
    with pytest.raises(DataError, match=r"dev\.csv, line 9: label 'meh' is not one"):
        encode_labels(examples + [Example("c", label="meh", line=9)], single, source="dev.csv")
    with pytest.raises(DataError, match=r"dev\.csv, line 4: the row has no label"):
        encode_labels([Example("c", label=None, line=4)], single, source="dev.csv")
    multi = LabelMap(["x", "y", "z"], multi_label=True)
    hot = encode_labels([Example("a", label="z,x", line=2), Example("b", label="", line=3)], multi)
    assert hot.dtype == torch.float32 and hot.tolist() == [[1, 0, 1], [0, 0, 0]]
    scores = regression_targets([Example("a", label="4.5", line=2), Example("b", label=" -1e-1", line=3)])
    assert scores.dtype == torch.float32 and scores.tolist() == pytest.approx([4.5, -0.1])
    for bad in ("high", "nan", None, ""):
        with pytest.raises(DataError, match=r"train\.csv, line 7: the label .* is not a number"):
            regression_targets([Example("a", label=bad, line=7)], source="train.csv")


# ---------------------------------------------------------------------------------------------- split


@settings(max_examples=100, deadline=None)
@given(labels=st.lists(st.sampled_from("abcdefg"), min_size=2, max_size=200),
       fraction=st.floats(0.05, 0.95), seed=st.integers(0, 2**32 - 1))
def test_stratified_split_properties(labels, fraction, seed):
    train, valid = stratified_split(labels, fraction, seed)
    assert sorted(train + valid) == list(range(len(labels))) and not set(train) & set(valid)
    assert train == sorted(train) and valid == sorted(valid)
    assert (train, valid) == stratified_split(labels, fraction, seed)
    counts, in_valid, in_train = Counter(labels), Counter(labels[i] for i in valid), Counter(labels[i] for i in train)
    for c, n_c in counts.items():
        assert abs(in_valid[c] - fraction * n_c) < 1 + 1e-9  # floor or floor + 1 of its share
        assert in_train[c] >= 1  # every class keeps an example to learn from
    assert len(valid) <= round(fraction * len(labels))
    if all(math.floor(fraction * n_c) + 1 < n_c for n_c in counts.values()):
        assert len(valid) == round(fraction * len(labels))


def test_stratified_split_depends_on_the_seed_and_handles_regression():
    labels = ["a"] * 60 + ["b"] * 30 + ["c"] * 10
    splits = {tuple(stratified_split(labels, 0.2, seed)[1]) for seed in range(5)}
    assert len(splits) == 5
    assert Counter(labels[i] for i in stratified_split(labels, 0.2, 0)[1]) == {"a": 12, "b": 6, "c": 2}
    scores = [float(i) / 7 for i in range(50)]
    train, valid = stratified_split(scores, 0.3, 1)
    assert len(valid) == 15 and sorted(train + valid) == list(range(50))
    assert (train, valid) == stratified_split(list(range(50)), 0.3, 1, stratify=False)
    assert len(stratified_split(["a", "b"], 0.01, 0, stratify=False)[1]) == 1
    with pytest.raises(ValueError):
        stratified_split(labels, 1.0, 0)

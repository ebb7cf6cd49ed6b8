"""The sentiment dataset bundled for the default `python -m minift.train`: reachable as package data, parses with
minift's reader, large enough, balanced, free of duplicates and of labels other than positive/negative."""
import csv
import importlib.resources
from collections import Counter

from minift.data import read_table

BUNDLED = importlib.resources.files("minift") / "bundled" / "sentiment.csv"


def normalised(text):
    return " ".join(text.lower().split()).rstrip(".!?")


def test_the_bundled_file_is_package_data_and_parses():
    assert BUNDLED.is_file()
    with importlib.resources.as_file(BUNDLED) as path:
        examples = read_table(path, "text", "label")
        with open(path, encoding="utf-8", newline="") as f:
            assert next(csv.reader(f)) == ["text", "label"]
    assert len(examples) >= 350
    assert all(e.text.strip() == e.text and e.text for e in examples)
    assert all(4 <= len(e.text.split()) <= 30 for e in examples)

    counts = Counter(e.label for e in examples)
    assert set(counts) == {"negative", "positive"}
    for label, n in counts.items():
        assert 0.45 <= n / len(examples) <= 0.55, (label, n, len(examples))

    repeated = [t for t, n in Counter(normalised(e.text) for e in examples).items() if n > 1]
    assert repeated == []


# --- The small datasets the tutorials use for tagging, QA and generation ---------------------------
def bundled(name):
    return importlib.resources.files("minift") / "bundled" / name


def test_tagging_conll_reads_as_iob2_with_three_entity_types():
    from minift.tasks.tagging import read_conll
    with importlib.resources.as_file(bundled("tagging.conll")) as path:
        sentences = read_conll(path)
    assert 140 <= len(sentences) <= 170
    types = Counter()
    for s in sentences:
        assert len(s.words) == len(s.tags) and all(w.strip() == w and w for w in s.words)
        for before, tag in zip(["O", *s.tags], s.tags):
            assert tag == "O" or tag[:2] in ("B-", "I-"), (s.words, tag)
            if tag.startswith("I-"):  # IOB2: an entity starts with B-, and I- continues the same type
                assert before in (f"B-{tag[2:]}", tag), (s.words, s.tags)
            if tag.startswith("B-"):
                types[tag[2:]] += 1
    assert set(types) == {"PER", "LOC", "ORG"} and min(types.values()) >= 30, types
    assert len({" ".join(s.words) for s in sentences}) == len(sentences), "repeated sentences"


def test_qa_json_is_squad_v1_with_answers_where_they_point():
    from minift.tasks.qa import read_squad
    with importlib.resources.as_file(bundled("qa.json")) as path:
        questions = read_squad(path)
    contexts = {q.context for q in questions}
    assert len(contexts) >= 30 and len(questions) >= 100
    assert len({q.id for q in questions}) == len(questions), "question ids must be unique"
    assert len({q.article for q in questions}) == len(contexts), "one article per paragraph, for --articles"
    for q in questions:
        for text, start in q.answers:
            assert q.context[start:start + len(text)] == text and q.context.count(text) == 1, (q.id, text)


def test_generation_csv_maps_each_meaning_representation_to_a_sentence_naming_it():
    import re
    with importlib.resources.as_file(bundled("generation.csv")) as path:
        rows = read_table(path, "source", "target")
    assert 280 <= len(rows) <= 320
    assert len({r.text for r in rows}) == len(rows), "each meaning representation once"
    for r in rows:
        fields = dict(re.findall(r"(\w[\w ]*)\[([^\]]+)\]", r.text))
        assert ", ".join(f"{k}[{v}]" for k, v in fields.items()) == r.text, r.text
        assert {"name", "eatType"} <= fields.keys()
        for key in ("name", "eatType", "food", "near"):
            assert key not in fields or fields[key] in r.label, (key, r.text, r.label)

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

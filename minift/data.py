"""Labelled data for sentence tasks: reading tables, labels and validation splits.

References: CSV per RFC 4180 (Python's `csv`); TSV as GLUE ships it (tab-separated, no quoting, so a lone
`"` is an ordinary character); JSON Lines (jsonlines.org). Stratified split by largest remainder, as
scikit-learn's StratifiedShuffleSplit. Errors in the user's files raise `DataError`, worded with the file,
line and column. Turning the examples into batches (samplers, padding) is `minift/batching.py`.
"""
import codecs
import csv
import json
import math
import os
import re
from dataclasses import dataclass

import numpy as np
import torch


class DataError(ValueError):
    """A problem in the user's data, worded for the user (the command line turns it into exit code 2)."""


@dataclass(frozen=True)
class Example:
    """One row: the text, an optional second text (sentence pairs), the raw label (None if absent),
    and the 1-based line where the row starts in its file, for error messages."""

    text: str
    text_pair: str | None = None
    label: str | None = None
    line: int | None = None


# --- Reading CSV, TSV and JSON Lines -------------------------------------------------------------
DELIMITERS = {".csv": ",", ".tsv": "\t"}
JSON_LINES = (".jsonl", ".json")


def _rows(path, encoding, delimiter):
    """Yield (line where the row starts, list of fields) for every non-blank row of a delimited file.
    A tab means no quoting at all; a delimiter longer than one character (" ||| ") splits each line."""
    if len(delimiter) > 1:
        with open(path, encoding=encoding) as f:
            yield from ((n, raw.rstrip("\r\n").split(delimiter)) for n, raw in enumerate(f, 1) if raw.strip())
        return
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    with open(path, encoding=encoding, newline="") as f:
        reader, start = csv.reader(f, delimiter=delimiter, quoting=quoting), 1
        try:
            for fields in reader:
                if any(field.strip() for field in fields):
                    yield start, fields
                start = reader.line_num + 1
        except csv.Error as e:
            raise DataError(f"{path}, line {start}: {e}") from None


def _json_rows(path, encoding):
    """Yield (line, dict) for every non-blank line of a JSON Lines file."""
    with open(path, encoding=encoding) as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError:
                row = None
            if not isinstance(row, dict):
                raise DataError(f"{path}, line {n}: expected a JSON object on each line (JSON Lines): {raw[:80]!r}")
            yield n, row


def _column(col, header, path):
    """Position of a column given by name or by 0-based index (an int, or a string of digits); a string
    naming a header column is that column, even if it is made of digits."""
    if header is not None and isinstance(col, str) and col.strip() in header:
        return header.index(col.strip())
    if isinstance(col, int) or col.strip().isdigit():
        if header is not None and int(col) >= len(header):
            raise DataError(f"column {col} not found in {path}, which has {len(header)}: {', '.join(header)}")
        return int(col)
    if header is None:
        raise DataError(f"column {col!r} is a name, but {path} is read without a header: give a 0-based index")
    raise DataError(f"column {col!r} not found in {path}; columns are: {', '.join(header)}")


def _field(row, col, name, path, line):
    """row[col] (a list and an index, or a dict and a key), or a DataError naming the missing column."""
    present = col in row if isinstance(row, dict) else col < len(row)
    if not present:
        has = f"the keys {', '.join(row)}" if isinstance(row, dict) else f"{len(row)} fields"
        raise DataError(f"{path}, line {line}: expected a column {name!r} but the row has {has}")
    return row[col]


def _label_text(value):
    """A raw label as a stripped string (None stays None): JSON numbers as written, JSON lists comma-joined."""
    if value is None:
        return None
    if isinstance(value, list):
        return ",".join(map(_label_text, value))
    return value.strip() if isinstance(value, str) else json.dumps(value)


def read_table(path, text_col, label_col=None, text_pair_col=None, has_header=True, encoding="utf-8",
               delimiter=None):
    """Read a table of examples; returns a list of `Example`.

    The format follows the extension unless `delimiter` is given: `.csv` comma-separated (quoted fields
    may hold commas and newlines), `.tsv` tab-separated without quoting, `.jsonl` / `.json` one JSON
    object per line (columns are its keys; `has_header` does not apply). Any other file needs
    `delimiter` (one character, or a longer string such as " ||| " split on literally).
    Columns are names from the header or 0-based indices (an int or a digit string such as "1");
    without a header (`has_header=False`) only indices. A UTF-8 byte-order mark, CRLF line ends,
    blank lines and extra fields are fine; a row missing a needed field is an error.
    """
    path, ext = str(path), os.path.splitext(str(path))[1].lower()
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    if delimiter is None and ext not in DELIMITERS and ext not in JSON_LINES:
        raise DataError(f"{path}: cannot tell the format from the extension {ext!r}; use .csv, .tsv or .jsonl, "
                        f"or pass the delimiter (e.g. delimiter='\\t')")
    read_as = "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding  # -sig: drop a BOM
    is_json = delimiter is None and ext in JSON_LINES
    rows = _json_rows(path, read_as) if is_json else _rows(path, read_as, delimiter or DELIMITERS[ext])
    wanted = {"text": text_col, "text_pair": text_pair_col, "label": label_col}
    wanted = {key: col for key, col in wanted.items() if col is not None}
    try:
        if is_json:
            cols = {key: str(col) for key, col in wanted.items()}
        else:
            header = [name.strip() for name in next(rows, (0, []))[1]] if has_header else None
            if header == []:
                raise DataError(f"{path}: the file is empty (expected a header row)")
            cols = {key: _column(col, header, path) for key, col in wanted.items()}
        examples = []
        for line, row in rows:
            got = {key: _field(row, col, wanted[key], path, line) for key, col in cols.items()}
            for key in {"text", "text_pair"} & got.keys():
                if not isinstance(got[key], str):
                    raise DataError(f"{path}, line {line}: column {wanted[key]!r} should hold text, not {got[key]!r}")
            examples.append(Example(got["text"], got.get("text_pair"), _label_text(got.get("label")), line))
        return examples
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid {encoding} ({e.reason} at byte {e.start}); "
                        f"pass the file's encoding, e.g. encoding='latin-1'") from None


# --- Labels --------------------------------------------------------------------------------------
class LabelMap:
    """Class names <-> ids 0..C-1. For multi-label data each raw label lists names split by `delimiter`."""

    def __init__(self, names, multi_label=False, delimiter=","):
        self.names = [str(n) for n in names]
        self.multi_label, self.delimiter = multi_label, delimiter
        self.ids = {name: i for i, name in enumerate(self.names)}
        if len(self.ids) != len(self.names):
            raise ValueError(f"label names repeat: {self.names}")

    @classmethod
    def from_labels(cls, labels, multi_label=False, delimiter=","):
        """The distinct labels seen (None skipped), sorted: as numbers if all are integers, else as text."""
        raws = [raw for raw in labels if raw is not None]
        parts = [part.strip() for raw in raws for part in raw.split(delimiter)] if multi_label else raws
        seen = set(parts) - {""}
        key = int if all(re.fullmatch(r"[+-]?[0-9]+", s) for s in seen) else str
        return cls(sorted(seen, key=key), multi_label, delimiter)

    def __len__(self):
        return len(self.names)

    def encode(self, name):
        """The id of one label name."""
        if name not in self.ids:
            raise DataError(f"label {name!r} is not one of the {len(self)} training labels: {', '.join(self.names)}")
        return self.ids[name]

    def encode_multi(self, raw):
        """Multi-hot vector (C floats) of a delimited list of names, e.g. "2,7"; "" has no labels."""
        hot = [0.0] * len(self)
        for name in filter(None, (p.strip() for p in raw.split(self.delimiter))):
            hot[self.encode(name)] = 1.0
        return hot

    def decode(self, i):
        """The name of label id i."""
        return self.names[i]

    def to_json(self):
        return json.dumps({"names": self.names, "multi_label": self.multi_label, "delimiter": self.delimiter})

    @classmethod
    def from_json(cls, text):
        d = json.loads(text)
        return cls(d["names"], d["multi_label"], d["delimiter"])


def encode_labels(examples, label_map, source="data"):
    """Class ids as a LongTensor (N,), or multi-hot targets as a FloatTensor (N, C) for a multi-label map;
    errors name `source` (the file) and the line."""
    out = []
    for ex in examples:
        try:
            if ex.label is None or (ex.label == "" and not label_map.multi_label):
                raise DataError("the row has no label")
            out.append(label_map.encode_multi(ex.label) if label_map.multi_label else label_map.encode(ex.label))
        except DataError as e:
            raise DataError(f"{source}, line {ex.line}: {e}") from None
    return torch.tensor(out, dtype=torch.float32 if label_map.multi_label else torch.long)


def regression_targets(examples, source="data"):
    """Labels parsed as numbers: a FloatTensor (N,); a label that is not a finite number is a DataError."""
    out = []
    for ex in examples:
        try:
            value = float(ex.label)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise DataError(f"{source}, line {ex.line}: the label {ex.label!r} is not a number "
                            f"(regression targets must be numbers)")
        out.append(value)
    return torch.tensor(out, dtype=torch.float32)


# --- Validation split ----------------------------------------------------------------------------
def _by_class(labels):
    """{label: [indices with that label]}, classes in order of first appearance."""
    by_class = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    return by_class


def stratified_split(labels, valid_fraction, seed, stratify=True):
    """Split indices 0..N-1 into (train_idx, valid_idx), both sorted, the same for the same seed.

    Stratified: each class c of n_c examples gives floor(f * n_c) or that plus one to validation, the
    plus-ones going to the largest remainders until round(f * N) are chosen; a class always keeps at
    least one example in training. With `stratify=False`, or float labels (regression), a plain shuffle
    sends round(f * N) examples (at least 1, at most N - 1) to validation."""
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must lie strictly between 0 and 1, got {valid_fraction}")
    n, rng = len(labels), np.random.default_rng(seed)
    if not stratify or any(isinstance(label, float) for label in labels):
        order = rng.permutation(n).tolist()
        n_valid = min(max(round(valid_fraction * n), 1), n - 1) if n >= 2 else 0
        return sorted(order[n_valid:]), sorted(order[:n_valid])
    by_class = _by_class(labels)
    share = {c: valid_fraction * len(idx) for c, idx in by_class.items()}
    quota = {c: math.floor(s) for c, s in share.items()}
    left = round(valid_fraction * n) - sum(quota.values())
    for c in sorted(by_class, key=lambda c: quota[c] - share[c]):  # largest remainder first (stable)
        if left > 0 and quota[c] + 1 < len(by_class[c]):
            quota[c] += 1
            left -= 1
    valid = []
    for c, idx in by_class.items():
        valid += rng.choice(idx, quota[c], replace=False).tolist()
    chosen = set(valid)
    return [i for i in range(n) if i not in chosen], sorted(valid)

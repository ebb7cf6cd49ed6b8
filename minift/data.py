"""Labelled data for sentence tasks: reading tables and labels.

References: CSV per RFC 4180 (Python's `csv`); TSV as GLUE ships it (tab-separated, no quoting, so a lone
`"` is an ordinary character); JSON Lines (jsonlines.org). Errors in the user's files raise `DataError`, worded
with the file, line and column. Validation splits and folds are `minift/splits.py`; turning the examples into
batches (samplers, padding) is `minift/batching.py`.
"""
import codecs
import csv
import itertools
import json
import math
import os
import re
from dataclasses import dataclass

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
NUMBERS = re.compile(r"[\s0-9.,;:|eE+-]*[0-9][\s0-9.,;:|eE+-]*")  # a label made of numbers, such as 1, 4.5 or 2,7


def text_encoding(encoding):
    """The codec to open a text file with: "utf-8-sig" for UTF-8 (it drops a byte-order mark), else `encoding`;
    a name Python does not know is a DataError."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise DataError(f"--encoding {encoding}: not an encoding Python knows (try utf-8, latin-1 or cp1252)") from None
    return "utf-8-sig" if name == "utf-8" else encoding


def decode_error(path, encoding):
    """The DataError for a file that is not in `encoding`: where the first bad byte is (line, column and byte
    offset in the file) and which --encoding would read it (utf-16 given its byte-order mark, else cp1252, the
    Windows default, when it decodes the whole file, else latin-1, which decodes any bytes)."""
    data = open(path, "rb").read()
    try:
        data.decode(text_encoding(encoding))
        return DataError(f"{path}: not valid {encoding}; pass the file's encoding with --encoding")
    except UnicodeError as e:  # UnicodeDecodeError, or e.g. a UTF-16 stream without its byte-order mark
        start, reason = getattr(e, "start", 0), getattr(e, "reason", str(e))
    line, column = data.count(b"\n", 0, start) + 1, start - data.rfind(b"\n", 0, start)
    bad = f", byte 0x{data[start]:02x}" if start < len(data) else ""
    guess = "latin-1"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        guess = "utf-16"
    else:
        try:
            data.decode("cp1252")
            guess = "cp1252"
        except UnicodeDecodeError:
            pass
    return DataError(f"{path}, line {line}, column {column} "
                     f"(byte {start}): not valid {encoding} ({reason}{bad}); the file is in "
                     f"another encoding: pass --encoding {guess}, or save the file as UTF-8")


def _rows(path, encoding, delimiter):
    """Yield (first line, last line, list of fields) for every non-blank row of a delimited file. A tab means
    no quoting at all; a delimiter longer than one character (" ||| ") splits each line."""
    if len(delimiter) > 1:
        with open(path, encoding=encoding) as f:
            yield from ((n, n, raw.rstrip("\r\n").split(delimiter)) for n, raw in enumerate(f, 1) if raw.strip())
        return
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    with open(path, encoding=encoding, newline="") as f:
        reader, start = csv.reader(f, delimiter=delimiter, quoting=quoting), 1
        try:
            for fields in reader:
                if any(field.strip() for field in fields):
                    yield start, reader.line_num, fields
                start = reader.line_num + 1
        except csv.Error as e:
            raise DataError(f"{path}, line {start}: {e}; check the quotes of that row (a field that holds "
                            f"{delimiter!r}, a quote or a line break is written in quotes, a quote in it doubled)") \
                from None


def _json_rows(path, encoding):
    """Yield (line, line, dict) for every non-blank line of a JSON Lines file."""
    with open(path, encoding=encoding) as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw.rstrip("\r\n"))
            except json.JSONDecodeError as e:
                whole = " (it looks like one JSON document: write one object per line)" if n == 1 and \
                    raw.strip() in ("[", "{") else ""
                raise DataError(f"{path}, line {n}, column {e.pos + 1}: not valid JSON ({e.msg}){whole}; each line "
                                f"of a JSON Lines file is one object, e.g. {{\"text\": \"...\", \"label\": \"...\"}}"
                                ) from None
            except RecursionError:
                row = None
            if not isinstance(row, dict):
                raise DataError(f"{path}, line {n}: expected a JSON object on each line (JSON Lines): {raw[:80]!r}")
            yield n, n, row


def _other_delimiter(fields, delimiter):
    """The delimiter a one-field row seems to use instead of `delimiter` (tab, semicolon, comma, bar), or None."""
    if len(fields) != 1:
        return None
    return next((d for d in ("\t", ";", ",", "|") if d != delimiter and d in fields[0]), None)


def _column(col, header, path, delimiter=None):
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
    other = _other_delimiter(header, delimiter)
    if other:
        raise DataError(f"column {col!r} not found in {path}: its header {header[0]!r} is one field split by "
                        f"{other!r}, not by {delimiter!r}; save the file with {delimiter!r} between fields "
                        f"(or tab-separated as .tsv)")
    raise DataError(f"column {col!r} not found in {path}; columns are: {', '.join(header)}. Name one of them, "
                    "or, if that first row is data and the file has no header, pass --no-header and give the "
                    "columns by 0-based index (e.g. --text-col 0 --label-col 1)")


def _field(row, col, name, path, line, delimiter=None):
    """row[col] (a list and an index, or a dict and a key), or a DataError naming the missing column."""
    present = col in row if isinstance(row, dict) else col < len(row)
    if not present:
        has = f"the keys {', '.join(row)}" if isinstance(row, dict) else f"{len(row)} fields"
        other = None if isinstance(row, dict) else _other_delimiter(row, delimiter)
        hint = f" (it is split by {other!r}, not {delimiter!r}: one file, one delimiter)" if other else ""
        raise DataError(f"{path}, line {line}: expected a column {name!r} but the row has {has}{hint}")
    return row[col]


def _label_text(value):
    """A raw label as a stripped string (None stays None): JSON numbers as written, JSON lists comma-joined."""
    if value is None:
        return None
    if isinstance(value, list):
        return ",".join(map(_label_text, value))
    return value.strip() if isinstance(value, str) else json.dumps(value)


def _check_width(fields, width, path, start, end, delimiter):
    """A row with more filled fields than the header (or the first row) has holds a delimiter that was meant as
    text, or a quote left open: refuse it rather than read its columns shifted."""
    if len(fields) > width and any(f.strip() for f in fields[width:]):
        where = f"line {start}" if start == end else f"lines {start}-{end}"
        raise DataError(f"{path}, {where}: {len(fields)} fields where the header has {width}; a field holding "
                        f"{delimiter!r} must be in quotes (\"a{delimiter} b\")")
    if len(fields) < width and end > start:
        raise DataError(f"{path}, line {start}: a quoted field opened there runs on to line {end}, and the row has "
                        f"{len(fields)} of {width} fields: close the quote (a quote inside a field is written \"\")")


def _check_header_guess(examples, path, has_header, header_label):
    """Catch a header read as data (--no-header on a file with a header) and data read as a header (a label
    column given by index on a file without one): the first row's label is a word while every other row's is a
    number, or it is a number like all of them. `header_label` is None when the column was found by its name."""
    labels = [e.label for e in examples]
    numbers = [x is not None and NUMBERS.fullmatch(x) is not None for x in labels]
    if has_header is False and len(labels) >= 2 and labels[0] and not numbers[0] and all(numbers[1:]):
        raise DataError(f"{path}, line {examples[0].line}: the label {labels[0]!r} looks like a column name (every "
                        "other label is a number): the file seems to have a header row; drop --no-header")
    if has_header and header_label and NUMBERS.fullmatch(header_label) and all(numbers):
        raise DataError(f"{path}, line 1: the header's label column is {header_label!r}, a number like the labels "
                        "below it: the first row seems to be data; if the file has no header, pass --no-header")


def read_table(path, text_col, label_col=None, text_pair_col=None, has_header=True, encoding="utf-8",
               delimiter=None):
    """Read a table of examples; returns a list of `Example`.

    The format follows the extension unless `delimiter` is given: `.csv` comma-separated (quoted fields
    may hold commas and newlines), `.tsv` tab-separated without quoting, `.jsonl` / `.json` one JSON
    object per line (columns are its keys; `has_header` does not apply). Any other file needs
    `delimiter` (one character, or a longer string such as " ||| " split on literally).
    Columns are names from the header or 0-based indices (an int or a digit string such as "1");
    without a header (`has_header=False`) only indices. A UTF-8 byte-order mark, CRLF line ends,
    blank lines and empty extra fields are fine. A DataError, naming the file and line, refuses: an empty
    file or one without rows, a row missing a needed field or with more fields than the header, an empty
    text, a file not in `encoding`, and a header that looks like data (or data like a header).
    """
    path, ext = str(path), os.path.splitext(str(path))[1].lower()
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    if delimiter is None and ext not in DELIMITERS and ext not in JSON_LINES:
        raise DataError(f"{path}: cannot tell the format from the extension {ext!r}; use .csv, .tsv or .jsonl, "
                        f"or pass the delimiter (e.g. delimiter='\\t')")
    read_as, is_json = text_encoding(encoding), delimiter is None and ext in JSON_LINES
    delimiter = None if is_json else delimiter or DELIMITERS[ext]
    try:
        return _read_examples(path, text_col, label_col, text_pair_col, has_header, read_as, delimiter)
    except UnicodeError:
        raise decode_error(path, encoding) from None


def _read_examples(path, text_col, label_col, text_pair_col, has_header, read_as, delimiter):
    """read_table's body once the file and its format are known (`delimiter` None: JSON Lines)."""
    rows = _json_rows(path, read_as) if delimiter is None else _rows(path, read_as, delimiter)
    wanted = {"text": text_col, "text_pair": text_pair_col, "label": label_col}
    wanted = {key: col for key, col in wanted.items() if col is not None}
    header = width = header_label = None
    if delimiter is None:
        cols = {key: str(col) for key, col in wanted.items()}
    else:
        first = next(rows, None)
        if first is None:
            raise DataError(f"{path}: the file is empty")
        if has_header:
            header = [name.strip() for name in first[2]]
        else:
            rows = itertools.chain([first], rows)
        cols = {key: _column(col, header, path, delimiter) for key, col in wanted.items()}
        width = len(first[2])
        by_index = header is not None and label_col is not None and str(label_col).strip() not in header
        header_label = header[cols["label"]] if by_index else None  # checked against the data below
    examples = []
    for line, end, row in rows:
        if width is not None:
            _check_width(row, width, path, line, end, delimiter)
        got = {key: _field(row, col, wanted[key], path, line, delimiter) for key, col in cols.items()}
        for key in {"text", "text_pair"} & got.keys():
            if not isinstance(got[key], str):
                raise DataError(f"{path}, line {line}: column {wanted[key]!r} should hold text, not {got[key]!r}")
            if not got[key].strip():
                raise DataError(f"{path}, line {line}: the text column {wanted[key]!r} is empty; fill it in or "
                                "delete the row")
        examples.append(Example(got["text"], got.get("text_pair"), _label_text(got.get("label")), line))
    if not examples:
        raise DataError(f"{path}: " + ("the file is empty" if header is None else
                                       "the file has a header row but no rows of data"))
    _check_header_guess(examples, path, has_header if delimiter is not None else None, header_label)
    return examples


# --- Labels --------------------------------------------------------------------------------------
class LabelMap:
    """Class names <-> ids 0..C-1. For multi-label data each raw label lists names split by `delimiter`."""

    def __init__(self, names, multi_label=False, delimiter=","):
        self.names = [str(n) for n in names]
        self.multi_label, self.delimiter = multi_label, delimiter
        self.ids = {name: i for i, name in enumerate(self.names)}
        if len(self.ids) != len(self.names):
            raise DataError(f"label names repeat: {self.names}")

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
            raise DataError(f"label {name!r} is not one of the {len(self)} training labels: {', '.join(self.names)}; "
                            "a model can only predict labels it was trained on: add rows with it to the training "
                            "file, or correct the label")
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
                raise DataError("the row has no label; fill it in or delete the row")
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
                            f"(regression targets must be finite numbers, such as 3 or 4.5): correct or delete the "
                            f"row")
        out.append(value)
    return torch.tensor(out, dtype=torch.float32)

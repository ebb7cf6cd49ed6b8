"""minift.json: the settings a trained model's task is rebuilt from (each task's `meta`), read and checked.

`minift.train` writes it beside the weights (`Task.write_meta`); `evaluate` and `predict` read it back through
`read_meta` before anything else, so a field of the wrong type is one message naming the file and the field
(a CheckpointError), never a KeyError or TypeError deep inside a task. SECURITY.md lists it among the files
minift reads from outside.
"""
from __future__ import annotations

import json
from pathlib import Path

from minift.checkpoint import CheckpointError

# Each field's JSON types.
META_TYPES = {"task": str, "labels": (list, type(None)), "columns": dict, "max_length": int, "pooling": str,
              "has_header": bool, "encoding": str, "label_delimiter": str, "stride": int, "label_all_subtokens": bool,
              "doc_stride": int, "max_answer_length": int, "n_best": int, "max_target_length": int, "beams": int,
              "length_penalty": (int, float), "surface": (dict, type(None)), "temperature": (int, float, type(None)),
              "thresholds": (list, type(None)), "training": (dict, type(None))}


class Meta(dict):
    """minift.json as read: a field a task needs but the file lacks is a CheckpointError naming the file."""

    def __init__(self, fields: dict, path: Path):
        super().__init__(fields)
        self.path = path

    def __missing__(self, key):
        raise CheckpointError(f"{self.path}: no {key!r} field; the file was not written by this version of "
                              "minift.train, or was edited: train the model again")


def read_meta(path: str | Path, tasks) -> Meta:
    """Read minift.json, refusing (CheckpointError naming the field) anything but a JSON object whose known fields
    have their types: `task` one of `tasks`, sizes whole numbers from 0, `labels` distinct strings."""
    path = Path(path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({type(e).__name__}); train the model again") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    for name, kind in META_TYPES.items():
        value = meta.get(name)
        wrong = name in meta and (not isinstance(value, kind) or isinstance(value, bool) and kind is int)
        if wrong or (kind is int and value is not None and value < (1 if name == "max_length" else 0)):
            raise CheckpointError(f"{path}: field {name!r} is {value!r}, not what minift.train writes there; train "
                                  "the model again")
    if meta.get("task") not in tasks:
        raise CheckpointError(f"{path}: task {meta.get('task')!r} is not one of {', '.join(tasks)}")
    labels = meta.get("labels") or []
    if not all(isinstance(x, str) for x in labels) or len(set(labels)) != len(labels):
        raise CheckpointError(f"{path}: 'labels' should be distinct strings, got {labels!r}")
    if meta.get("temperature") is not None and not meta["temperature"] > 0:
        raise CheckpointError(f"{path}: 'temperature' should be > 0, got {meta['temperature']!r}")
    thresholds = meta.get("thresholds")
    if thresholds is not None and (len(thresholds) != len(labels) or not all(
            isinstance(t, (int, float)) and not isinstance(t, bool) for t in thresholds)):
        raise CheckpointError(f"{path}: 'thresholds' should be one number per label, got {thresholds!r}")
    columns = meta.get("columns", {})
    if not all(isinstance(c, (str, int, type(None))) and not isinstance(c, bool) for c in columns.values()):
        raise CheckpointError(f"{path}: 'columns' should map to column names or indices, got {columns!r}")
    return Meta(meta, path)

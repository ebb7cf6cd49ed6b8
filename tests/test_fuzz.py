"""Fuzzing every reader of user files (issue 14): arbitrary bytes and text (any unicode, control characters, very
long lines, odd delimiters and quotes) must end in a result or in the documented user-error type (DataError for
data files, ConfigError for config.json, CheckpointError for minift.json and safetensors), never another exception.
At least 200 examples per reader."""
import copy
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from minift import cli
from minift.checkpoint import CheckpointError, check_safetensors
from minift.config import BERT_KEYS, ConfigError, EncoderConfig
from minift.data import DataError, read_table
from minift.meta import read_meta
from minift.tasks.qa import read_squad
from minift.tasks.tagging import read_conll
from minift.tokenizer import Tokenizer
from tests.tiny import make_tiny_model

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DIR = Path(tempfile.mkdtemp(prefix="minift-fuzz-"))

# Characters that matter to the readers, mixed into any unicode (surrogates cannot be written as UTF-8).
SPECIAL = st.sampled_from(list(',;\t|"\'\r\n \x00\x0b\x0c\x1c\x85\u2028\ufeff{}[]:') + ["-DOCSTART-", "B-PER", "O"])
TEXT = st.lists(st.one_of(SPECIAL, st.text(st.characters(exclude_categories=["Cs"]), max_size=8),
                          st.just("x" * 5000)), max_size=40).map("".join)
BYTES = st.one_of(st.binary(max_size=300), TEXT.map(lambda t: t.encode("utf-8")),
                  TEXT.map(lambda t: t.encode("utf-16")), TEXT.map(lambda t: t.encode("latin-1", "replace")))
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                max_size=4), max_leaves=20)


def as_file(name: str, content: bytes) -> Path:
    path = DIR / name
    path.write_bytes(content)
    return path


@FUZZ
@given(content=BYTES, ext=st.sampled_from([".csv", ".tsv", ".jsonl"]), header=st.booleans(),
       cols=st.sampled_from([("text", "label", None), (0, 1, None), ("0", "2", "1"), ("text", None, "pair")]),
       encoding=st.sampled_from(["utf-8", "latin-1", "utf-16", "cp1252"]))
def test_read_table_gives_examples_or_a_data_error(content, ext, header, cols, encoding):
    try:
        examples = read_table(as_file("f" + ext, content), cols[0], cols[1], cols[2], has_header=header,
                              encoding=encoding)
    except DataError:
        return
    assert examples and all(isinstance(e.text, str) and e.text.strip() for e in examples)


ROW_FIELD = st.text(st.sampled_from('ab ,;\t"\r\n\u00e9\u2028'), max_size=6)


@FUZZ
@given(rows=st.lists(st.lists(ROW_FIELD, min_size=1, max_size=4), max_size=8), ext=st.sampled_from([".csv", ".tsv"]),
       bom=st.booleans(), crlf=st.booleans())
def test_read_table_on_delimited_rows(rows, ext, bom, crlf):
    """Rows made of delimiters, quotes and line breaks: the shapes most likely to confuse the reader."""
    sep, end = ("," if ext == ".csv" else "\t"), ("\r\n" if crlf else "\n")
    content = ("\ufeff" if bom else "") + "text,label".replace(",", sep) + end
    content += "".join(sep.join(row) + end for row in rows)
    try:
        read_table(as_file("r" + ext, content.encode()), "text", "label")
    except DataError:
        pass


@FUZZ
@given(content=BYTES, need_labels=st.booleans())
def test_read_conll_gives_sentences_or_a_data_error(content, need_labels):
    try:
        sentences = read_conll(as_file("f.conll", content), need_labels)
    except DataError:
        return
    assert sentences and all(s.words and (s.tags is None or len(s.tags) == len(s.words)) for s in sentences)


SQUADISH = st.recursive(
    st.none() | st.integers(-3, 30) | st.text(max_size=12) | st.sampled_from(["data", "context"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["data", "paragraphs", "context", "qas", "id", "question", "answers", "text",
                         "answer_start"]), inner, max_size=5), max_leaves=30)


@FUZZ
@given(content=st.one_of(BYTES, SQUADISH.map(lambda d: json.dumps(d).encode()),
                         JSON.map(lambda d: json.dumps(d).encode())), need_labels=st.booleans())
def test_read_squad_gives_questions_or_a_data_error(content, need_labels):
    try:
        questions = read_squad(as_file("f.json", content), need_labels)
    except DataError:
        return
    for q in questions:
        assert all(q.context[start:start + len(text)] == text for text, start in q.answers or [])


META_FIELDS = ["task", "labels", "columns", "max_length", "pooling", "has_header", "encoding", "label_delimiter",
               "stride", "label_all_subtokens", "doc_stride", "max_answer_length", "n_best", "max_target_length",
               "beams", "length_penalty", "surface"]
META_VALUES = st.one_of(JSON, st.sampled_from(sorted(cli.TASKS)), st.integers(-2, 200), st.lists(st.text(max_size=3)))


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.from_folder(make_tiny_model(DIR / "tiny", ["hello", "world"]))


@FUZZ
@given(content=st.one_of(BYTES, JSON.map(lambda d: json.dumps(d).encode()),
                         st.dictionaries(st.sampled_from(META_FIELDS), META_VALUES).map(
                             lambda d: json.dumps(d).encode())))
def test_read_meta_gives_settings_or_a_checkpoint_error(tokenizer, content):
    """minift.json through read_meta and then the task's from_meta, as cli.load_trained reads it."""
    try:
        meta = read_meta(as_file("minift.json", content), cli.TASKS)
        cli.TASKS[meta["task"]].from_meta(meta, tokenizer)
    except CheckpointError:
        pass


CONFIG_FIELDS = [*BERT_KEYS.values(), "model_type", "vocab_size", "max_position_embeddings", "type_vocab_size",
                 "pad_token_id", "layer_norm_eps", "position_embedding_type", "dim", "n_layers", "n_heads"]
CONFIG_VALUES = st.one_of(JSON, st.sampled_from(["bert", "roberta", "distilbert", "gelu", "relu", "absolute"]),
                          st.integers(-2, 64), st.floats(-1, 2))


@FUZZ
@given(content=st.one_of(BYTES, JSON.map(lambda d: json.dumps(d).encode()),
                         st.dictionaries(st.sampled_from(CONFIG_FIELDS), CONFIG_VALUES, max_size=14).map(
                             lambda d: json.dumps(d).encode())))
def test_config_gives_a_config_or_a_config_error(content):
    try:
        cfg = EncoderConfig.from_file(as_file("config.json", content))
    except ConfigError:
        return
    assert cfg.hidden_size % cfg.num_heads == 0 and cfg.vocab_size >= 1


TENSOR = st.fixed_dictionaries({"dtype": st.sampled_from(["F32", "F16", "I64", "BOOL", "Q4", 3]),
                                "shape": st.lists(st.integers(-1, 4), max_size=3),
                                "data_offsets": st.lists(st.integers(-1, 40), min_size=2, max_size=2)})


def safetensors_file(header, data: bytes, lie: int | None) -> bytes:
    raw = json.dumps(header).encode()
    return (len(raw) if lie is None else lie).to_bytes(8, "little") + raw + data


def damaged(position: int, byte: int | None) -> bytes:
    """A real safetensors file (two tensors) with one byte changed, or cut short, at `position`."""
    import torch
    from safetensors.torch import save
    data = save({"w": torch.arange(6, dtype=torch.float32).view(2, 3), "m": torch.tensor([True])})
    position %= len(data)
    return data[:position] if byte is None else data[:position] + bytes([byte]) + data[position + 1:]


@FUZZ
@given(content=st.one_of(
    st.binary(max_size=200),
    st.builds(damaged, st.integers(0, 400), st.one_of(st.none(), st.integers(0, 255))),
    st.builds(safetensors_file, st.one_of(JSON, st.dictionaries(st.sampled_from(["a", "b", "__metadata__"]),
                                                                st.one_of(TENSOR, JSON), max_size=3)),
              st.binary(max_size=48), st.one_of(st.none(), st.integers(0, 2**64 - 1)))))
def test_check_safetensors_passes_or_raises_a_checkpoint_error(content):
    path = as_file("f.safetensors", content)
    try:
        check_safetensors(path)
    except CheckpointError:
        return
    from safetensors.torch import load_file
    load_file(path)  # whatever the check lets through, safetensors itself reads


@FUZZ
@given(text=TEXT, pair=st.one_of(st.none(), TEXT), max_length=st.integers(4, 64))
def test_tokenizer_encodes_any_text(tokenizer, text, pair, max_length):
    out = tokenizer(text, pair, max_length=max_length)
    ids = out["input_ids"]
    assert ids.shape[0] == 1 and 2 <= ids.shape[1] <= max_length and int(ids.max()) < tokenizer.vocab_size
    assert ids[0, 0] == tokenizer.cls_id


def a_checkpoint_state():
    """trainer_state.json as resume.save writes it after one AdamW update of a small model, with that optimizer."""
    import torch

    from minift import optim, resume
    from minift.train import LoopState
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
    opt = optim.AdamW(optim.param_groups(model, 1e-3, 0.01), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    folder = DIR / "checkpoint"
    folder.mkdir(exist_ok=True)
    resume._write(folder, model, opt, torch.amp.GradScaler("cpu", enabled=False), vars(LoopState(step=1)))
    return json.loads((folder / resume.STATE_FILE).read_text()), opt, LoopState, copy.deepcopy(opt.state_dict())


def paths(value, at=()):
    """The places in a JSON value: the value itself, each field and item, all the way down (of a long list, such
    as a random generator's 625 numbers, only the first and the last item, so each field is drawn as often)."""
    yield at
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, item in items:
        if not isinstance(value, list) or len(value) < 5 or key in (0, len(value) - 1):
            yield from paths(item, (*at, key))


STATE, OPT, LOOP, STATE_DICT = a_checkpoint_state()
STATE_PATHS = list(paths(STATE))  # () is the whole file


@settings(FUZZ, max_examples=600)
@given(where=st.sampled_from(STATE_PATHS), value=st.one_of(JSON, st.just(None)))
@example(where=("optimizer", "param_groups", 0, "betas", 0), value=3.402823466385289e+38)  # overflowed a float32
@example(where=("optimizer", "param_groups", 0, "eps"), value=3.402823466385289e+38)
@example(where=("optimizer", "param_groups", 0, "lr"), value=3.402823466385289e+38)
def test_a_damaged_trainer_state_is_refused_or_usable(where, value):
    """One field of a real trainer_state.json (or the whole file) replaced by any JSON value: resume's checks
    raise a CheckpointError, or what they pass works where the loop uses it: the loop's counters as counts
    (range), its scores and losses as numbers (formatted), the random generators restored and drawn from (gauss
    too), the optimizer restored and stepped."""
    import random

    import numpy as np
    import torch

    from minift import resume
    state = value
    if where:
        state = copy.deepcopy(STATE)
        *parent, last = where
        target = state
        for key in parent:
            target = target[key]
        target[last] = value
    saved_random, saved_numpy, saved_torch = random.getstate(), np.random.get_state(), torch.get_rng_state()
    try:
        resume.check_state(state, Path("trainer_state.json"), OPT.state_dict()["param_groups"], LOOP)
        resume._load_optimizer(DIR / "checkpoint", state, OPT)
        resume._load_random(DIR / "checkpoint", state)
    except CheckpointError:
        return
    finally:
        random.setstate(saved_random)
        np.random.set_state(saved_numpy)
        torch.set_rng_state(saved_torch)
    loop = LOOP(**state["loop"])
    for name in ("step", "epoch", "position", "evals_since_best", "skipped", "bad_in_row"):
        range(getattr(loop, name))
    range(loop.best_step or 0)
    f"{loop.train_loss:.4f} {loop.best:.4f} {loop.grad_norm:.3g}"
    try:
        resume._load_random(DIR / "checkpoint", state)
        assert isinstance(random.gauss(0, 1), float) and isinstance(random.random(), float)
        assert np.isfinite(np.random.normal()) and 0 <= np.random.random() < 1
    finally:
        random.setstate(saved_random)
        np.random.set_state(saved_numpy)
        torch.set_rng_state(saved_torch)
    OPT.step()
    OPT.load_state_dict(STATE_DICT)  # as it was, for the next example

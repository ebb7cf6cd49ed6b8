"""Loading checkpoints: the golden fixture, the real all-MiniLM-L6-v2 through the Hub code path, and every
bad checkpoint's error message."""
import json
import shutil
import tracemalloc
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from minift.checkpoint import CheckpointError, check_safetensors, read_tensors, rename, resolve, to_minift_names
from minift.config import ConfigError, EncoderConfig
from minift.encoder import Encoder
from tests.fixtures.make_golden import real_sum

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "golden_bert"


def test_golden_fixture_outputs_are_pinned():
    """No oracle needed: the committed tiny checkpoint gives the outputs pinned when it was made."""
    expected = json.loads((GOLDEN / "expected.json").read_text())
    model = Encoder.from_pretrained(GOLDEN).eval()
    with torch.no_grad():
        hidden = model(torch.tensor(expected["input_ids"]), torch.tensor(expected["attention_mask"]),
                       torch.tensor(expected["token_type_ids"]))
    torch.testing.assert_close(hidden[:, 0], torch.tensor(expected["hidden_first_token"]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(real_sum(hidden, expected["attention_mask"]), torch.tensor(expected["hidden_sum"]),
                               rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(model.pool(hidden), torch.tensor(expected["pooled"]), rtol=1e-5, atol=1e-5)


@pytest.fixture
def golden_copy(tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(GOLDEN, folder)
    return folder


def edit_tensors(folder, change):
    tensors = load_file(folder / "model.safetensors")
    change(tensors)
    save_file(tensors, folder / "model.safetensors")


def test_missing_tensor_is_named(golden_copy):
    edit_tensors(golden_copy, lambda t: t.pop("encoder.layer.1.output.dense.weight"))
    with pytest.raises(CheckpointError, match=r"missing from the checkpoint: layers\.1\.ffn\.down\.weight"):
        Encoder.from_pretrained(golden_copy)


def test_unexpected_tensor_is_named(golden_copy):
    edit_tensors(golden_copy, lambda t: t.update({"encoder.layer.7.attention.self.query.weight": torch.zeros(1)}))
    with pytest.raises(CheckpointError, match=r"unexpected in the checkpoint: layers\.7\.attn\.query\.weight"):
        Encoder.from_pretrained(golden_copy)
    edit_tensors(golden_copy, lambda t: t.update({"mystery.thing": torch.zeros(1)}))
    with pytest.raises(CheckpointError, match=r"unexpected in the checkpoint: mystery\.thing"):
        Encoder.from_pretrained(golden_copy)


def test_wrong_shape_lists_both_shapes_and_every_problem(golden_copy):
    def change(t):
        t["encoder.layer.0.attention.self.query.weight"] = torch.zeros(8, 16)
        t.pop("pooler.dense.bias")
    edit_tensors(golden_copy, change)
    with pytest.raises(CheckpointError) as err:
        Encoder.from_pretrained(golden_copy)
    message = str(err.value)
    assert "layers.0.attn.query.weight: checkpoint (8, 16), model (16, 16)" in message
    assert "missing from the checkpoint: pooler.bias" in message
    assert "2 problems" in message


def test_head_tensors_are_reported_not_fatal(golden_copy, caplog):
    edit_tensors(golden_copy, lambda t: t.update({"classifier.weight": torch.zeros(3, 16),
                                                  "cls.predictions.bias": torch.zeros(50)}))
    with caplog.at_level("INFO", logger="minift.encoder"):
        model = Encoder.from_pretrained(golden_copy)
    assert set(model.head_tensors) == {"classifier.weight", "cls.predictions.bias"}
    assert "classifier.weight" in caplog.text


def test_prefixed_and_legacy_layernorm_names_load(golden_copy):
    """A BertForPreTraining-style checkpoint (`bert.` prefix) with old `gamma`/`beta` LayerNorm names loads."""
    def change(t):
        for name in list(t):
            new = "bert." + name
            if "LayerNorm" in name:
                new = new.replace(".weight", ".gamma").replace(".bias", ".beta")
            t[new] = t.pop(name)
    edit_tensors(golden_copy, change)
    model = Encoder.from_pretrained(golden_copy)
    reference = Encoder.from_pretrained(GOLDEN)
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), reference.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)


def test_sharded_checkpoint_loads(golden_copy):
    tensors = load_file(golden_copy / "model.safetensors")
    names = sorted(tensors)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    for file, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, golden_copy / file)
    (golden_copy / "model.safetensors").unlink()
    index = {"weight_map": {k: file for file, keys in shards.items() for k in keys}}
    (golden_copy / "model.safetensors.index.json").write_text(json.dumps(index))
    assert set(read_tensors(golden_copy)) == set(tensors)
    Encoder.from_pretrained(golden_copy)


def test_truncated_safetensors_says_truncated(golden_copy):
    data = (golden_copy / "model.safetensors").read_bytes()
    (golden_copy / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: the header describes .* bytes of tensors but "
                                              r"the file holds .*truncated"):
        Encoder.from_pretrained(golden_copy)
    (golden_copy / "model.safetensors").write_bytes(data[:5])
    with pytest.raises(CheckpointError, match=r"5 bytes, too short for a safetensors file"):
        Encoder.from_pretrained(golden_copy)


def safetensors_bytes(header: dict, data: bytes = b"", length: int | None = None) -> bytes:
    """A safetensors file by hand: 8-byte little-endian header length, the JSON header, the data."""
    raw = json.dumps(header).encode()
    return (len(raw) if length is None else length).to_bytes(8, "little") + raw + data


F32_2x2 = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}


@pytest.mark.parametrize("header,data,length,pattern", [
    ({"a": F32_2x2}, bytes(16), 10**10, r"claims a 10,000,000,000-byte header but the file has"),
    ({"a": F32_2x2}, bytes(16), 2**64 - 1, r"claims a .*-byte header"),
    ({"a": {**F32_2x2, "dtype": "Q4"}}, bytes(16), None, r"tensor 'a': dtype 'Q4' is not one minift reads"),
    ({"a": {**F32_2x2, "shape": [2, 3]}}, bytes(16), None, r"tensor 'a': shape \[2, 3\] of F32 needs 24 bytes but "
                                                           r"its range holds 16"),
    ({"a": {**F32_2x2, "shape": [2, -2]}}, bytes(16), None, r"shape \[2, -2\] is not a list of sizes"),
    ({"a": {**F32_2x2, "data_offsets": [0, 16, 3]}}, bytes(16), None, r"data_offsets \[0, 16, 3\] is not a"),
    ({"a": {**F32_2x2, "data_offsets": [16, 32]}}, bytes(32), None, r"'a' starts at byte 16 of the data, not at 0"),
    ({"a": F32_2x2, "b": F32_2x2}, bytes(32), None, r"'b' starts at byte 0 of the data, not at 16"),
    ({"a": F32_2x2}, bytes(64), None, r"describes 16 bytes of tensors but the file holds 64"),
    ({"a": F32_2x2}, bytes(8), None, r"claims a .*-byte header|describes 16 bytes of tensors but the file holds 8"),
    ({"__metadata__": {"format": 1}}, b"", None, r"__metadata__ must map names to strings"),
    ({"a": [1, 2]}, b"", None, r"tensor 'a': dtype \[1, 2\] is not one"),
])
def test_check_safetensors_refuses_a_lying_header(tmp_path, header, data, length, pattern):
    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_bytes(header, data, length))
    with pytest.raises(CheckpointError, match=pattern) as err:
        check_safetensors(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("raw", [b"[1, 2]", b"{not json", b"\xff\xfe{}"])
def test_check_safetensors_refuses_a_header_that_is_not_a_json_object(tmp_path, raw):
    path = tmp_path / "model.safetensors"
    path.write_bytes(len(raw).to_bytes(8, "little") + raw)
    with pytest.raises(CheckpointError, match="header is not"):
        check_safetensors(path)


def test_check_safetensors_reads_nothing_of_a_huge_claimed_header(tmp_path):
    """A file claiming a 10 GB header (or 10 GB of tensors) is refused without allocating it."""
    path = tmp_path / "huge.safetensors"
    path.write_bytes(safetensors_bytes({"a": {"dtype": "F32", "shape": [2500, 10**6], "data_offsets": [0, 10**10]}}))
    tracemalloc.start()
    with pytest.raises(CheckpointError, match="describes 10,000,000,000 bytes"):
        check_safetensors(path)
    path.write_bytes((10**10).to_bytes(8, "little") + b"{}")
    with pytest.raises(CheckpointError, match="claims a 10,000,000,000-byte header"):
        check_safetensors(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1_000_000


def test_check_safetensors_accepts_what_safetensors_writes(tmp_path):
    tensors = {"w": torch.randn(3, 4), "b": torch.zeros(0), "i": torch.arange(5), "h": torch.ones(2, dtype=torch.bfloat16),
               "m": torch.tensor([True, False])}
    save_file(tensors, tmp_path / "ok.safetensors", metadata={"format": "pt"})
    check_safetensors(tmp_path / "ok.safetensors")
    check_safetensors(GOLDEN / "model.safetensors")


def test_a_shard_index_may_name_only_files_beside_it(golden_copy, tmp_path):
    index = golden_copy / "model.safetensors.index.json"
    for weight_map, pattern in [({"x": "../../elsewhere.safetensors"}, "is not a file name in"),
                                ({"x": "/etc/passwd"}, "is not a file name in"), ([], "'weight_map' should map"),
                                ({"x": "missing.safetensors"}, r"missing\.safetensors: cannot read it")]:
        index.write_text(json.dumps({"weight_map": weight_map}))
        with pytest.raises(CheckpointError, match=pattern):
            read_tensors(golden_copy)
    index.write_text("[1]")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        read_tensors(golden_copy)


def test_pickle_only_checkpoint_is_refused(golden_copy):
    (golden_copy / "model.safetensors").rename(golden_copy / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"pytorch_model\.bin, a pickle"):
        Encoder.from_pretrained(golden_copy)


def test_missing_config_json(golden_copy):
    (golden_copy / "config.json").unlink()
    with pytest.raises(ConfigError, match=r"no config\.json"):
        Encoder.from_pretrained(golden_copy)


def test_bad_json_names_line_and_column(tmp_path):
    (tmp_path / "config.json").write_text('{\n  "model_type": "bert",\n  oops\n}')
    with pytest.raises(ConfigError, match=r"line 3, column 3"):
        EncoderConfig.from_file(tmp_path / "config.json")


@pytest.mark.parametrize("field,value,pattern", [
    ("position_embedding_type", "relative_key", r"'position_embedding_type' is 'relative_key'"),
    ("model_type", "gpt2", r"'model_type' is 'gpt2'"),
    ("hidden_act", "swish", r"'hidden_act' is 'swish'"),
    ("num_attention_heads", 5, r"'num_attention_heads' \(5\) does not divide"),
    ("hidden_size", "32", r"'hidden_size' is '32'; it must be a whole number of at least 1"),
    ("num_hidden_layers", 2.0, r"'num_hidden_layers' is 2.0; it must be a whole number"),
    ("num_attention_heads", 0, r"'num_attention_heads' is 0; it must be a whole number of at least 1"),
    ("vocab_size", True, r"'vocab_size' is True"),
    ("max_position_embeddings", None, r"'max_position_embeddings' is None"),
    ("pad_token_id", 10**9, r"'pad_token_id' is 1000000000; it must be a whole number from 0 to vocab_size - 1"),
    ("type_vocab_size", -1, r"'type_vocab_size' is -1"),
    ("hidden_dropout_prob", "0.1", r"'hidden_dropout_prob' is '0.1'; a dropout probability"),
    ("attention_probs_dropout_prob", 1.5, r"'attention_probs_dropout_prob' is 1.5"),
    ("layer_norm_eps", -1e-12, r"'layer_norm_eps' is -1e-12; it must be a number above 0"),
    ("hidden_act", ["gelu"], r"'hidden_act' is \['gelu'\]"),
    ("model_type", {"a": 1}, r"'model_type' is \{'a': 1\}"),
])
def test_unsupported_config_names_the_field(field, value, pattern):
    config = json.loads((GOLDEN / "config.json").read_text())
    config[field] = value
    with pytest.raises(ConfigError, match=pattern):
        EncoderConfig.from_dict(config)


def test_config_that_is_not_an_object(tmp_path):
    for text in ("[]", '"bert"', "null"):
        (tmp_path / "config.json").write_text(text)
        with pytest.raises(ConfigError, match="expected a JSON object of settings"):
            EncoderConfig.from_file(tmp_path / "config.json")
    (tmp_path / "config.json").write_bytes(b"\xff\xfe{}")
    with pytest.raises(ConfigError, match="not a UTF-8 JSON file"):
        EncoderConfig.from_file(tmp_path / "config.json")


def test_config_missing_field_is_named():
    config = json.loads((GOLDEN / "config.json").read_text())
    del config["num_hidden_layers"]
    with pytest.raises(ConfigError, match="'num_hidden_layers' is missing"):
        EncoderConfig.from_dict(config)


def test_config_round_trips_through_to_dict():
    config = json.loads((GOLDEN / "config.json").read_text())
    cfg = EncoderConfig.from_dict(config)
    assert EncoderConfig.from_dict(cfg.to_dict()) == cfg


def test_not_a_folder_nor_hub_id():
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        resolve("./no/such/folder")


def test_hub_id_not_cached_while_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match=r"someone/absent-model: not found in .* HF_HUB_OFFLINE"):
        resolve("someone/absent-model")


def test_rename_is_invertible_for_every_parameter():
    model = Encoder.from_pretrained(GOLDEN)
    for family in ("bert", "distilbert"):
        for name in model.state_dict():
            theirs = rename(name, family, reverse=True)
            if theirs is not None:
                assert rename(theirs, family) == name
    renamed, heads, unknown = to_minift_names({"pooler.dense.weight": torch.zeros(1)}, "bert")
    assert list(renamed) == ["pooler.weight"] and not heads and not unknown


# ---- the real pretrained model, through the Hub code path, against transformers ----

SENTENCES = [
    "A fine-tuned encoder is a pretrained encoder plus a small head.",
    "Café, naïve, jalapeño and São Paulo keep their accents.",
    "Ünïcödé ÀÉÎÕÜ façade",
    "東京は日本の首都です。",
    "مرحبا بالعالم",
    "Привет, мир! Как дела?",
    "Γειά σου Κόσμε",
    "I love this movie 😍🔥👍",
    "",
    "   ",
    "!!!???...,,,;;;",
    "e-mail: someone@example.com, url https://example.org/a?b=c",
    "Numbers 3.14159 and 1,000,000 and 2026-11-28",
    "ALL CAPS SHOUTING SENTENCE",
    "don't won't shouldn't y'all",
    "tab\tseparated\tand\nnew\nlines",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism",
    "The quick brown fox jumps over the lazy dog.",
    "हिन्दी भाषा",
    "한국어 문장입니다",
    "word " * 700,  # longer than 512 tokens: truncated
]


@pytest.fixture(scope="module")
def real_models():
    from tests.conftest import HF_CACHE, MINILM
    if not HF_CACHE.is_dir():
        pytest.skip(f"pretrained cache not found at {HF_CACHE} (the ../shared folder beside the project root)")
    transformers = pytest.importorskip("transformers")
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_CACHE", str(HF_CACHE))
    mp.setenv("HF_HUB_OFFLINE", "1")
    ours = Encoder.from_pretrained(MINILM).eval()
    hf = transformers.AutoModel.from_pretrained(MINILM, cache_dir=str(HF_CACHE)).eval()
    tok = transformers.AutoTokenizer.from_pretrained(MINILM, cache_dir=str(HF_CACHE))
    yield ours, hf, tok
    mp.undo()


def test_real_minilm_matches_transformers(real_models):
    ours, hf, tok = real_models
    assert ours.cfg.num_layers == 6 and ours.cfg.hidden_size == 384
    batch = tok(SENTENCES, padding=True, truncation=True, max_length=512, return_tensors="pt")
    assert batch["input_ids"].shape == (len(SENTENCES), 512)
    with torch.no_grad():
        ref = hf(**batch)
        got = ours(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    real = batch["attention_mask"].bool()
    assert (ref.last_hidden_state[real] - got[real]).abs().max() <= 1e-5
    assert (ref.pooler_output - ours.pool(got)).abs().max() <= 1e-5


def test_real_minilm_pairs_match_transformers(real_models):
    ours, hf, tok = real_models
    batch = tok(SENTENCES[:6], SENTENCES[6:12], padding=True, return_tensors="pt")
    assert batch["token_type_ids"].any()
    with torch.no_grad():
        ref = hf(**batch).last_hidden_state
        got = ours(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    real = batch["attention_mask"].bool()
    assert (ref[real] - got[real]).abs().max() <= 1e-5


def test_minift_source_never_unpickles_nor_runs_remote_code():
    """SECURITY.md's promise: no torch.load, no pickle, no trust_remote_code anywhere in the library."""
    import re

    import minift
    forbidden = re.compile(r"\btorch\.load\(|^\s*import pickle|\bpickle\.loads?\(|trust_remote_code\s*=", re.M)
    for path in Path(minift.__file__).parent.rglob("*.py"):
        assert not forbidden.search(path.read_text(encoding="utf-8")), path

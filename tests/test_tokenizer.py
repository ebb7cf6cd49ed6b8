"""minift.tokenizer against transformers' tokenizers (the oracle), on the real MiniLM vocabulary and tiny ones.

transformers 5 note: `BertTokenizer(vocab_file=...)` and `RobertaTokenizer(vocab_file=..., merges_file=...)`
silently ignore the file and build a 5-token vocabulary; the oracle must be given `vocab=` (and `merges=`).
"""
import json
import os
import shutil
import string

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import ByteLevelBPETokenizer, normalizers

from minift.checkpoint import CheckpointError, resolve
from minift.tokenizer import Tokenizer

transformers = pytest.importorskip("transformers")

SENTENCES = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "Café, naïve, résumé, façade and Ångström.",
    "ÉCOLE ÉLÉMENTAIRE à Montréal",
    "你好，世界！这是一个测试。",
    "日本語のテキストも少し。",
    "مرحبا بالعالم",
    "Привет, мир! Как дела?",
    "Γειά σου Κόσμε",
    "I ❤️ emoji 🙂🚀👩‍👩‍👧 and 🇫🇷 flags",
    "",
    "   ",
    "...!!!???---",
    "\"Quotes\", (brackets) [square] {curly} <angle> & ampersand; semi-colon: colon",
    "Numbers: 3.14159, 1,000,000 and 2024-01-31.",
    "e-mail me at someone@example.com or visit https://example.org/path?q=1",
    "Don't stop-believing; it's O'Neil's dog's toy.",
    "tabs\tand\nnewlines\r\nand\u00a0no-break spaces",
    "Control\x00chars\x07are\u200bdropped",
    "A [MASK] in the middle, and [CLS] [SEP] written out.",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "x" * 150,
    "MiXeD CaSe WoRdS",
]
LONG = " ".join(["Tokenizers split long documents into many word pieces."] * 120)  # > 512 tokens
PAIRS = [
    ("What is the capital of France?", "Paris is the capital and most populous city of France."),
    ("", "Only the second text."),
    ("Only the first text.", ""),
    ("Café?", "Привет, 你好 🙂"),
    (LONG[:400], "short"),
    ("short", LONG[:400]),
    (LONG[:300], LONG[:350]),
]
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TINY_VOCAB = BERT_SPECIALS + ["the", "cat", "sat", "on", "mat", "##s", "un", "##believ", "##able", "café",
                              "cafe", "Cat", "The", ",", ".", "!", "'", "你", "好", "##t"]
BPE_CORPUS = ["Hello world, this is a tiny corpus.", "The quick brown fox jumps over the lazy dog!",
              "Héllo wörld 你好 🙂", "Byte-level BPE learns merges of frequent pairs.",
              "hello hello world world"]
RANDOM_TEXT = st.one_of(st.text(string.printable, max_size=80),
                        st.text(st.characters(exclude_categories=("Cs",)), max_size=40))

_LOADED = {}


@pytest.fixture
def minilm(minilm_hub):
    """minift's tokenizer (through the hub path) and transformers' for the real all-MiniLM-L6-v2; loaded once."""
    if not _LOADED:
        _LOADED["ours"] = Tokenizer.from_pretrained(minilm_hub)
        # transformers may have been imported before the fixture set HF_HUB_CACHE: name the cache explicitly.
        _LOADED["hf"] = transformers.AutoTokenizer.from_pretrained(
            minilm_hub, cache_dir=os.environ["HF_HUB_CACHE"], local_files_only=True)
    return _LOADED["ours"], _LOADED["hf"]


@pytest.fixture(scope="module")
def bpe_folder(tmp_path_factory):
    """vocab.json + merges.txt of a tiny byte-level BPE trained here, RoBERTa's special tokens first."""
    folder = tmp_path_factory.mktemp("bpe")
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(BPE_CORPUS, vocab_size=330, min_frequency=1, show_progress=False,
                                special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    trainer.save_model(str(folder))
    return folder


def write_vocab(folder, tokens, **config):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n", encoding="utf-8")
    if config:
        (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def assert_same(ours, hf_out, offsets=True):
    """Our batch (tensors or lists) equals transformers' batch (lists)."""
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        got = ours[name].tolist() if isinstance(ours[name], torch.Tensor) else ours[name]
        assert got == hf_out[name], name
    if offsets:
        assert ours["offsets"] == [[tuple(span) for span in row] for row in hf_out["offset_mapping"]]
        assert ours["sequence_ids"] == [hf_out.sequence_ids(i) for i in range(len(hf_out["input_ids"]))]


# --- The real MiniLM tokenizer, loaded through the Hub cache ---------------------------------------------------

def test_minilm_sentences_match_transformers(minilm):
    ours, hf = minilm
    texts = SENTENCES + [LONG]
    got = ours(texts, max_length=512, return_offsets=True)
    assert got["input_ids"].shape == (len(texts), 512) and got["input_ids"].dtype == torch.long
    assert_same(got, hf(texts, padding=True, truncation=True, max_length=512, return_offsets_mapping=True))
    assert len(hf(LONG)["input_ids"]) > 512  # the long text really is cut


@pytest.mark.parametrize("max_length", [None, 12, 40])
def test_minilm_pairs_longest_first_match_transformers(minilm, max_length):
    ours, hf = minilm
    firsts, seconds = zip(*PAIRS)
    got = ours(list(firsts), list(seconds), max_length=max_length, return_offsets=True)
    expected = hf(list(firsts), list(seconds), padding=True, truncation="longest_first",
                  max_length=max_length or 512, return_offsets_mapping=True)
    assert_same(got, expected)
    assert got["token_type_ids"][0].sum() > 0  # the second text is type 1


def test_minilm_single_string_and_lists(minilm):
    ours, hf = minilm
    assert ours("Hello, world!")["input_ids"].tolist() == [hf("Hello, world!")["input_ids"]]
    ragged = ours(["a", "a b c"], padding=False, return_tensors=None)
    assert ragged["input_ids"] == [hf("a")["input_ids"], hf("a b c")["input_ids"]]
    padded = ours(["a", "a b c"], return_tensors=None)
    assert padded["input_ids"][0] == hf("a")["input_ids"] + [0, 0] and padded["attention_mask"][0][-2:] == [0, 0]


def test_minilm_properties_match_transformers(minilm):
    ours, hf = minilm
    assert (ours.cls_token, ours.sep_token, ours.pad_token, ours.mask_token, ours.unk_token) == \
        (hf.cls_token, hf.sep_token, hf.pad_token, hf.mask_token, hf.unk_token)
    assert (ours.cls_id, ours.sep_id, ours.pad_id, ours.mask_id, ours.unk_id) == (101, 102, 0, 103, 100)
    assert (ours.cls_id, ours.sep_id, ours.pad_id, ours.mask_id, ours.unk_id) == \
        (hf.cls_token_id, hf.sep_token_id, hf.pad_token_id, hf.mask_token_id, hf.unk_token_id)
    assert ours.vocab_size == len(hf) == 30522
    assert ours.model_max_length == hf.model_max_length == 512
    ids = hf("Héllo, wörld! un-believable")["input_ids"]
    assert ours.convert_ids_to_tokens(ids) == hf.convert_ids_to_tokens(ids)
    assert ours.convert_ids_to_tokens(torch.tensor(ids)) == hf.convert_ids_to_tokens(ids)
    assert [ours.token_to_id(t) for t in hf.convert_ids_to_tokens(ids)] == ids
    assert ours.token_to_id("not-a-token-in-any-vocab") is None
    for skip in (True, False):
        assert ours.decode(ids, skip_special_tokens=skip) == hf.decode(ids, skip_special_tokens=skip)
    assert ours.decode(torch.tensor(ids)) == "hello, world! un - believable"


def test_settings_do_not_leak_between_calls(minilm):
    """MiniLM's tokenizer.json carries truncation and padding to 128; each call sets its own."""
    ours, hf = minilm
    text = " ".join(["word"] * 300)
    assert ours(text, max_length=5)["input_ids"].shape == (1, 5)
    assert ours(text)["input_ids"].shape == (1, 302)  # not cut to 5, nor to tokenizer.json's 128
    assert ours("short")["input_ids"].shape == (1, 3)  # not padded to 128
    assert ours(text, truncation=None, max_length=5)["input_ids"].tolist() == [hf(text)["input_ids"]]


def test_hub_id_not_in_cache_while_offline(minilm_hub):
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE"):
        Tokenizer.from_pretrained("nobody-here/no-such-model")


# --- Properties on random text (hypothesis) -------------------------------------------------------------------

RANDOM = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@RANDOM
@given(texts=st.lists(RANDOM_TEXT, min_size=1, max_size=4))
def test_random_text_ids_match_transformers(minilm, texts):
    ours, hf = minilm
    assert_same(ours(texts, return_offsets=True),
                hf(texts, padding=True, truncation=True, max_length=512, return_offsets_mapping=True))


@RANDOM
@given(text=RANDOM_TEXT)
def test_offsets_point_at_the_text_of_each_word(minilm, text):
    """Each word's pieces, "##" removed, are its character span of the text once normalised like BERT's."""
    ours, _ = minilm
    normalize = normalizers.BertNormalizer(lowercase=True).normalize_str
    got = ours(text, return_offsets=True, return_tensors=None)
    tokens = ours.convert_ids_to_tokens(got["input_ids"][0])[1:-1]  # without [CLS] and [SEP]
    spans = got["offsets"][0][1:-1]
    words = []  # [(pieces, start, end)], a word is a piece followed by its "##" continuations
    for token, (start, end) in zip(tokens, spans):
        assert 0 <= start < end <= len(text)
        if token.startswith("##") and words:
            words[-1] = (words[-1][0] + [token[2:]], words[-1][1], end)
        else:
            words.append(([token], start, end))
    for pieces, start, end in words:
        if pieces[0] not in ours.special_tokens.values():  # [UNK], or "[MASK]" written in the text
            assert normalize(text[start:end]).strip() == "".join(pieces)


@RANDOM
@given(first=RANDOM_TEXT, second=RANDOM_TEXT, max_length=st.integers(4, 40),
       truncation=st.sampled_from(["longest_first", "only_second"]))
def test_pairs_are_truncated_like_transformers(minilm, first, second, max_length, truncation):
    ours, hf = minilm
    try:
        # As a batch: given one pair, transformers drops an empty second text ("" is falsy) and gives [CLS] [SEP].
        expected = hf([first], [second], truncation=truncation, max_length=max_length, return_offsets_mapping=True)
    except Exception as e:  # only_second with a first text that leaves no room: we must refuse too
        with pytest.raises(ValueError, match="cannot cut"):
            ours(first, second, max_length=max_length, truncation=truncation)
        assert "truncat" in str(e).lower()
        return
    got = ours(first, second, max_length=max_length, truncation=truncation, return_offsets=True,
               return_tensors=None)
    assert got["input_ids"] == expected["input_ids"]
    assert got["token_type_ids"] == expected["token_type_ids"]
    assert got["offsets"] == expected["offset_mapping"]
    assert len(got["input_ids"][0]) <= max_length


@RANDOM
@given(texts=st.lists(RANDOM_TEXT, min_size=1, max_size=3), max_length=st.integers(3, 30))
def test_truncation_never_exceeds_max_length(minilm, texts, max_length):
    ours, _ = minilm
    got = ours(texts, max_length=max_length)
    assert got["input_ids"].shape[1] <= max_length
    assert (got["input_ids"][:, 0] == ours.cls_id).all()
    lengths = got["attention_mask"].sum(1)
    assert (got["input_ids"][torch.arange(len(texts)), lengths - 1] == ours.sep_id).all()  # [SEP] survives the cut


# --- Windows over long contexts (QA) and pre-split words (NER) -----------------------------------------------

@pytest.mark.parametrize("max_length, stride", [(384, 128), (96, 32)])
def test_squad_windows_match_transformers(minilm, shared_data, max_length, stride):
    ours, hf = minilm
    articles = json.loads((shared_data / "squad" / "squad-v1.1-dev-articles-00-37.json").read_text())["data"]
    paragraphs = [p for article in articles[:6] for p in article["paragraphs"][:2]]
    paragraphs.append(max((p for a in articles for p in a["paragraphs"]), key=lambda p: len(p["context"])))
    questions = [p["qas"][0]["question"] for p in paragraphs]
    contexts = [p["context"] for p in paragraphs]
    got = ours(questions, contexts, max_length=max_length, truncation="only_second", stride=stride,
               return_overflowing=True, return_offsets=True)
    expected = hf(questions, contexts, max_length=max_length, truncation="only_second", stride=stride,
                  return_overflowing_tokens=True, return_offsets_mapping=True, padding=True)
    assert_same(got, expected)
    assert got["overflow_to_sample"].tolist() == expected["overflow_to_sample_mapping"]
    assert len(got["overflow_to_sample"]) > len(questions)  # some contexts really needed several windows


WORDS = [["EU", "rejects", "German", "call", "to", "boycott", "British", "lamb", "."],
         ["Peter", "Blackburn"], ["Ångström", "visited", "Zürich", "🙂", "东京"], ["x"],
         ["unbelievably", "long", "sentence"] * 8]


def test_split_words_match_transformers(minilm):
    ours, hf = minilm
    got = ours(WORDS, is_split_into_words=True, return_offsets=True)
    expected = hf(WORDS, is_split_into_words=True, padding=True, truncation=True, return_offsets_mapping=True)
    assert_same(got, expected)
    assert got["word_ids"] == [expected.word_ids(i) for i in range(len(WORDS))]
    one = ours(WORDS[0], is_split_into_words=True, return_tensors=None)  # a single example: a list of words
    assert one["input_ids"] == [expected["input_ids"][0][:len(one["input_ids"][0])]]


def test_split_words_windows_match_transformers(minilm):
    """Long sentences for NER: windows of pre-split words, word ids kept."""
    ours, hf = minilm
    got = ours(WORDS, is_split_into_words=True, max_length=12, stride=3, return_overflowing=True,
               return_tensors=None)
    expected = hf(WORDS, is_split_into_words=True, max_length=12, stride=3, truncation=True, padding=True,
                  return_overflowing_tokens=True)
    assert got["input_ids"] == expected["input_ids"]
    assert got["word_ids"] == [expected.word_ids(i) for i in range(len(expected["input_ids"]))]
    assert got["overflow_to_sample"] == expected["overflow_to_sample_mapping"]


# --- WordPiece built from vocab.txt alone ---------------------------------------------------------------------

@pytest.mark.parametrize("lower", [True, False])
def test_minilm_vocab_txt_alone_matches_transformers(minilm_hub, tmp_path, lower):
    vocab = resolve(minilm_hub) / "vocab.txt"
    shutil.copy(vocab, tmp_path / "vocab.txt")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": lower}))
    ours = Tokenizer.from_folder(tmp_path)
    hf = transformers.BertTokenizer(vocab=str(vocab), do_lower_case=lower)
    texts = SENTENCES + [LONG]
    assert_same(ours(texts, return_offsets=True),
                hf(texts, padding=True, truncation=True, max_length=512, return_offsets_mapping=True))
    firsts, seconds = zip(*PAIRS)
    assert_same(ours(list(firsts), list(seconds), max_length=30),
                hf(list(firsts), list(seconds), padding=True, truncation=True, max_length=30), offsets=False)
    assert ours.vocab_size == len(hf)


@pytest.mark.parametrize("lower", [True, False])
def test_tiny_handmade_vocab_matches_both_transformers_tokenizers(tmp_path, lower):
    folder = write_vocab(tmp_path / "tiny", TINY_VOCAB, do_lower_case=lower)
    ours = Tokenizer.from_folder(folder)
    fast = transformers.BertTokenizer(vocab=str(folder / "vocab.txt"), do_lower_case=lower)
    legacy = transformers.BertTokenizerLegacy(vocab_file=str(folder / "vocab.txt"), do_lower_case=lower)
    texts = ["The cat sat on the mats!", "The Cat, unbelievable.", "café cafe CAFÉ", "你好 [MASK] dog's", ""]
    got = ours(texts, return_tensors=None, padding=False)
    assert got["input_ids"] == fast(texts)["input_ids"] == legacy(texts)["input_ids"]
    pair = ours("The cat", "sat on the mat.", return_tensors=None)
    expected = legacy("The cat", "sat on the mat.", return_token_type_ids=True)
    assert pair["input_ids"] == [expected["input_ids"]] and pair["token_type_ids"] == [expected["token_type_ids"]]
    cafe = ours.token_to_id("cafe" if lower else "café")
    assert got["input_ids"][2][1] == cafe  # lower-casing strips the accent; without it "café" stays "café"
    assert ours.vocab_size == len(TINY_VOCAB)


# --- RoBERTa's byte-level BPE from vocab.json + merges.txt ----------------------------------------------------

def test_roberta_bpe_matches_transformers(bpe_folder):
    ours = Tokenizer.from_folder(bpe_folder)
    hf = transformers.RobertaTokenizer(vocab=str(bpe_folder / "vocab.json"), merges=str(bpe_folder / "merges.txt"))
    texts = BPE_CORPUS + ["Hello <mask> world", " leading space", "unseen words: ξ 🚀", ""]
    got = ours(texts, return_offsets=True)
    expected = hf(texts, padding=True, return_offsets_mapping=True)
    assert got["input_ids"].tolist() == expected["input_ids"]
    assert got["attention_mask"].tolist() == expected["attention_mask"]
    assert got["offsets"] == expected["offset_mapping"]  # trim_offsets: spans leave out the leading space
    assert not got["token_type_ids"].any()  # RoBERTa has one token type
    assert got["input_ids"][-1, 2].item() == ours.pad_id == 1  # padded with <pad>, id 1
    firsts, seconds = ["Hello world", "The quick brown fox", ""], ["the lazy dog!", "", "a b"]
    pairs = ours(firsts, seconds, max_length=9, return_tensors=None)
    assert pairs["input_ids"] == hf(firsts, seconds, padding=True, truncation=True, max_length=9)["input_ids"]
    tokens = ours.convert_ids_to_tokens(ours("Hello", "world", return_tensors=None)["input_ids"][0])
    assert tokens[0] == "<s>" and tokens[-1] == "</s>" and tokens.count("</s>") == 3  # <s> A </s></s> B </s>
    assert ours.decode(ours("Hello world!")["input_ids"][0]) == "Hello world!"
    assert (ours.cls_token, ours.mask_id, ours.vocab_size) == ("<s>", hf.mask_token_id, len(hf))


# --- Saving, and the limits read from the folder --------------------------------------------------------------

def test_save_round_trip_minilm(minilm, tmp_path):
    ours, _ = minilm
    ours.save(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert config["model_max_length"] == 512 and config["do_lower_case"] is True
    assert config["cls_token"] == "[CLS]" and config["tokenizer_class"] == "BertTokenizer"
    assert json.loads((tmp_path / "tokenizer.json").read_text())["padding"] is None
    again = Tokenizer.from_folder(tmp_path)
    hf_again = transformers.AutoTokenizer.from_pretrained(tmp_path)
    texts = SENTENCES[:12]
    expected = ours(texts, return_offsets=True)
    for got in (again(texts, return_offsets=True), hf_again(texts, padding=True, return_offsets_mapping=True,
                                                            return_tensors="pt")):
        assert torch.equal(got["input_ids"], expected["input_ids"])
        assert torch.equal(got["token_type_ids"], expected["token_type_ids"])
    assert hf_again.model_max_length == 512


def test_save_round_trip_cased_vocab_and_bpe(tmp_path, bpe_folder):
    Tokenizer.from_folder(write_vocab(tmp_path / "cased", TINY_VOCAB, do_lower_case=False)).save(tmp_path / "json")
    (tmp_path / "json" / "tokenizer_config.json").unlink()  # tokenizer.json alone: its normalizer says "cased"
    cased = Tokenizer.from_folder(tmp_path / "json")
    bpe = Tokenizer.from_folder(bpe_folder)
    for name, ours, texts in [("cased", cased, ["The Cat café", "the cat CAFE"]),
                              ("bpe", bpe, ["Hello world", " the lazy dog!"])]:
        ours.save(tmp_path / f"saved-{name}")
        hf = transformers.AutoTokenizer.from_pretrained(tmp_path / f"saved-{name}")
        assert ours(texts, return_tensors=None)["input_ids"] == hf(texts, padding=True)["input_ids"], name
        assert Tokenizer.from_folder(tmp_path / f"saved-{name}")(texts)["input_ids"].equal(ours(texts)["input_ids"])


@pytest.mark.parametrize("config, expected", [
    ({"model_type": "roberta", "max_position_embeddings": 514}, 512),
    ({"model_type": "bert", "max_position_embeddings": 128}, 128),
    (None, 512),
])
def test_model_max_length_sentinel_falls_back_to_positions(tmp_path, config, expected):
    write_vocab(tmp_path, TINY_VOCAB, model_max_length=int(1e30))
    if config:
        (tmp_path / "config.json").write_text(json.dumps(config))
    assert Tokenizer.from_folder(tmp_path).model_max_length == expected


# --- Errors that say what to do -------------------------------------------------------------------------------

def test_folder_without_tokenizer_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheckpointError) as error:
        Tokenizer.from_folder(tmp_path)
    for part in (str(tmp_path), "tokenizer.json", "vocab.txt", "vocab.json + merges.txt"):
        assert part in str(error.value)


def test_bad_tokenizer_files(tmp_path):
    write_vocab(tmp_path / "no-cls", [t for t in TINY_VOCAB if t != "[CLS]"])
    with pytest.raises(CheckpointError, match=r"vocab.txt: the vocabulary lacks cls_token '\[CLS\]'"):
        Tokenizer.from_folder(tmp_path / "no-cls")
    no_mask = Tokenizer.from_folder(write_vocab(tmp_path / "no-mask", [t for t in TINY_VOCAB if t != "[MASK]"]))
    assert no_mask.mask_id is None and no_mask.vocab_size == len(TINY_VOCAB) - 1  # not added beyond the vocab
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "tokenizer.json").write_text('{"version": "1.0", "model": ')
    with pytest.raises(CheckpointError, match="tokenizer.json: cannot read it"):
        Tokenizer.from_folder(tmp_path / "broken")
    (tmp_path / "broken" / "tokenizer_config.json").write_text("{do_lower_case: true}")
    with pytest.raises(CheckpointError, match="tokenizer_config.json: not valid JSON"):
        Tokenizer.from_folder(tmp_path / "broken")


@pytest.mark.parametrize("args, kwargs, message", [
    (("q " * 20, "context"), {"max_length": 10, "truncation": "only_second"}, "cannot cut an example"),
    (("what?", "a long context " * 20), {"max_length": 10, "truncation": "only_second", "stride": 7,
                                         "return_overflowing": True}, "stride=7"),
    (("q " * 12, "a long context " * 20), {"max_length": 20, "truncation": "only_second", "stride": 10,
                                           "return_overflowing": True}, "cannot cut an example"),  # a Rust panic
    (("text",), {"max_length": 2}, "no room for text"),
    ((["a", "a b c"],), {"padding": False}, "padding=True"),
    (("text",), {"truncation": "longest"}, "truncation='longest'"),
    (("text",), {"return_tensors": "np"}, "return_tensors='np'"),
    ((["a", "b"], ["c"]), {}, "2 texts but 1 text_pairs"),
    (([],), {}, "nothing to tokenize"),
])
def test_call_errors(tmp_path, args, kwargs, message):
    ours = Tokenizer.from_folder(write_vocab(tmp_path, TINY_VOCAB))
    with pytest.raises(ValueError, match=message.replace("?", r"\?")):
        ours(*args, **kwargs)
    assert ours("the cat")["input_ids"].tolist() == [[2, 5, 6, 3]]  # and the tokenizer still works

"""Lesson 2: tokenization and padding: WordPiece, pairs, truncation, offsets; padding changes no prediction, but
it costs compute, and length bucketing wins most of it back.

Run:  python tutorials/02_tokenization_and_padding.py            (seconds: the bundled reviews)
      python tutorials/02_tokenization_and_padding.py --full     (all 67,349 SST-2 training sentences; writes
                                                                  tutorials/results/02_padding.json and .png)

The measured numbers, from tutorials/results/02_padding.json (the --full command above, on an AMD EPYC with
2 cores shared with other jobs, torch 2.13.0+cpu): SST-2's 67,349 training sentences average 13.3 word pieces
with [CLS] and [SEP], the longest 66 (histogram: tutorials/results/02_padding.png). In batches of 32, padding
every row to max_length 128 makes 89.6 % of the computed tokens padding; padding each random batch to its
longest row, 66.8 %; length-bucketed batches, 4.5 %. Through the encoder (every pad computed, one thread),
256 of the sentences took 10.19 CPU seconds padded to 128, 3.14 in random batches, 1.25 bucketed.

Read beside it: minift/tokenizer.py (Tokenizer.__call__), minift/batching.py (pad_batch,
random_batches, length_bucketed_batches), minift/encoder.py (additive_mask), minift/heads.py (pool).
"""
import time
from importlib import resources

import torch

from course import MODEL, RESULTS, arguments, load, save
from minift import Encoder, Tokenizer
from minift.batching import length_bucketed_batches, pad_batch, random_batches
from minift.data import read_table
from minift.heads import pool

args = arguments(__doc__).parse_args()
torch.manual_seed(0)
tokenizer = Tokenizer.from_pretrained(MODEL)


def pieces(text, pair=None) -> list[str]:
    """The tokens of one example, special tokens included."""
    return tokenizer.convert_ids_to_tokens(tokenizer(text, pair, return_tensors=None)["input_ids"][0])


# 1. WordPiece. The text is lower-cased and split into words at spaces and punctuation; each word is then cut
#    greedily, longest match first, into pieces of a 30,522-entry vocabulary. A piece that continues a word is
#    written with "##". Here is that loop by hand, checked against the real tokenizer on words common and rare.
def wordpiece(word: str) -> list[str]:
    out, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start and tokenizer.token_to_id(("##" if start else "") + word[start:end]) is None:
            end -= 1  # shorten the candidate until the vocabulary has it
        if end == start:
            return [tokenizer.unk_token]  # no piece fits: the whole word becomes [UNK]
        out.append(("##" if start else "") + word[start:end])
        start = end
    return out


for word in ["fine", "tokenizers", "unbelievably", "minift", "backpropagation"]:
    print(f"{word!r:18} -> {wordpiece(word)}")
    assert wordpiece(word) == pieces(word)[1:-1]
print("a sentence:", pieces("Tokenizers split unbelievably long words."))

# 2. Offsets: every piece remembers the characters it came from, (start, end) in the original text, so that a
#    prediction on pieces (an entity, an answer span) can be mapped back to the text. Special tokens get (0, 0).
text = "Minift's WordPiece keeps offsets."
enc = tokenizer(text, return_offsets=True, return_tensors=None)
for token, (s, e) in zip(tokenizer.convert_ids_to_tokens(enc["input_ids"][0]), enc["offsets"][0]):
    if e > s:
        assert text[s:e].lower() == token.removeprefix("##"), (token, text[s:e])
print("offsets map pieces back to text:", [text[s:e] for s, e in enc["offsets"][0] if e > s])

# 3. Pairs. Two texts (question and context, or two sentences to compare) become [CLS] A [SEP] B [SEP]; the token
#    type ids (segment ids) say which text each token belongs to, 0 for A and 1 for B, and the encoder adds a
#    learned segment vector for each.
pair = tokenizer("Where is the Olive?", "The Olive is by the river.", return_tensors=None)
tokens, types = tokenizer.convert_ids_to_tokens(pair["input_ids"][0]), pair["token_type_ids"][0]
print("pair:", " ".join(f"{t}/{s}" for t, s in zip(tokens, types)))
assert tokens.count("[SEP]") == 2 and types[tokens.index("[SEP]") + 1] == 1 and types[0] == 0

# 4. Truncation. The model has 512 positions; a longer input must be cut. max_length counts the special tokens.
#    "longest_first" cuts a token at a time from the longer text of a pair; "only_second" keeps the question
#    whole and cuts the context (QA). With return_overflowing the cut part is kept as further windows, each
#    repeating `stride` tokens of the one before, so no answer is lost at a border (lesson 14 uses this).
long = "the river runs past the old mill and under the stone bridge to the sea"
cut = tokenizer("where does the river go?", long, max_length=16, truncation="only_second", return_tensors=None)
print("only_second, 16 tokens:", " ".join(tokenizer.convert_ids_to_tokens(cut["input_ids"][0])))
assert len(cut["input_ids"][0]) == 16 and pieces("where does the river go?")[:-1] == \
    tokenizer.convert_ids_to_tokens(cut["input_ids"][0])[:7]
win = tokenizer(long, max_length=10, stride=2, return_overflowing=True, return_tensors=None)
for ids in win["input_ids"]:
    print("  window:", " ".join(t for t in tokenizer.convert_ids_to_tokens(ids) if t != "[PAD]"))
assert win["input_ids"][0][7:9] == win["input_ids"][1][1:3]  # the stride: two tokens repeated

# 5. Padding. A batch is a rectangle (B, T): shorter rows are padded with [PAD] and the attention mask is 0
#    there. The mask adds -inf (in practice the dtype's minimum) to every score towards a padded key, so no real
#    token reads a pad (lesson 1 showed the weights), and a padded sentence computes exactly what it computes
#    alone. Only the mask makes this true: without it the pads are attended to like words.
encoder = Encoder.from_pretrained(MODEL).eval()
short, longer = "A quiet film.", "A quiet, patient film that rewards anyone who stays with it to the end."
alone = tokenizer(short)
both = tokenizer([short, longer])  # the short one is now padded
n = alone["input_ids"].shape[1]
with torch.no_grad():
    h_alone = encoder(alone["input_ids"], alone["attention_mask"])  # (1, n, H)
    h_both = encoder(both["input_ids"], both["attention_mask"])  # (2, T, H), T > n
    h_nomask = encoder(both["input_ids"], torch.ones_like(both["attention_mask"]))
diff = float((h_alone[0] - h_both[0, :n]).abs().max())
broken = float((h_alone[0] - h_nomask[0, :n]).abs().max())
print(f"{n} tokens alone vs padded to {both['input_ids'].shape[1]}: largest difference {diff:.1e}; "
      f"with the mask left out {broken:.2f}")
assert diff < 1e-5 and broken > 1e-2

#    The sentence vector must skip the pads too: minift's mean pooling divides by the real tokens only, while a
#    plain mean over the padded row drifts towards the pad vectors.
v_alone = pool(encoder, h_alone, alone["attention_mask"], "mean")[0]
v_both = pool(encoder, h_both, both["attention_mask"], "mean")[0]
naive = h_both[0].mean(0)
print(f"mean-pooled vector alone vs padded: {float((v_alone - v_both).abs().max()):.1e}; a plain mean over "
      f"the padded row: {float((v_alone - naive).abs().max()):.2f}")
assert torch.allclose(v_alone, v_both, atol=1e-5) and not torch.allclose(v_alone, naive, atol=1e-2)


# 6. What padding costs. Every pad token goes through every layer like a word, so a batch costs B x T token
#    steps (and B x T² in attention) however few tokens are real. Three ways to batch the same sentences:
#    padded to a fixed max_length (many tutorials do this), padded to the longest row of each random batch
#    (dynamic padding: minift's collate), and batched by similar length (length_bucketed_batches, as
#    --bucket does in training: shuffle, sort chunks of 50 batches by length, shuffle the batches).
def cost(batches, lengths, width=None) -> dict:
    """Tokens computed (B x T summed over batches), how many are padding, and the attention cells (B x T²)."""
    real = sum(lengths[i] for b in batches for i in b)
    rows = [(len(b), width or max(lengths[i] for i in b)) for b in batches]
    computed = sum(B * T for B, T in rows)
    attention = sum(B * T * T for B, T in rows)
    attention_real = sum(lengths[i] ** 2 for b in batches for i in b)
    return {"tokens": computed, "padding_share": 1 - real / computed, "attention_cells": attention,
            "attention_padding_share": 1 - attention_real / attention}


if args.full:
    path = args.data_dir / "sst2" / "train.tsv"
    texts = [e.text for e in read_table(path, "sentence", "label")]
else:
    texts = [e.text for e in read_table(resources.files("minift") / "bundled" / "sentiment.csv", "text", "label")]
ids = tokenizer(texts, max_length=128, padding=False, return_tensors=None)["input_ids"]
lengths = [len(x) for x in ids]
batch_size, max_length = 32, 128
ways = {"fixed max_length 128": cost(random_batches(len(ids), batch_size, 0, 0), lengths, max_length),
        "dynamic padding, random batches": cost(random_batches(len(ids), batch_size, 0, 0), lengths),
        "dynamic padding, length-bucketed": cost(length_bucketed_batches(lengths, batch_size, 0, 0), lengths)}
print(f"{len(texts)} sentences, {sum(lengths) / len(lengths):.1f} tokens on average, longest {max(lengths)}; "
      f"batches of {batch_size}:")
for name, c in ways.items():
    print(f"  {name:34} {c['tokens']:>10,} tokens computed, {100 * c['padding_share']:5.1f} % padding "
          f"({100 * c['attention_padding_share']:5.1f} % of attention cells)")
shares = [c["padding_share"] for c in ways.values()]
assert shares[0] > shares[1] > shares[2], "each way should waste less than the one before"
assert ways["dynamic padding, length-bucketed"]["padding_share"] < 0.1


# 7. Tokens are a proxy: does the clock agree? The same sentences through the encoder, batched the three ways.
#    The encoder runs with pack=False here, so that every pad goes through every layer, as in transformers. (On a
#    CPU minift's default packs the real tokens of a padded batch into one (N, H) matrix for every layer but
#    attention, which removes much of the pads' cost: see Encoder.forward and benchmarks/encoder_speed.py.)
#    The clock is the process's CPU time on one thread: wall time on a machine shared with other jobs measures
#    the other jobs too, while CPU time counts only the work done here.
def encode_time(batches, width=None) -> float:
    start = time.process_time()
    with torch.no_grad():
        for b in batches:
            input_ids, mask = pad_batch([ids[i] for i in b])  # (B, T): T the longest row of this batch
            if width:  # pad on to a fixed width
                input_ids = torch.nn.functional.pad(input_ids, (0, width - input_ids.shape[1]))
                mask = torch.nn.functional.pad(mask, (0, width - mask.shape[1]))
            encoder(input_ids, mask)
    return time.process_time() - start


sample = torch.randperm(len(ids), generator=torch.Generator().manual_seed(0))[:256 if args.full else 64].tolist()
batchings = {"fixed max_length 128": (random_batches(len(sample), batch_size, 0, 0), max_length),
             "dynamic padding, random batches": (random_batches(len(sample), batch_size, 0, 0), None),
             "dynamic padding, length-bucketed":
                 (length_bucketed_batches([lengths[i] for i in sample], batch_size, 0, 0), None)}
timed, threads = {}, torch.get_num_threads()
encoder.pack = False
torch.set_num_threads(1)
for repeat in range(3 if args.full else 1):  # the best of 3, interleaved: other programs may share the cores
    for name, (batches, width) in batchings.items():
        t = encode_time([[sample[i] for i in b] for b in batches], width)
        timed[name] = min(t, timed.get(name, t))
encoder.pack = None  # back to the default (pack on a CPU)
torch.set_num_threads(threads)
print(f"encoder forward on {len(sample)} of them, CPU seconds on one thread (best of {repeat + 1}):",
      ", ".join(f"{name} {t:.2f}" for name, t in timed.items()))
if args.full:  # timings of a handful of batches are too noisy to assert in the fast run
    assert timed["dynamic padding, length-bucketed"] < timed["dynamic padding, random batches"] \
        < timed["fixed max_length 128"]

if args.full:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.hist(lengths, bins=range(0, max(lengths) + 2), color="tab:blue")
    ax.set(xlabel="word pieces per sentence ([CLS] and [SEP] included)", ylabel="sentences",
           title=f"SST-2 training sentences (n = {len(lengths):,})")
    fig.tight_layout()
    fig.savefig(RESULTS / "02_padding.png", dpi=120)
    save("02_padding", {"sentences": len(lengths), "mean_tokens": sum(lengths) / len(lengths),
                        "longest": max(lengths), "batch_size": batch_size, "batching": ways,
                        "encoder_cpu_seconds_one_thread": {"sentences": len(sample), **timed}})
else:
    committed = load("02_padding")
    if committed:
        print("the committed --full run on SST-2:", ", ".join(
            f"{name} {100 * c['padding_share']:.1f} % padding" for name, c in committed["batching"].items()))

# Exercises (worked solutions in tutorials/solutions/02_tokenization_and_padding.py)
# 1. Tokenize a sentence with an accented word ("café") and a word the vocabulary cannot have in one piece.
#    Which normalizer step explains each output? Show that `wordpiece` above still agrees.
# 2. Left padding: put the pads before the words (as decoders batch prompts). Do the outputs still equal the
#    unpadded ones? What else must move with the tokens for this to hold? (Hint: positions.)
# 3. Bucketing trades randomness for speed: how many of the 50-batch chunk's batches share a length? Vary
#    `chunk_batches` (1, 10, 50, all) and report the padding share of each.

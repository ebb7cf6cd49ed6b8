"""Lesson 15: generation with an encoder: the sequence-to-sequence mask drawn, teacher forcing, greedy decoding and
beam search with a key/value cache, BLEU and ROUGE on the outputs.

Run:  python tutorials/15_generation_with_an_encoder.py          (seconds: minift/bundled/generation.csv, 300 rows)
      python tutorials/15_generation_with_an_encoder.py --full   (steps 3-5 on E2E NLG: 2,000 rows of trainset.csv,
                                                                  80 steps of 16; BLEU / ROUGE on the first 20 MRs
                                                                  of devset.csv with all their references; writes
                                                                  tutorials/results/15_generation_with_an_encoder.json)

A BERT-style encoder has no decoder, yet it can generate (Dong et al. 2019, UniLM): pack source and target into
one sequence and let the attention mask do the rest. Source tokens see the source only; a target token sees the
source and the target up to itself. Trained to predict each next target token, the model reads a sentence off its
own outputs one token at a time.

Read beside it: minift/unilm.py (seq2seq_mask, Seq2SeqLM: start, step), minift/generate.py (greedy, beam_search),
minift/tasks/seq2seq.py (pack, featurize, loss, generate, evaluate), minift/metrics/generation.py, rouge.py.

The measurement, from tutorials/results/15_generation_with_an_encoder.json (the --full command above, on an AMD EPYC
with 2 cores shared with other jobs (load average 2 to 5), one torch thread, torch 2.13.0+cpu; 178 CPU seconds):
80 steps of 16 on E2E take the teacher-forced loss from 11.24 to 2.34; on the first 20 dev MRs (210 references)
greedy decoding scores BLEU 35.5 / ROUGE-L 44.9, beam 4 BLEU 38.2 / ROUGE-L 44.0. The sentences have E2E's form
but often the wrong restaurant ("The Golden Curry" for name[Alimentum]): form is learnt before content. More
training fixes that: 3,000 rows for one epoch on 2 CPU cores give greedy BLEU 44.35 and beam 4 49.03 on the first
30 MRs (benchmarks/results/e2e.json, "cpu-rows3000-dev30"), and all 42,061 rows for 2 epochs on an H200 give greedy
BLEU 69.22 on all 547 (benchmarks/results/gpu/e2e.json; commands in benchmarks/README.md).
"""
import random
from importlib import resources

import torch

from course import MODEL, arguments, load, save, train_task
from minift import Encoder, Tokenizer
from minift.generate import beam_search, greedy
from minift.tasks.seq2seq import Seq2SeqTask
from minift.unilm import seq2seq_mask

args = arguments(__doc__).parse_args()
torch.manual_seed(0)

# 1. The mask, drawn for a source of S = 3 tokens ([CLS] s_1 [SEP]), a target of 2, padded to T = 6. Row i is a
#    query, column j a key: 1 where i may attend j. The source block sees only the source; the target block is
#    lower-triangular (no peeking ahead); a pad sees only itself (an empty row would be NaN under softmax).
mask = seq2seq_mask(torch.tensor([3]), torch.tensor([5]), 6)[0].int()  # (T, T)
names = ["[CLS]", "s_1", "[SEP]", "t_1", "t_2", "[PAD]"]
print("        " + " ".join(f"{n:>5}" for n in names))
for name, row in zip(names, mask.tolist()):
    print(f"  {name:5} " + " ".join(f"{v:>5}" for v in row))
assert mask.tolist() == [[1, 1, 1, 0, 0, 0]] * 3 + [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 1]]

# 2. Teacher forcing. A training row is [CLS] source [SEP] t_1 .. t_m, and the label at each position is the
#    token that should come next: [SEP] -> t_1, t_i -> t_{i+1}, t_m -> [SEP] (the end). The model always sees the
#    gold prefix, never its own guesses, so one forward pass trains every target position at once.
tokenizer = Tokenizer.from_pretrained(MODEL)
task = Seq2SeqTask("seq2seq", tokenizer, {"text": "source", "label": "target"}, max_length=64, max_target_length=40)
rows = task.read(resources.files("minift") / "bundled" / "generation.csv")
task.fit_truecasing(rows)
f = task.featurize(rows[:1])[0]
tokens = tokenizer.convert_ids_to_tokens(f["input_ids"])
shown = [(t, tokenizer.convert_ids_to_tokens([l])[0]) for t, l in zip(tokens, f["labels"]) if l != -100]
print("input -> label:", ", ".join(f"{t}->{l}" for t, l in shown[:6]), "...", ", ".join(
    f"{t}->{l}" for t, l in shown[-2:]))
first_target = len(f["source_ids"])
assert f["labels"][first_target - 1] == f["input_ids"][first_target]  # [SEP] predicts t_1
assert f["labels"][-1] == tokenizer.sep_id and f["token_type_ids"][first_target] == 1

# 3. Train: the encoder and an LM head (tied to the word embeddings, pretrained by MLM) on the rows but the last
#    12, for 12 steps of 8; the loss is the cross-entropy at the target positions only. (A fast run: the model
#    learns the form of the sentences long before their content. `python -m minift.train --task seq2seq` on the
#    same file, for a few epochs, is the real training.)
#    --full: E2E NLG, 2,000 rows of trainset.csv drawn with seed 0, 80 steps of 16 (1,280 rows, under one epoch),
#    held out: the first 20 meaning representations of devset.csv, each with all its references (E2E is scored
#    against several references per source, which lifts BLEU).
if args.full:
    task = Seq2SeqTask("seq2seq", tokenizer, {"text": "mr", "label": "ref"}, max_length=96, max_target_length=64)
    train = random.Random(0).sample(task.read(args.data_dir / "e2e" / "trainset.csv"), 2000)
    task.fit_truecasing(train)
    dev = task.read(args.data_dir / "e2e" / "devset.csv")
    first = list(dict.fromkeys(e.text for e in dev))[:20]
    valid, steps, batch_size = [e for e in dev if e.text in set(first)], 80, 16
else:
    train, valid, steps, batch_size = rows[:-12], rows[-12:], 12, 8
train_f, valid_f = task.featurize(train), task.featurize(valid)
model = task.build_model(Encoder.from_pretrained(MODEL))
step_losses = train_task(task, model, train_f, steps, lr=3e-4, batch_size=batch_size, warmup=3)  # minift.train's
print(f"teacher-forced loss {step_losses[0]:.2f} -> {step_losses[-1]:.2f} in {steps} steps")
assert step_losses[-1] < step_losses[0] / 2

# 4. Decoding. Greedy takes the likeliest next token each step; beam search keeps the 4 best prefixes by total
#    log-probability. Both run the source once and keep its keys and values (the cache): the mask makes the source
#    blind to the target, so its K, V never change, and each new token attends to the cache. Exact, not an
#    approximation: with and without the cache the outputs are the same.
model.eval()
firsts = list({f["source"]: f for f in valid_f}.values()) if args.full else valid_f  # E2E: one row per MR
sources = [f["source_ids"] for f in firsts[:4]]
sep, pad = tokenizer.sep_id, tokenizer.pad_id
cached = greedy(model, sources, sep, pad, max_new_tokens=40)
uncached = greedy(model, sources, sep, pad, max_new_tokens=40, cache=False)
beamed = beam_search(model, sources, sep, pad, beams=4, max_new_tokens=40)
assert [ids for ids, _ in cached] == [ids for ids, _ in uncached]
print("greedy with and without the cache: the same tokens")
for src, (g, g_lp), (b, b_lp) in list(zip(firsts, cached, beamed))[:2]:
    print(f"  {src['source']}\n    greedy (log p {g_lp:.1f}): {task.text(g)}\n"
          f"    beam 4 (log p {b_lp:.1f}): {task.text(b)}")

# 5. BLEU and ROUGE of the held-out outputs against their references (lesson 4 worked both by hand).
greedy_scores = task.evaluate(model, valid_f, beams=1)
beam_scores = task.evaluate(model, valid_f, beams=4)
for name, sc in (("greedy", greedy_scores), ("beam 4", beam_scores)):
    print(f"  {name}: " + ", ".join(f"{k} {v:.1f}" for k, v in sc.items() if k != "sources"))
assert greedy_scores["rouge1"] > 10 and beam_scores["sources"] == len({e.text for e in valid})
if args.full:
    save("15_generation_with_an_encoder", {
        "data": "E2E NLG: 2,000 rows of trainset.csv drawn with seed 0; scored on the first 20 MRs of devset.csv "
                "with all their references",
        "training": f"all-MiniLM-L6-v2 as a UniLM seq2seq model, LM head tied to the word embeddings, {steps} steps "
                    f"of {batch_size}, lr 3e-4, warmup 3 (course.train_task), max_length 96, target 64",
        "train_rows": len(train), "dev_mrs": len(first), "dev_references": len(valid), "steps": steps,
        "loss_first": step_losses[0], "loss_last": step_losses[-1],
        "greedy": greedy_scores, "beam4": beam_scores,
        "samples": [{"mr": src["source"], "greedy": task.text(g), "beam4": task.text(b)}
                    for src, (g, _), (b, _) in list(zip(firsts, cached, beamed))[:4]]})
else:
    committed = load("15_generation_with_an_encoder")
    if committed:
        print(f"the committed --full run on E2E ({committed['steps']} steps, {committed['dev_mrs']} dev MRs): "
              f"greedy BLEU {committed['greedy']['bleu']:.1f}, beam 4 BLEU {committed['beam4']['bleu']:.1f}")
#    After so few steps the outputs are generic, and greedy decoding often loops ("is a is a"): each step takes the
#    likeliest token, and a likely token can lead back to itself. Beam search compares whole prefixes by their
#    total log-probability, so it finds sentences greedy misses (compare the log p printed above).

# Exercises (worked solutions in tutorials/solutions/15_generation_with_an_encoder.py)
# 1. Draw the mask for two rows of different lengths in one batch (S = 2, L = 4 and S = 3, L = 6, width 6). Which
#    cells differ from a causal (lower-triangular) mask, and why may the source attend forward?
# 2. Beam search with beams=1 is greedy search: check it on the held-out sources.

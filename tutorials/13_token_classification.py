"""Lesson 13: token classification (NER): labels on word pieces, windows over long sentences, and why entity-level
F1 is the score rather than token accuracy.

Run:  python tutorials/13_token_classification.py          (seconds: minift/bundled/tagging.conll, 150 sentences)
      python tutorials/13_token_classification.py --full   (step 4 on WNUT-17: 1,000 sentences of wnut17train.conll,
                                                             150 steps, scored on all of emerging.dev.conll; writes
                                                             tutorials/results/13_token_classification.json, .png)

A tagger gives every word a BIO tag: B-PER begins a person's name, I-PER continues it, O is outside any entity.
The encoder sees word pieces, not words, so the tags must be moved onto pieces for training and back onto words
for scoring; a sentence longer than the model's window is cut into overlapping windows and each word is read from
the window where it has the most context.

Read beside it: minift/tasks/tagging.py (TaggingTask: featurize, _align, decode, loss, evaluate),
minift/metrics/tagging.py (get_entities, entity_scores, tag_accuracy), minift/tokenizer.py (is_split_into_words).

The measurement, from tutorials/results/13_token_classification.json (the --full command above, on an AMD EPYC with
2 cores shared with other jobs (load average 5 to 8), one torch thread, torch 2.13.0+cpu; 145 CPU seconds): on
WNUT-17's emerging.dev (1,009 sentences), tagging every word O is right on 0.921 of the tokens and finds no entity;
the tagger after 150 steps on 1,000 training sentences is right on 0.941 of the tokens, 2 points more, and its
entity F1 is 0.445 (precision 0.579, recall 0.361; person 0.64, location 0.25, the four rarer types 0): token
accuracy hides nearly everything (figure: 13_token_classification.png). Trained on all of wnut17train.conll for
5 epochs (lr 1e-4, batch 16) on an H200, entity F1 on emerging.dev is 0.571 (benchmarks/results/gpu/ner_qa.json,
`python benchmarks/ner_qa.py`; benchmarks/results/gpu/README.md).
"""
import random
from importlib import resources

import torch

from course import MODEL, RESULTS, arguments, load, save, train_task
from minift import Encoder, Tokenizer
from minift.metrics.tagging import entity_scores, get_entities, tag_accuracy
from minift.tasks.tagging import TaggingTask

args = arguments(__doc__).parse_args()
torch.manual_seed(0)
tokenizer = Tokenizer.from_pretrained(MODEL)
task = TaggingTask("ner", tokenizer, max_length=64)
sentences = task.read(resources.files("minift") / "bundled" / "tagging.conll")
task.fit_labels(sentences)
print(f"{len(sentences)} sentences, tags {task.labels.names}")

# 1. Labels on pieces. The words are tokenized as given (is_split_into_words); a word cut into several pieces
#    keeps its tag on the first piece only, and the rest get -100, which the loss ignores: each word is counted
#    once, however many pieces it has. [CLS] and [SEP] get -100 too.
s = next(s for s in sentences if any(len(tokenizer(w, return_tensors=None)["input_ids"][0]) > 3 for w in s.words)
         and any(t != "O" for t in s.tags))
window = task.featurize([s])[0]
pieces = tokenizer.convert_ids_to_tokens(window["input_ids"])
print(" ".join(f"{p}/{task.labels.decode(l) if l >= 0 else '-'}" for p, l in zip(pieces, window["labels"])))
labelled = [l for l in window["labels"] if l != -100]
assert [task.labels.decode(l) for l in labelled] == s.tags and len(pieces) > len(s.words) + 2

# 2. Windows. With max_length 8 (6 pieces of text) and stride 2 the longest sentence (15 words, 18 pieces) becomes
#    several windows, each repeating 2 pieces of the one before. To check the way back without a model, feed the decoder
#    "perfect logits" (a one at the gold tag of every first piece): every word gets its own tag back, read from the
#    window where its first piece has the most context on both sides.
short = TaggingTask("ner", tokenizer, max_length=8, labels=task.labels, stride=2)
long = max(sentences, key=lambda s: len(s.words))
windows = short.featurize([long])
for w in windows:
    print("  window:", " ".join(t for t in tokenizer.convert_ids_to_tokens(w["input_ids"])))
perfect = [torch.nn.functional.one_hot(torch.tensor([max(l, 0) for l in w["labels"]]), len(task.labels)).float()
           for w in windows]
decoded = short.decode(perfect, windows, [len(long.words)])[0]
print(f"{len(long.words)} words in {len(windows)} windows; decoded tags equal the gold: {decoded == long.tags}")
assert len(windows) > 2 and decoded == long.tags

# 3. Token accuracy vs entity F1. An entity counts only if its type and both ends are right. A tagger that
#    answers O everywhere gets most tokens right, since most tokens are O, and finds nothing; one that cuts
#    every multi-word name short is right on all but a few tokens, and wrong on each of those names.
gold = [s.tags for s in sentences]
all_o = [["O"] * len(t) for t in gold]
cut_short = [[("O" if t.startswith("I-") else t) for t in ts] for ts in gold]
for name, pred in (("all O", all_o), ("names cut short", cut_short)):
    print(f"  {name:16} token accuracy {tag_accuracy(gold, pred):.3f}, entity F1 "
          f"{entity_scores(gold, pred, zero_division=0.0)['f1']:.3f}")
n_entities = len(get_entities(gold))
multi = sum(1 for _, a, b in get_entities(gold) if b > a)
assert tag_accuracy(gold, all_o) > 0.7 and entity_scores(gold, all_o, zero_division=0.0)["f1"] == 0
assert abs(entity_scores(gold, cut_short)["recall"] - (n_entities - multi) / n_entities) < 1e-12
print(f"  ({multi} of the {n_entities} entities span more than one word)")

#    minift's entity scores follow seqeval's default mode; check against it.
from seqeval.metrics import f1_score  # the oracle, a test-only extra

assert abs(entity_scores(gold, cut_short)["f1"] - f1_score(gold, cut_short)) < 1e-12

# 4. Train a tagger: the encoder and a linear layer on every token's vector, (B, T, H) -> (B, T, C); the loss is
#    cross-entropy summed over the labelled pieces and divided by their number (task.loss returns both).
#    --full: WNUT-17 (tweets; 6 types, new and rare names), 1,000 training sentences drawn with seed 0, 150 steps
#    of 16 (2.4 epochs), scored on all 1,009 sentences of emerging.dev.conll.
if args.full:
    data = args.data_dir / "wnut17"
    task = TaggingTask("ner", tokenizer, max_length=64)
    every = task.read(data / "wnut17train.conll")
    task.fit_labels(every)
    train, valid, steps = random.Random(0).sample(every, 1000), task.read(data / "emerging.dev.conll"), 150
else:
    train, valid, steps = sentences[:120], sentences[120:], 24
train_f, valid_f = task.featurize(train), task.featurize(valid)
model = task.build_model(Encoder.from_pretrained(MODEL))
before = task.evaluate(model, valid_f)
train_task(task, model, train_f, steps, lr=3e-4)  # the loop of minift.train, in course.py
after = task.evaluate(model, valid_f)
pred = task.predict_tags(model, valid)
gold = [s.tags for s in valid]
print(f"validation ({len(valid)} sentences) entity F1 before {before['f1']:.3f}, after {steps} steps "
      f"{after['f1']:.3f}; token accuracy after {tag_accuracy(gold, pred):.3f}")
print("  per type:", ", ".join(f"{k} {v['f1']:.2f}" for k, v in after["per_type"].items()))
print("  e.g.", task.predict(model, [task.example("Amara Okafor flew from Lagos to meet the Red Cross team.")])[0]
      ["entities"])
assert after["f1"] > before["f1"] + (0.05 if args.full else 0.3)
assert tag_accuracy(gold, pred) > after["f1"]  # the easier number is the larger one

if args.full:
    all_o = [["O"] * len(t) for t in gold]
    scores = {"all O": (tag_accuracy(gold, all_o), 0.0), f"tagger, {steps} steps": (tag_accuracy(gold, pred),
                                                                                   after["f1"])}
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, (name, (acc, f1)) in enumerate(scores.items()):
        ax.bar([i - 0.2, i + 0.2], [acc, f1], width=0.4, color=["tab:gray", "tab:blue"],
               label=["token accuracy", "entity F1"] if i == 0 else None)
    ax.set(xticks=range(len(scores)), xticklabels=list(scores), ylim=(0, 1),
           title=f"WNUT-17 emerging.dev ({len(valid):,} sentences)")
    ax.legend()
    fig.tight_layout()
    RESULTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(RESULTS / "13_token_classification.png", dpi=120)
    save("13_token_classification", {
        "data": "WNUT-17: 1,000 sentences of wnut17train.conll drawn with seed 0; scored on emerging.dev.conll",
        "training": f"all-MiniLM-L6-v2 + linear tagger, {steps} steps of 16, lr 3e-4 (course.train_task), "
                    "max_length 64",
        "valid_sentences": len(valid), "steps": steps, "entity_f1_before": before["f1"],
        "after": {k: after[k] for k in ("precision", "recall", "f1")}, "per_type": after["per_type"],
        "token_accuracy": tag_accuracy(gold, pred), "all_o_token_accuracy": scores["all O"][0]})
else:
    committed = load("13_token_classification")
    if committed:
        print(f"the committed --full run on WNUT-17: entity F1 {committed['after']['f1']:.3f}, token accuracy "
              f"{committed['token_accuracy']:.3f} (all O: {committed['all_o_token_accuracy']:.3f})")

# Exercises (worked solutions in tutorials/solutions/13_token_classification.py)
# 1. With label_all_subtokens=True the other pieces of a word get the I- form of its tag instead of -100. Show the
#    labels of the word pieces of one multi-piece entity word both ways.
# 2. Make a prediction with one entity of the wrong type and one with a boundary one word too long. What are
#    precision, recall and F1 for each, and the token accuracy?

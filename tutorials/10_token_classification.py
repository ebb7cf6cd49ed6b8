"""Lesson 13: token classification (NER): labels on word pieces, windows over long sentences, and why entity-level
F1 is the score rather than token accuracy. (Lesson 13 of the plan; the file is numbered 10 until lessons 10-12,
your own CSV, imbalanced data, multi-label and regression, are written.)

Run:  python tutorials/10_token_classification.py     (seconds: minift/bundled/tagging.conll, 150 sentences)
(No --full run yet: the flag is accepted and runs the same steps; WNUT-17 in ../shared/data is the real set, with
`python -m minift.train --task ner`.)

A tagger gives every word a BIO tag: B-PER begins a person's name, I-PER continues it, O is outside any entity.
The encoder sees word pieces, not words, so the tags must be moved onto pieces for training and back onto words
for scoring; a sentence longer than the model's window is cut into overlapping windows and each word is read from
the window where it has the most context.

Read beside it: minift/tasks/tagging.py (TaggingTask: featurize, _align, decode, loss, evaluate),
minift/metrics/tagging.py (get_entities, entity_scores, tag_accuracy), minift/tokenizer.py (is_split_into_words).
"""
from importlib import resources

import torch

from course import MODEL, arguments, train_task
from minift import Encoder, Tokenizer
from minift.metrics.tagging import entity_scores, get_entities, tag_accuracy
from minift.tasks.tagging import TaggingTask

arguments(__doc__).parse_args()
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
train, valid = sentences[:120], sentences[120:]
train_f, valid_f = task.featurize(train), task.featurize(valid)
model = task.build_model(Encoder.from_pretrained(MODEL))
before = task.evaluate(model, valid_f)
steps = 24
train_task(task, model, train_f, steps, lr=3e-4)  # the loop of minift.train, in course.py
after = task.evaluate(model, valid_f)
pred = task.predict_tags(model, valid)
print(f"validation ({len(valid)} sentences) entity F1 before {before['f1']:.3f}, after {steps} steps "
      f"{after['f1']:.3f}; token accuracy after {tag_accuracy([s.tags for s in valid], pred):.3f}")
print("  per type:", ", ".join(f"{k} {v['f1']:.2f}" for k, v in after["per_type"].items()))
print("  e.g.", task.predict(model, [task.example("Amara Okafor flew from Lagos to meet the Red Cross team.")])[0]
      ["entities"])
assert after["f1"] > before["f1"] + 0.3
assert tag_accuracy([s.tags for s in valid], pred) > after["f1"]  # the easier number is the larger one

# Exercises (worked solutions in tutorials/solutions/10_token_classification.py)
# 1. With label_all_subtokens=True the other pieces of a word get the I- form of its tag instead of -100. Show the
#    labels of the word pieces of one multi-piece entity word both ways.
# 2. Make a prediction with one entity of the wrong type and one with a boundary one word too long. What are
#    precision, recall and F1 for each, and the token accuracy?

"""Worked solutions to the exercises of lesson 13 (tutorials/13_token_classification.py).

Run:  python tutorials/solutions/13_token_classification.py
"""
from minift import Tokenizer
from minift.data import LabelMap
from minift.metrics.tagging import entity_scores, tag_accuracy
from minift.tasks.tagging import Sentence, TaggingTask

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
tokenizer = Tokenizer.from_pretrained(MODEL)
labels = LabelMap(["B-LOC", "B-ORG", "B-PER", "I-LOC", "I-ORG", "I-PER", "O"])

# 1. "Haruto" is three pieces (ha ##rut ##o). By default only the first piece carries its tag, the others -100
#    (shown "-"); with label_all_subtokens the others carry the I- form of it: B-PER's other pieces get I-PER.
s = Sentence(["Haruto", "Mwangi", "spoke"], ["B-PER", "I-PER", "O"])
for all_pieces in (False, True):
    task = TaggingTask("ner", tokenizer, labels=labels, label_all_subtokens=all_pieces)
    w = task.featurize([s])[0]
    shown = [f"{p}/{labels.decode(l) if l >= 0 else '-'}"
             for p, l in zip(tokenizer.convert_ids_to_tokens(w["input_ids"]), w["labels"])]
    print(f"label_all_subtokens={all_pieces}: {' '.join(shown)}")
    haruto = [labels.decode(l) if l >= 0 else "-" for l, word in zip(w["labels"], w["words"]) if word == 0]
    assert haruto == (["B-PER", "I-PER", "I-PER"] if all_pieces else ["B-PER", "-", "-"])

# 2. Gold: two entities, [Amara Okafor]PER and [Lagos]LOC. Wrong type: Lagos as ORG; too long: "Okafor flew" in
#    the name. Each makes one of the two predicted entities wrong: precision 1/2 and recall 1/2, F1 0.5, while only
#    one of six tokens is wrong.
gold = [["B-PER", "I-PER", "O", "O", "B-LOC", "O"]]
wrong_type = [["B-PER", "I-PER", "O", "O", "B-ORG", "O"]]
too_long = [["B-PER", "I-PER", "I-PER", "O", "B-LOC", "O"]]
for name, pred in (("wrong type", wrong_type), ("one word too long", too_long)):
    sc = entity_scores(gold, pred)
    print(f"{name:18} precision {sc['precision']:.2f} recall {sc['recall']:.2f} F1 {sc['f1']:.2f}, "
          f"token accuracy {tag_accuracy(gold, pred):.3f}")
    assert sc["precision"] == sc["recall"] == sc["f1"] == 0.5 and abs(tag_accuracy(gold, pred) - 5 / 6) < 1e-12

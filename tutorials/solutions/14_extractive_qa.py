"""Worked solutions to the exercises of lesson 14 (tutorials/14_extractive_qa.py).

Run:  python tutorials/solutions/14_extractive_qa.py
"""
from importlib import resources

import torch

from minift import Tokenizer
from minift.metrics.qa import squad_scores
from minift.tasks.qa import QATask, best_answer

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
tokenizer = Tokenizer.from_pretrained(MODEL)
small = QATask("qa", tokenizer, max_length=48, doc_stride=16)
questions = small.read(resources.files("minift") / "bundled" / "qa.json")
long_q = max(questions, key=lambda q: len(q.context))
windows = small.featurize([long_q])

# 1. With max_answer_length 1 a span may be one token long only, so the two-token gold span (start s, end s + 1)
#    is no longer a candidate: the decoder returns some one-token span, never the gold answer (which one depends on
#    how ties among the zero scores fall). max_answer_length must cover the answers: SQuAD's default is 30 tokens.
scored = []
for w in windows:
    start, end = torch.zeros(len(w["input_ids"])), torch.zeros(len(w["input_ids"]))
    start[w["start_positions"]] += 5.0
    end[w["end_positions"]] += 5.0
    scored.append((start, end, w["offsets"]))
gold = long_q.answers[0][0]
one = best_answer(long_q, scored, max_answer_length=1)
print(f"gold {gold!r}; with max_answer_length 1: {one['answer']!r}")
assert len(gold.split()) == 2 and one["answer"] != gold and len(one["answer"].split()) == 1
assert best_answer(long_q, scored, max_answer_length=2)["answer"] == gold

# 2. EM is 0 against both golds ("4,300 people" is neither); F1 against "about 4,300" is 2 x 1/2 x 1/2 / 1 = 0.5
#    and against "4,300" is 2 x 1/2 x 1 / 1.5 = 2/3: the question takes the best, 66.7.
for golds in (["about 4,300", "4,300"], ["about 4,300"], ["4,300"]):
    sc = squad_scores(["4,300 people"], [golds])
    print(f"'4,300 people' vs {golds}: EM {sc['exact_match']:.1f}, F1 {sc['f1']:.1f}")
both = squad_scores(["4,300 people"], [["about 4,300", "4,300"]])
assert both["exact_match"] == 0 and abs(both["f1"] - 200 / 3) < 1e-9
assert abs(squad_scores(["4,300 people"], [["about 4,300"]])["f1"] - 50) < 1e-9

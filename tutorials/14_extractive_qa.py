"""Lesson 14: extractive question answering: windows with a stride, offsets from tokens back to characters, span
post-processing, and SQuAD's exact match and F1.

Run:  python tutorials/14_extractive_qa.py          (seconds: minift/bundled/qa.json, 32 paragraphs, 112 questions)
      python tutorials/14_extractive_qa.py --full   (step 5 on SQuAD v1.1: train on articles 1-3, 870 questions,
                                                     60 steps; EM / F1 on articles 30-31, 225 questions; writes
                                                     tutorials/results/14_extractive_qa.json)

The answer is a span of the context. The model reads "[CLS] question [SEP] context [SEP]" and gives every token
two scores, how likely it starts the answer and how likely it ends it; the answer is the best-scoring valid span,
mapped back to the context's characters through each token's offsets.

Read beside it: minift/tasks/qa.py (QATask.featurize, answer_tokens, window_candidates, best_answer, loss),
minift/metrics/qa.py (normalize_answer, exact_match, token_f1, squad_scores), minift/tokenizer.py (offsets).

The measurement, from tutorials/results/14_extractive_qa.json (the --full command above, on an AMD EPYC with 2 cores
shared with other jobs (load average 2 to 4), one torch thread, torch 2.13.0+cpu; 192 CPU seconds): trained on the
870 questions of SQuAD articles 1-3 (873 windows, 60 steps: about one epoch), EM / F1 on the 225 questions of
articles 30-31 go from 0.0 / 5.5 with the random span head to 8.0 / 13.9. Most answers still pick the same phrase
near the start of the paragraph ("independent schools"): one epoch on three articles teaches where answers tend to
be, not how to read. Trained on articles 0-29 (7,010 questions) for 3 epochs on an H200, the same model scores
EM 55.7 / F1 67.6 on articles 30-37 (benchmarks/results/gpu/ner_qa_squad.json, `python benchmarks/ner_qa.py`;
benchmarks/results/gpu/README.md).
"""
from importlib import resources

import torch

from course import MODEL, arguments, load, save, train_task
from minift import Encoder, Tokenizer
from minift.freeze import apply_freeze, count_parameters
from minift.metrics.qa import exact_match, normalize_answer, squad_scores, token_f1
from minift.tasks.qa import QATask, best_answer

args = arguments(__doc__).parse_args()
torch.manual_seed(0)
tokenizer = Tokenizer.from_pretrained(MODEL)
task = QATask("qa", tokenizer, max_length=384, doc_stride=128)
questions = task.read(resources.files("minift") / "bundled" / "qa.json")
print(f"{len(questions)} questions on {len({q.context for q in questions})} paragraphs")

# 1. From characters to tokens and back. The answer is given as characters (text and start); featurize finds its
#    first and last token through the offsets, and the offsets of those tokens give the characters back.
q = questions[0]
w = task.featurize([q])[0]
s, e = w["start_positions"], w["end_positions"]
text, start = q.answers[0]
print(f"Q: {q.question}  A: {text!r} at characters {start}-{start + len(text)} = tokens {s}-{e} "
      f"{tokenizer.convert_ids_to_tokens(w['input_ids'][s:e + 1])}")
assert q.context[w["offsets"][s][0]:w["offsets"][e][1]] == text

# 2. Windows with a stride. A context longer than max_length is cut into windows that overlap by doc_stride
#    tokens, so that an answer cut by one window's edge lies whole inside the next; a window without the answer
#    is trained to point at [CLS] (token 0). Here with max_length 48 and stride 16 to see it on a short paragraph.
small = QATask("qa", tokenizer, max_length=48, doc_stride=16)
long_q = max(questions, key=lambda q: len(q.context))
windows = small.featurize([long_q])
for w in windows:
    inside = [o for o in w["offsets"] if o is not None]
    print(f"  window: context characters {inside[0][0]}-{inside[-1][1]}, answer tokens "
          f"{w['start_positions']}-{w['end_positions']}")
with_answer = [w for w in windows if w["start_positions"] > 0]
assert len(windows) > 1 and with_answer and any(w["start_positions"] == 0 for w in windows)

# 3. Span post-processing. From start and end scores, the answer is the best pair with start <= end, at most
#    max_answer_length tokens, both inside the context (never in the question), over all windows of the question.
#    Give the decoder scores that point at the gold tokens of the window holding the answer: it finds the answer.
scored = []
for w in windows:
    start_logits, end_logits = torch.zeros(len(w["input_ids"])), torch.zeros(len(w["input_ids"]))
    start_logits[w["start_positions"]] += 5.0
    end_logits[w["end_positions"]] += 5.0
    end_logits[1] += 9.0  # a decoy inside the question: never a valid end
    scored.append((start_logits, end_logits, w["offsets"]))
found = best_answer(long_q, scored)
print(f"decoded: {found['answer']!r} (gold {long_q.answers[0][0]!r})")
assert found["answer"] == long_q.answers[0][0]

# 4. Exact match and F1, SQuAD's way: both compare normalized strings (lower case, no punctuation, no a / an /
#    the, single spaces); F1 counts shared words. Each question takes its best score over its gold answers.
pairs = [("The Senn river", "Senn river"), ("about 4,300", "4,300"), ("in 1712", "1712"), ("Agnes", "Agnes Thorne")]
for pred, gold in pairs:
    print(f"  {pred!r:18} vs {gold!r:15}: normalized {normalize_answer(pred)!r:14} EM {exact_match(pred, gold):.0f} "
          f"F1 {token_f1(pred, gold):.2f}")
assert exact_match("The Senn river", "Senn river") == 1 and abs(token_f1("Agnes", "Agnes Thorne") - 2 / 3) < 1e-12

# 5. Train: a span head (H -> 2) on the encoder; the loss is the mean of the start and end cross-entropies over
#    the tokens of each window. The first paragraphs train, the last 8 are held out. The embeddings are frozen
#    (lesson 8): about half the parameters (printed below) then need no gradient and no optimiser state.
#    --full: SQuAD v1.1 (../shared/data keeps articles 0-37 of its dev file): train on articles 1-3 (Warsaw,
#    Normans, Nikola Tesla; 870 questions), 60 steps of 16, about one epoch; score articles 30-31 (225 questions),
#    inside the range benchmarks/ner_qa.py holds out.
if args.full:
    squad = args.data_dir / "squad" / "squad-v1.1-dev-articles-00-37.json"
    train = QATask("qa", tokenizer, articles="1-3").read(squad, training=True)
    valid, steps = QATask("qa", tokenizer, valid_articles="30-31").read(squad), 60
else:
    contexts = list(dict.fromkeys(q.context for q in questions))
    held = set(contexts[-8:])
    train = [q for q in questions if q.context not in held]
    valid, steps = [q for q in questions if q.context in held], 30
train_f, valid_f = task.featurize(train), task.featurize(valid)
model = apply_freeze(task.build_model(Encoder.from_pretrained(MODEL)), "embeddings")
trainable, total = count_parameters(model)
print(f"trainable parameters with the embeddings frozen: {trainable:,} of {total:,}")
assert 0.4 < trainable / total < 0.6
before = task.evaluate(model, valid_f)
train_task(task, model, train_f, steps, lr=3e-4)  # the loop of minift.train, in course.py
after = task.evaluate(model, valid_f)
answers = task.answers(model, valid_f)
print(f"{len(train)} training / {len(valid)} held-out questions; EM / F1 before {before['exact_match']:.1f} / "
      f"{before['f1']:.1f}, after {steps} steps {after['exact_match']:.1f} / {after['f1']:.1f}")
for q, a in list(zip(valid, answers))[:3]:
    print(f"  Q: {q.question}  predicted {a['answer']!r}  gold {q.answers[0][0]!r}")
assert after["f1"] > before["f1"] + (5 if args.full else 10) and after["exact_match"] > before["exact_match"]
assert abs(squad_scores([a["answer"] for a in answers], [[t for t, _ in q.answers] for q in valid])["f1"]
           - after["f1"]) < 1e-9

if args.full:
    save("14_extractive_qa", {
        "data": "SQuAD v1.1 dev file, articles 0-37 (../shared/data/squad): trained on articles 1-3, scored on 30-31",
        "training": f"all-MiniLM-L6-v2 + span head, embeddings frozen, {steps} steps of 16, lr 3e-4 "
                    "(course.train_task), max_length 384, doc_stride 128",
        "train_questions": len(train), "train_windows": len(train_f), "valid_questions": len(valid),
        "steps": steps, "before": {k: before[k] for k in ("exact_match", "f1")},
        "after": {k: after[k] for k in ("exact_match", "f1")},
        "samples": [{"question": q.question, "predicted": a["answer"], "gold": q.answers[0][0]}
                    for q, a in list(zip(valid, answers))[:5]]})
else:
    committed = load("14_extractive_qa")
    if committed:
        print(f"the committed --full run on SQuAD: {committed['train_questions']} training questions, "
              f"{committed['steps']} steps: EM / F1 {committed['after']['exact_match']:.1f} / "
              f"{committed['after']['f1']:.1f} on {committed['valid_questions']} held-out questions")

# Exercises (worked solutions in tutorials/solutions/14_extractive_qa.py)
# 1. Make max_answer_length 1 and decode the gold-pointing scores of step 3 again: what comes back, and why?
# 2. SQuAD takes the best score over several gold answers. Score "4,300 people" against ["about 4,300", "4,300"]
#    with squad_scores, then against each gold alone.

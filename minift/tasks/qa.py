"""Extractive question answering (SQuAD v1.1): find the answer as a span of the context, as Devlin et al. (2019,
§4.2) fine-tune BERT on SQuAD and Hugging Face's `BertForQuestionAnswering` / `run_qa.py` do:

    x = [CLS] question [SEP] context window [SEP]          token ids (B, T); type ids 0 then 1
    h = Encoder(x)                                          (B, T, H)
    s, e = W h + b                                          start and end logits, (B, T) each (SpanHead)
    loss = (CE(s, i_start) + CE(e, i_end)) / 2              summed over windows, count = windows

Long contexts: the context is cut into windows of `max_length` tokens (question included), each repeating the
last `doc_stride` tokens of the one before. A window's target is the answer's first and last token, found from
the tokens' character offsets; a window that does not hold the whole answer points both at [CLS] (index 0).

Answering (post-processing) an example from all of its windows: in each window take the `n_best` highest start
and end logits among the context tokens (sequence id 1), keep the pairs with start <= end < start +
`max_answer_length`, score a pair s_i + e_j, and answer with the best pair of all windows, mapped back to the
context's characters through the offsets. (Should none of the n-best pairs be valid, the best one-token span.)
The score printed is the softmax of the best pair against the n-best candidates (`run_qa.py`'s probability).

Metrics: SQuAD v1.1 exact match and token F1 (0-100, minift/metrics/qa.py), main metric `f1`. A saved model is
a Hugging Face `*ForQuestionAnswering` checkpoint (`qa_outputs`).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import torch
from torch import nn

from minift import losses
from minift.batching import padded_batches
from minift.data import DataError, decode_error, text_encoding
from minift.heads import SpanHead
from minift.metrics import squad_scores
from minift.tasks import Recipe, Task

MODEL_KEYS = ("input_ids", "token_type_ids", "start_positions", "end_positions")  # the rest is for decoding


@dataclass(frozen=True)
class Question:
    """One question about one context; `answers` is a list of (text, start character), None when unlabelled."""

    id: str
    question: str
    context: str
    answers: list | None = None
    article: int = 0


def read_squad(path, need_labels: bool = True, encoding: str = "utf-8") -> list[Question]:
    """The questions of a SQuAD v1.1 JSON file: {"data": [{"paragraphs": [{"context", "qas": [{"id", "question",
    "answers": [{"text", "answer_start"}]}]}]}]}; each question remembers its article's index."""
    try:
        with open(path, encoding=text_encoding(encoding)) as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}, line {e.lineno}, column {e.colno}: not valid JSON ({e.msg})") from None
    except UnicodeError:
        raise decode_error(path, encoding) from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply to be SQuAD v1.1") from None

    def need(obj, key, kind, where):
        if not isinstance(obj, dict) or not isinstance(obj.get(key), kind):
            raise DataError(f"{path}: {where} should be an object with {key!r} ({kind.__name__}); is this SQuAD "
                            "v1.1 JSON?")
        return obj[key]

    out = []
    for a, article in enumerate(need(data, "data", list, "the file")):
        for p, para in enumerate(need(article, "paragraphs", list, f"data[{a}]")):
            context = need(para, "context", str, f"data[{a}].paragraphs[{p}]")
            for q, qa in enumerate(need(para, "qas", list, f"data[{a}].paragraphs[{p}]")):
                where = f"data[{a}].paragraphs[{p}].qas[{q}]"
                answers = None
                if need_labels:
                    answers = []
                    for i, ans in enumerate(need(qa, "answers", list, where)):
                        text, start = need(ans, "text", str, f"{where}.answers[{i}]"), ans.get("answer_start")
                        if type(start) is not int or start < 0 or not text or context[start:start + len(text)] != text:
                            raise DataError(f"{path}: {where}.answers[{i}]: answer_start {start!r} does not point "
                                            f"at {text!r} in the context (a character index, from 0)")
                        answers.append((text, start))
                    if not answers:
                        raise DataError(f"{path}: {where} has no answer (SQuAD v1.1 needs one at least)")
                out.append(Question(str(qa.get("id", where)), need(qa, "question", str, where), context, answers, a))
    if not out:
        raise DataError(f"{path}: no questions in the file (SQuAD v1.1: data[].paragraphs[].qas[])")
    return out


def parse_articles(spec: str) -> set[int]:
    """ "0-29" -> {0, ..., 29}; "0-4,7" -> {0, 1, 2, 3, 4, 7} (0-based, ends included)."""
    chosen = set()
    for part in spec.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m or (m[2] is not None and int(m[2]) < int(m[1])):
            raise DataError(f"--articles {spec!r}: expected article numbers from 0, e.g. 0-29 or 0-4,7")
        chosen |= set(range(int(m[1]), int(m[2] or m[1]) + 1))
    return chosen


def only_articles(questions: list[Question], spec: str | None) -> list[Question]:
    """The questions of the articles `spec` names (all of them when spec is None)."""
    if spec is None:
        return questions
    chosen = parse_articles(spec)
    return [q for q in questions if q.article in chosen]


def answer_tokens(offsets, start_char: int, end_char: int) -> tuple[int, int]:
    """First and last token of the answer characters [start_char, end_char) in one window; `offsets` holds per
    token its (start, end) in the context, None outside it. (0, 0), the [CLS] token, if the window lacks them."""
    inside = [t for t, o in enumerate(offsets) if o is not None]
    if not inside or offsets[inside[0]][0] > start_char or offsets[inside[-1]][1] < end_char:
        return 0, 0
    first = max(t for t in inside if offsets[t][0] <= start_char)  # the last token starting at or before it
    last = min(t for t in inside if offsets[t][1] >= end_char)     # the first token ending at or after it
    return first, last


def window_candidates(start, end, offsets, n_best: int = 20, max_answer_length: int = 30) -> list[tuple]:
    """(score, first char, end char) of the n-best spans of one window; start, end (T,) logits; only context
    tokens (offsets not None) can begin or end a span."""
    inside = torch.tensor([t for t, o in enumerate(offsets) if o is not None], dtype=torch.long)
    if len(inside) == 0:
        return []
    k = min(n_best, len(inside))
    starts, ends = inside[start[inside].topk(k).indices].tolist(), inside[end[inside].topk(k).indices].tolist()
    pairs = [(s, e) for s in starts for e in ends if s <= e < s + max_answer_length]
    if not pairs:  # none of the n-best pairs is a span: the best one-token span
        t = int(inside[(start[inside] + end[inside]).argmax()])
        pairs = [(t, t)]
    return [(float(start[s] + end[e]), offsets[s][0], offsets[e][1]) for s, e in pairs]


def best_answer(question: Question, windows: list[tuple], n_best: int = 20, max_answer_length: int = 30) -> dict:
    """The answer to one question from its windows [(start logits, end logits, offsets)]: {"answer", "start",
    "end", "score"}, start and end the answer's characters in the context."""
    candidates = [c for s, e, offsets in windows for c in window_candidates(s, e, offsets, n_best, max_answer_length)]
    candidates = sorted(candidates, key=lambda c: -c[0])[:n_best]
    if not candidates:
        return {"answer": "", "start": 0, "end": 0, "score": 0.0}
    score, a, b = candidates[0]
    probability = torch.tensor([c[0] for c in candidates]).softmax(0)[0]
    return {"answer": question.context[a:b], "start": a, "end": b, "score": round(float(probability), 6)}


class QAModel(nn.Module):
    """Encoder + a span head: token ids (B, T) -> start and end logits, (B, T) each."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.head = SpanHead(encoder.cfg.hidden_size)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        return self.head(self.encoder(input_ids, attention_mask, token_type_ids))  # 2 x (B, T)


class QATask(Task):
    """Everything the training loop needs to know about extractive QA: data, windows, model, loss, answers."""

    main_metric = "f1"
    # The SQuAD benchmark's recipe: 67.6 F1 on held-out articles (benchmarks/results/gpu/ner_qa_squad.json);
    # a question and its passage need 384 tokens (Devlin et al., 2019), 256 cost 20 F1 in one epoch (issue 19).
    recipe = Recipe(lr=1e-4, epochs=3, batch_size=16, max_length=384)
    architecture_head = "ForQuestionAnswering"
    peft_task_type, adapter_heads = "QUESTION_ANS", {"head.out": SpanHead.hf_name}  # --save-adapter

    def __init__(self, kind: str, tokenizer, max_length: int = 384, doc_stride: int = 128,
                 max_answer_length: int = 30, n_best: int = 20, encoding: str = "utf-8",
                 articles: str | None = None, valid_articles: str | None = None):
        super().__init__(tokenizer)
        self.kind, self.max_length, self.doc_stride = kind, max_length, doc_stride
        self.max_answer_length, self.n_best, self.encoding = max_answer_length, n_best, encoding
        self.articles, self.valid_articles = articles, valid_articles  # which articles of a file to read

    @classmethod
    def from_args(cls, args, tokenizer) -> "QATask":
        return cls(args.task, tokenizer, args.max_length, 128 if args.doc_stride is None else args.doc_stride,
                   args.max_answer_length, encoding=args.encoding, articles=args.articles,
                   valid_articles=args.valid_articles)

    # ---- data ----
    def read(self, path, need_labels: bool = True, training: bool = False) -> list[Question]:
        """The questions of the file's chosen articles: `articles` for training, `valid_articles` otherwise."""
        return only_articles(read_squad(path, need_labels, self.encoding),
                             self.articles if training else self.valid_articles)

    def override(self, flags: dict) -> None:
        """`evaluate --articles` picks the articles to score."""
        super().override({**flags, "articles": None})
        if flags.get("articles"):
            self.valid_articles = flags["articles"]

    def example(self, question: str, context: str) -> Question:
        """One question about one context (`predict --question Q --context C`)."""
        return Question("0", question, context)

    def featurize(self, questions, source: str = "data", with_labels: bool = True) -> list[dict]:
        """Each question -> windows {"input_ids", "token_type_ids", "start_positions", "end_positions", and for
        answering "example" (the question's index), "question" (the Question), "offsets" (per token its
        characters in the context, None outside the context)}. Training targets use the first answer."""
        if not questions:
            return []
        try:
            enc = self.tokenizer([q.question.lstrip() for q in questions], [q.context for q in questions],
                                 max_length=self.max_length, truncation="only_second", stride=self.doc_stride,
                                 return_overflowing=True, return_offsets=True, padding=False, return_tensors=None)
        except ValueError as e:
            raise DataError(f"{source}: {e} (a question may be too long for --max-length {self.max_length} with "
                            f"--doc-stride {self.doc_stride})") from None
        windows = []
        for ids, types, offsets, seq, i in zip(enc["input_ids"], enc["token_type_ids"], enc["offsets"],
                                               enc["sequence_ids"], enc["overflow_to_sample"]):
            q = questions[i]
            offsets = [tuple(o) if s == 1 else None for o, s in zip(offsets, seq)]
            w = {"input_ids": ids, "token_type_ids": types, "example": i, "question": q, "offsets": offsets}
            if with_labels:
                text, start = q.answers[0]
                w["start_positions"], w["end_positions"] = answer_tokens(offsets, start, start + len(text))
            windows.append(w)
        return windows

    def batches(self, features, batch_size: int, seed: int = 0, epoch: int = 0, shuffle: bool = False,
                bucket: bool = False):
        """Yield padded batches of windows: (B, T) ids, segments and mask, and (B,) start and end targets."""
        yield from padded_batches(features, batch_size, self.tokenizer.pad_id, seed, epoch, shuffle, bucket,
                                  keys=MODEL_KEYS)

    # ---- model ----
    def build_model(self, encoder) -> QAModel:
        """A fresh span head, or the saved one when the encoder's checkpoint carries `qa_outputs`."""
        model = QAModel(encoder)
        model.head.load_saved(encoder.head_tensors)
        return model

    def loss(self, model, batch) -> tuple[torch.Tensor, float]:
        """((CE(start) + CE(end)) / 2 summed over the windows, the number of windows)."""
        start, end = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])  # (B, T) each
        total = (losses.cross_entropy(start, batch["start_positions"], reduction="sum")
                 + losses.cross_entropy(end, batch["end_positions"], reduction="sum")) / 2
        return total, float(len(start))

    # ---- evaluation and prediction ----
    @torch.no_grad()
    def logits(self, model, features, batch_size: int = 64, device="cpu") -> list[tuple]:
        """One (start (T_i,), end (T_i,)) pair per window, padding removed."""
        model.eval()
        out = []
        for b in self.batches(features, batch_size):
            start, end = model(b["input_ids"].to(device), b["attention_mask"].to(device),
                               b["token_type_ids"].to(device))
            for s, e, n in zip(start.float().cpu(), end.float().cpu(), b["attention_mask"].sum(-1).tolist()):
                out.append((s[:n], e[:n]))
        return out

    def answers(self, model, features, batch_size: int = 64, device="cpu") -> list[dict]:
        """One answer per question, from all of its windows, in the order of the questions."""
        by_question = {}  # question index -> (Question, [(start, end, offsets) of each window])
        for (s, e), f in zip(self.logits(model, features, batch_size, device), features):
            by_question.setdefault(f["example"], (f["question"], []))[1].append((s, e, f["offsets"]))
        return [{"id": q.id, **best_answer(q, windows, self.n_best, self.max_answer_length)}
                for q, windows in by_question.values()]

    def evaluate(self, model, features, batch_size: int = 64, device="cpu") -> dict:
        """SQuAD v1.1 {"exact_match", "f1"}, 0-100, against every gold answer of each question."""
        found = self.answers(model, features, batch_size, device)
        golds = list({f["example"]: [text for text, _ in f["question"].answers] for f in features}.values())
        return squad_scores([a["answer"] for a in found], golds)

    def predict(self, model, questions, batch_size: int = 64, device="cpu") -> list[dict]:
        """`predict`'s rows: {"id", "question", "answer", "start", "end", "score"}."""
        found = self.answers(model, self.featurize(questions, with_labels=False), batch_size, device)
        return [{"id": a["id"], "question": q.question, **{k: a[k] for k in ("answer", "start", "end", "score")}}
                for q, a in zip(questions, found)]

    # ---- saving ----
    def meta(self) -> dict:
        return {"task": self.kind, "max_length": self.max_length, "doc_stride": self.doc_stride,
                "max_answer_length": self.max_answer_length, "n_best": self.n_best, "encoding": self.encoding}

    @classmethod
    def from_meta(cls, meta: dict, tokenizer) -> "QATask":
        return cls(meta["task"], tokenizer, meta["max_length"], meta["doc_stride"], meta["max_answer_length"],
                   meta.get("n_best", 20), meta.get("encoding", "utf-8"))

    def hf_config(self) -> dict:
        return {"num_labels": 2}

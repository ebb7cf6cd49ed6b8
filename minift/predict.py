"""`python -m minift.predict --model DIR (--text T ... | --data FILE)`: labels for new texts.

Prints one JSON line per input: for classification the label and every label's probability (divided by the
temperature `train --calibrate` saved, if any), for multilabel the labels predicted (probability > 0.5, or > each
label's threshold saved by `train --tune-thresholds`) and the probabilities, for regression the value, e.g.
`{"text": "a fine film", "label": "positive", "probabilities": {"negative": 0.03, "positive": 0.97}}`;
for ner each word's tag and the entities with their characters, `{"entities": [{"text", "type", "start", "end"}]}`;
for qa (`--question Q --context C`) the answer and its characters in the context, `{"answer", "start", "end",
"score"}`; for seq2seq the generated text, `{"text": SOURCE, "generated": ...}` (`--beams K` for beam search).
`--model BASE --adapter DIR` predicts with a LoRA run's adapters and head (`--save-adapter`) on its base model.
"""
from __future__ import annotations

import argparse
import json
import sys

from minift import cli


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m minift.predict", description=__doc__.splitlines()[0])
    cli.add_model_flags(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", action="append", help="a text to label (repeat for several)")
    source.add_argument("--data", help="a file of texts (.csv, .tsv or .jsonl; CoNLL for ner, SQuAD JSON for qa); "
                                       "labels in it are ignored")
    source.add_argument("--question", action="append", help="qa: a question (repeat for several)")
    p.add_argument("--context", action="append", help="qa: the text to answer from, one per --question")
    p.add_argument("--text-pair", action="append", help="the second text of a pair, one per --text")
    p.add_argument("--text-col", help="override the saved text column")
    p.add_argument("--text-pair-col", help="override the saved second text column")
    p.add_argument("--no-header", action="store_true", help="the file has no header row: columns by index")
    p.add_argument("--encoding", help="override the saved encoding")
    p.add_argument("--beams", type=int, help="seq2seq: beam search with this many beams (1: greedy; default: saved)")
    p.add_argument("--length-penalty", type=float, help="seq2seq: beam search length penalty (default: saved)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", help="cpu, cuda ... (default: cuda when available)")
    p.add_argument("--debug", action="store_true", help=cli.DEBUG_HELP)
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    device = cli.pick_device(args.device)
    task, model = cli.load_trained(args.model, device, args.adapter)
    task.override(vars(args))  # columns, header, encoding, seq2seq's --beams and --length-penalty
    if (args.question is not None) != (task.kind == "qa") and args.data is None:
        raise cli.UsageError("a qa model answers --question Q --context C" if task.kind == "qa" else
                             f"--question is for qa models; this one does {task.kind}: give --text")
    if args.question is not None:
        if len(args.context or []) != len(args.question):
            raise cli.UsageError(f"give one --context per --question ({len(args.question)} questions, "
                                 f"{len(args.context or [])} contexts)")
        examples = [task.example(q, c) for q, c in zip(args.question, args.context)]
    elif args.text is not None:
        pairs = args.text_pair or [None] * len(args.text)
        if len(pairs) != len(args.text):
            raise cli.UsageError(f"give one --text-pair per --text ({len(args.text)} texts, {len(pairs)} pairs)")
        examples = [task.example(t, pair) for t, pair in zip(args.text, pairs)]
    else:
        examples = task.read(args.data, need_labels=False)
    if not examples:
        raise cli.DataError(f"{args.data}: no rows to predict")
    rows = task.predict(model, examples, args.batch_size, device)
    print("\n".join(json.dumps(row) for row in rows))  # printed only once every row is done: no half output


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="minift.predict"))

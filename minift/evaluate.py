"""`python -m minift.evaluate --model DIR --data FILE`: score a fine-tuned model on a labelled file.

The file is read with the columns, header and encoding saved in DIR/minift.json at training time; the same flags
as `minift.train` override them. Prints the task's metrics as one JSON object, e.g.
`{"accuracy": 0.91, "f1": 0.90, "auc": 0.97}`; ner adds the scores of each entity type under "per_type".
`--model BASE --adapter DIR` scores the LoRA adapters and head that `minift.train --lora R --save-adapter --out DIR`
saved, on the base model it started from.
A saved temperature (`train --calibrate`) and per-label thresholds (`train --tune-thresholds`) are applied.
`--report` then prints the per-class table, the confusion matrix and the calibration error, and `--plots` writes
PNGs into the model folder (minift/report.py; sentence models).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from minift import cli, report


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m minift.evaluate", description=__doc__.splitlines()[0])
    cli.add_model_flags(p)
    p.add_argument("--data", required=True, help="labelled file (.csv, .tsv or .jsonl; CoNLL for ner, SQuAD JSON "
                                                 "for qa)")
    p.add_argument("--articles", help="qa: the articles of --data to score, 0-based, e.g. 30-37")
    p.add_argument("--text-col", help="override the saved text column")
    p.add_argument("--text-pair-col", help="override the saved second text column")
    p.add_argument("--label-col", help="override the saved label column")
    p.add_argument("--no-header", action="store_true", help="the file has no header row: columns by index")
    p.add_argument("--encoding", help="override the saved encoding")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--report", action="store_true", help="print the per-class precision / recall / F1 table, the "
                                                         "confusion matrix and the expected calibration error")
    p.add_argument("--plots", action="store_true", help="write confusion_matrix.png, roc.png, precision_recall.png "
                                                        "and reliability.png (regression: scatter.png) beside the "
                                                        "model (needs matplotlib)")
    p.add_argument("--device", help="cpu, cuda ... (default: cuda when available)")
    p.add_argument("--debug", action="store_true", help=cli.DEBUG_HELP)
    return p


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    device = cli.pick_device(args.device)
    task, model = cli.load_trained(args.model, device, args.adapter)
    task.override(vars(args))  # columns, header, encoding, qa's --articles
    plt = report.check(task, args.plots) if args.report or args.plots else None  # before any work
    features = task.featurize(task.read(args.data), args.data)
    if not features:
        raise cli.DataError(f"{args.data}: no rows to evaluate")
    print(json.dumps(task.evaluate(model, features, args.batch_size, device)))
    if args.report or args.plots:
        out = report.outputs(task, model, features, args.batch_size, device)
        if args.report:
            print(report.text(out), end="")
        for path in report.plots(out, Path(args.model), plt) if args.plots else []:
            print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="minift.evaluate"))

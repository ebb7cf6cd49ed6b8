"""The flags of `python -m minift.train` and the checks that reject a combination that cannot work.

Kept apart from minift/train.py so that the loop reads in one page; `minift.train.parser` is this `parser`.
A check that fails raises `cli.UsageError`, which the command turns into one message and exit code 2.
"""
from __future__ import annotations

import argparse
from importlib import resources

from minift import cli, optim
from minift.tasks import TASKS

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BUNDLED = resources.files("minift") / "bundled" / "sentiment.csv"
DESCRIPTION = "fine-tune a pretrained encoder on a labelled file, evaluate it, save the best model"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m minift.train", description=DESCRIPTION,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", choices=sorted(TASKS), default="classification")
    p.add_argument("--train", default=str(BUNDLED),
                   help="training file: .csv, .tsv or .jsonl; CoNLL (token TAB tag) for ner; SQuAD JSON for qa")
    p.add_argument("--valid", help="validation file; default: a stratified split of --train")
    p.add_argument("--test", help="test file, scored once with the best model")
    p.add_argument("--valid-fraction", type=float, default=0.2, help="share of --train held out without --valid")
    p.add_argument("--model", default=DEFAULT_MODEL, help="checkpoint folder or Hugging Face Hub id")
    p.add_argument("--revision", help="Hub revision (branch, tag or commit)")
    p.add_argument("--out", default="runs/default", help="folder for the model, metrics.jsonl and results.json")
    p.add_argument("--text-col", default="text", help="column name, or 0-based index")
    p.add_argument("--text-pair-col", help="second text column, for sentence-pair tasks")
    p.add_argument("--label-col", default="label")
    p.add_argument("--label-delimiter", default=",", help="separates the labels of one row (multilabel)")
    p.add_argument("--no-header", action="store_true", help="the file has no header row: columns by index")
    p.add_argument("--encoding", default="utf-8")
    p.add_argument("--pooling", choices=["pooler", "cls", "mean"], default="pooler")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-steps", type=int, help="stop after this many updates (overrides --epochs)")
    p.add_argument("--batch-size", type=int, default=16,
                   help="examples per micro-batch, over all processes under torchrun")
    p.add_argument("--accumulate", type=int, default=1, help="micro-batches per update")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=float, default=0.1, help="warmup steps, or a fraction of all steps if < 1")
    p.add_argument("--schedule", choices=sorted(optim.SCHEDULES), default="linear")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="clip the gradient norm (0: no clipping)")
    p.add_argument("--max-length", type=int, help="tokens per input (default: 384 for qa, else 128, or fewer if the "
                                                  "model has fewer positions)")
    p.add_argument("--doc-stride", type=int, help="tokens repeated between the windows of a long input (qa, ner; "
                                                  "default: 128 for qa, max-length // 4 for ner)")
    p.add_argument("--label-all-subtokens", action="store_true",
                   help="ner: tag every piece of a word (I- form), not only the first")
    p.add_argument("--max-answer-length", type=int, default=30, help="qa: longest answer, in tokens")
    p.add_argument("--articles", help="qa: the articles of --train to use, 0-based, e.g. 0-29 or 0-4,7")
    p.add_argument("--valid-articles", help="qa: the articles of --valid and --test to use")
    p.add_argument("--freeze", default="none", help="none, embeddings, encoder, layers:0-3, bias-only")
    p.add_argument("--gradual-unfreeze", action="store_true", help="unfreeze one more layer per epoch, top first")
    p.add_argument("--layer-decay", type=float, help="layer-wise learning-rate decay, e.g. 0.9")
    p.add_argument("--class-weights", choices=["none", "balanced"], default="none")
    p.add_argument("--oversample", action="store_true", help="resample minority classes up to the majority")
    p.add_argument("--bucket", action="store_true", help="batch sentences of similar length together")
    p.add_argument("--eval-every", type=int, default=0, help="evaluate every N updates (0: once per epoch)")
    p.add_argument("--patience", type=int, default=0, help="stop after N evaluations without improvement")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                   help="autocast the forward pass and loss to this type; weights stay fp32 (fp16: CUDA only)")
    p.add_argument("--max-bad-steps", type=int, default=5,
                   help="stop after this many updates in a row skipped for a NaN or infinite loss or gradient")
    p.add_argument("--save-every", type=int, default=0,
                   help="write a checkpoint to OUT/checkpoints/step-N every N updates, to --resume from (0: never)")
    p.add_argument("--keep-checkpoints", type=int, default=2, help="how many of the latest checkpoints to keep")
    p.add_argument("--resume", help="continue from a checkpoint folder written by --save-every, with the same flags")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_seq2seq_flags(p)
    add_memory_flags(p)
    return p


def add_memory_flags(p: argparse.ArgumentParser) -> None:
    """Trading time for memory, for long inputs (QA, documents at 384-512 tokens)."""
    g = p.add_argument_group("memory")
    g.add_argument("--gradient-checkpointing", action="store_true",
                   help="keep only each layer's input and recompute its activations in the backward pass: less "
                        "memory for about a third more time, the same gradients")


def add_seq2seq_flags(p: argparse.ArgumentParser) -> None:
    """--task seq2seq: the columns, and how outputs are decoded (also `minift.predict`'s decoding flags)."""
    g = p.add_argument_group("seq2seq")
    g.add_argument("--source-col", default="source", help="seq2seq: the source text column")
    g.add_argument("--target-col", default="target", help="seq2seq: the target text column")
    g.add_argument("--max-target-length", type=int, default=64, help="seq2seq: target tokens, [SEP] included; "
                                                                     "also the longest output decoded")
    g.add_argument("--beams", type=int, default=1, help="seq2seq: 1 for greedy decoding, K for beam search")
    g.add_argument("--length-penalty", type=float, default=1.0, help="seq2seq beam search: rank finished outputs "
                                                                     "by Σ log p / length^this")
    g.add_argument("--max-eval-sources", type=int, default=200, help="seq2seq: during training, decode at most this "
                                                                    "many distinct validation sources (0: all)")


def check_args(args) -> None:
    args.max_length_is_default = args.max_length is None  # a default may be lowered to fit (train.check_length)
    if args.max_length is None:
        args.max_length = 384 if args.task == "qa" else 128
    positive = {"--epochs": args.epochs, "--batch-size": args.batch_size, "--accumulate": args.accumulate,
                "--max-length": args.max_length}
    for flag, value in positive.items():
        if value < 1:
            raise cli.UsageError(f"{flag} {value}: must be at least 1")
    if args.save_every < 0 or args.keep_checkpoints < 1:
        raise cli.UsageError("--save-every must be >= 0 and --keep-checkpoints at least 1")
    if args.max_bad_steps < 1:
        raise cli.UsageError(f"--max-bad-steps {args.max_bad_steps}: must be at least 1")
    if args.lr <= 0 or not 0 < args.valid_fraction < 1 or args.warmup < 0:
        raise cli.UsageError("--lr must be > 0, --valid-fraction between 0 and 1, --warmup >= 0")
    if args.layer_decay is not None and not 0 < args.layer_decay <= 1:
        raise cli.UsageError(f"--layer-decay {args.layer_decay}: must be in (0, 1]")
    if args.task != "classification" and (args.class_weights != "none" or args.oversample):
        raise cli.UsageError("--class-weights and --oversample apply to --task classification only")
    if args.task != "qa" and (args.articles or args.valid_articles):
        raise cli.UsageError("--articles and --valid-articles select SQuAD articles: they apply to --task qa only")
    if args.max_target_length < 2 or args.beams < 1 or args.max_eval_sources < 0:
        raise cli.UsageError("--max-target-length must be at least 2, --beams at least 1, --max-eval-sources >= 0")
    if args.max_answer_length < 1:
        raise cli.UsageError(f"--max-answer-length {args.max_answer_length}: must be at least 1")
    if args.doc_stride is not None and not 0 <= args.doc_stride < args.max_length // 2:
        raise cli.UsageError(f"--doc-stride {args.doc_stride}: must be at least 0 and under half of --max-length "
                             f"({args.max_length})")

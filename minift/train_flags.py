"""The flags of `python -m minift.train` and the checks that reject a combination that cannot work.

Kept apart from minift/train.py so that the loop reads in one page; `minift.train.parser` is this `parser`.
A check that fails raises `cli.UsageError`, which the command turns into one message and exit code 2.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict, fields
from importlib import resources

from minift import cli, optim
from minift.tasks import TASKS, Recipe

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BUNDLED = resources.files("minift") / "bundled" / "sentiment.csv"
DESCRIPTION = "fine-tune a pretrained encoder on a labelled file, evaluate it, save the best model"
RECIPE = "default: the task's recipe"  # the help of each flag that is a field of `Recipe` (its argparse default: None)
# Every hyperparameter the loop uses, in the order the settings line and minift.json's "train_settings" list them:
# the task's recipe first, then the other flags that change what is learnt.
HYPERPARAMETERS = (*(f.name for f in fields(Recipe)), "weight_decay", "max_grad_norm", "layer_decay", "accumulate",
                   "max_steps", "freeze", "gradual_unfreeze", "precision", "seed")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show each flag's default, except None (a flag without a value, or one the task's recipe fills in); print the
    epilog's table of recipes as it is written."""

    def _get_help_string(self, action):
        return action.help if action.default is None else super()._get_help_string(action)


def recipes_table() -> str:
    """The recipe of every task, one row each: the --help epilog (the README's table says the same)."""
    names = [f.name for f in fields(Recipe)]
    rows = [["--task", *(f"--{n.replace('_', '-')}" for n in names)]]
    rows += [[kind, *(str(v) for v in asdict(TASKS[kind].recipe_of(kind)).values())] for kind in sorted(TASKS)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = "\n".join("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
    return "the task's recipe (the defaults of the flags that say so; lr-head None: --lr):\n" + table


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m minift.train", description=DESCRIPTION, epilog=recipes_table(),
                                formatter_class=HelpFormatter)
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
    p.add_argument("--epochs", type=int, help=RECIPE)
    p.add_argument("--max-steps", type=int, help="stop after this many updates (overrides --epochs)")
    p.add_argument("--batch-size", type=int,
                   help=f"examples per micro-batch, over all processes under torchrun ({RECIPE})")
    p.add_argument("--accumulate", type=int, default=1, help="micro-batches per update")
    p.add_argument("--lr", type=float, help=f"peak learning rate ({RECIPE})")
    p.add_argument("--lr-head", type=float, help="peak learning rate of the task head, the layers new on top of "
                                                 "the encoder: classifier, span layer, LM-head transform "
                                                 f"({RECIPE}; None there: --lr)")
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=float, help=f"warmup steps, or a fraction of all steps if < 1 ({RECIPE})")
    p.add_argument("--schedule", choices=sorted(optim.SCHEDULES), help=f"learning-rate schedule ({RECIPE})")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="clip the gradient norm (0: no clipping)")
    p.add_argument("--max-length", type=int, help=f"tokens per input ({RECIPE}, or fewer if the model has fewer "
                                                  "positions)")
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
    return p


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


def resolve_defaults(args) -> dict:
    """Fill each recipe flag the user left out (None) from the task's recipe, in place; the one place the loop's
    defaults come from. Returns {hyperparameter: "flag" or "recipe"}, and sets `args.settings_source` to it."""
    recipe = asdict(TASKS[args.task].recipe_of(args.task))
    source = {}
    for name, value in recipe.items():
        source[name] = "flag" if getattr(args, name) is not None else "recipe"
        if source[name] == "recipe":
            setattr(args, name, value)
    args.settings_source = source
    args.max_length_is_default = source["max_length"] == "recipe"  # may be lowered to fit (train.check_length)
    return source


def settings(args) -> dict:
    """Every effective hyperparameter of the run (after `resolve_defaults`): minift.json's "train_settings"."""
    return {name: getattr(args, name, None) for name in HYPERPARAMETERS}


def settings_line(args) -> str:
    """The line a run prints at its start: each hyperparameter with where it came from, the task's recipe, a flag
    the user gave, or the flag's fixed default (a flag given with its default value reads as the default)."""
    source, defaults = getattr(args, "settings_source", {}), parser()
    parts = {"recipe": [], "flag": [], "default": []}
    for name, value in settings(args).items():
        where = source.get(name) or ("default" if value == defaults.get_default(name) else "flag")
        parts[where].append(f"{name}={value}")
    return (f"settings: from the {args.task} recipe: {' '.join(parts['recipe']) or '-'} | from flags: "
            f"{' '.join(parts['flag']) or '-'} | defaults: {' '.join(parts['default']) or '-'}")


def check_args(args) -> None:
    if getattr(args, "settings_source", None) is None:
        resolve_defaults(args)
    positive = {"--epochs": args.epochs, "--batch-size": args.batch_size, "--accumulate": args.accumulate,
                "--max-length": args.max_length}
    for flag, value in positive.items():
        if value < 1:
            raise cli.UsageError(f"{flag} {value}: must be at least 1")
    if args.save_every < 0 or args.keep_checkpoints < 1:
        raise cli.UsageError("--save-every must be >= 0 and --keep-checkpoints at least 1")
    if args.max_bad_steps < 1:
        raise cli.UsageError(f"--max-bad-steps {args.max_bad_steps}: must be at least 1")
    if args.lr <= 0 or (args.lr_head is not None and args.lr_head <= 0):
        raise cli.UsageError("--lr and --lr-head must be > 0")
    if not 0 < args.valid_fraction < 1 or args.warmup < 0:
        raise cli.UsageError("--valid-fraction must be between 0 and 1, --warmup >= 0")
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

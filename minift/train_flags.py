"""The flags of `python -m minift.train`, and where each hyperparameter's value comes from.

Kept apart from minift/train.py so that the loop reads in one page; `minift.train.parser` is this `parser`.
`resolve_defaults` fills the flags a user left out from the task's recipe (and LoRA's); `settings_line` says which
came from where. The checks that reject a combination that cannot work live in minift/train_checks.py.
"""
from __future__ import annotations

import argparse
from dataclasses import asdict, fields
from importlib import resources

from minift import cli, lora, optim
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
    r = lora.RECIPE
    return ("the task's recipe (the defaults of the flags that say so; lr-head None: --lr):\n" + table +
            f"\nunder --lora R: --lr {r['lr']:g}, --lr-head {r['lr_head']:g}, --lora-alpha {r['alpha_per_rank']:g}R, "
            f"--lora-dropout {r['dropout']:g} (minift/lora.py RECIPE)")


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
    p.add_argument("--out", help="folder for the model, metrics.jsonl and results.json (default: the run folder of "
                                 "--resume, else runs/default). A model of the same task there is replaced; another "
                                 "task's model, an earlier run's checkpoints or files minift did not write are refused "
                                 "unless --overwrite. One run at a time: OUT/.minift.lock")
    p.add_argument("--overwrite", action="store_true", help="train into an --out that holds another task's model, "
                                                             "an earlier run's checkpoints (deleted) or other files")
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
    p.add_argument("--resume", help="continue a run from its latest complete checkpoint: give its --out folder (or "
                                    "one checkpoint, OUT/checkpoints/step-N) and the same flags")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--debug", action="store_true", help=cli.DEBUG_HELP)
    add_column_flags(p)
    add_seq2seq_flags(p)
    add_lora_flags(p)
    add_recipe_flags(p)
    add_memory_flags(p)
    return p


def add_column_flags(p: argparse.ArgumentParser) -> None:
    """How the files are read: columns, header, encoding; how long inputs become windows (ner, qa)."""
    g = p.add_argument_group("columns and windows")
    g.add_argument("--text-col", default="text", help="column name, or 0-based index")
    g.add_argument("--text-pair-col", help="second text column, for sentence-pair tasks")
    g.add_argument("--label-col", default="label")
    g.add_argument("--label-delimiter", default=",", help="separates the labels of one row (multilabel)")
    g.add_argument("--no-header", action="store_true", help="the file has no header row: columns by index")
    g.add_argument("--encoding", default="utf-8")
    g.add_argument("--doc-stride", type=int, help="tokens repeated between the windows of a long input (qa, ner; "
                                                  "default: 128 for qa, max-length // 4 for ner)")
    g.add_argument("--label-all-subtokens", action="store_true",
                   help="ner: tag every piece of a word (I- form), not only the first")
    g.add_argument("--max-answer-length", type=int, default=30, help="qa: longest answer, in tokens")
    g.add_argument("--articles", help="qa: the articles of --train to use, 0-based, e.g. 0-29 or 0-4,7")
    g.add_argument("--valid-articles", help="qa: the articles of --valid and --test to use")


def add_lora_flags(p: argparse.ArgumentParser) -> None:
    """LoRA (minift/lora.py): train a low-rank update (α/r)·B·A of chosen encoder weights W, which stay frozen."""
    g = p.add_argument_group("LoRA (Hu et al. 2021): W' = W + (alpha/r) B A, W frozen")
    g.add_argument("--lora", type=int, default=0, metavar="R", help="train rank-R adapters instead of the encoder "
                   "(the head trains; --freeze layers:I-J keeps those layers' adapters frozen); 0: off")
    r = lora.RECIPE
    g.add_argument("--lora-alpha", type=float, help=f"alpha of the scale alpha/r; None: {r['alpha_per_rank']:g}R "
                   f"(and under --lora, --lr and --lr-head left out are {r['lr']:g} and {r['lr_head']:g})")
    g.add_argument("--lora-dropout", type=float, default=r["dropout"], help="dropout on the adapters' input")
    g.add_argument("--lora-targets", default=",".join(lora.DEFAULT_TARGETS),
                   help=f"the layers to adapt in every encoder layer, comma-separated: {', '.join(lora.TARGETS)}; "
                        f"or all; and {lora.EMBEDDINGS} (the word embeddings, with their own rank and alpha)")
    g.add_argument("--lora-embedding-rank", type=int, default=lora.EMBEDDING_RANK, metavar="R",
                   help=f"rank of the word embeddings' adapter (--lora-targets ...,{lora.EMBEDDINGS})")
    g.add_argument("--lora-embedding-alpha", type=float, help="its alpha; None: its rank (scale 1: its B starts "
                   "random, not A, so it moves faster than the layers' adapters at the same alpha/r)")
    g.add_argument("--save-adapter", action="store_true", help="also write the adapters and the head alone to "
                   "--out in PEFT's layout (adapter_config.json, adapter_model.safetensors), for --adapter")


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


def add_recipe_flags(p: argparse.ArgumentParser) -> None:
    """The recipes of the fine-tuning courses (issue 15): regularisation, augmentation, imbalance, optimizers,
    splits, calibration. Checked by `check_recipe_args`; what a run used is recorded in minift.json."""
    g = p.add_argument_group("regularisation")
    g.add_argument("--dropout", type=float, metavar="P",
                   help="override the checkpoint's hidden dropout rate (and the head's)")
    g.add_argument("--attention-dropout", type=float, metavar="P",
                   help="override the checkpoint's attention dropout rate")
    g.add_argument("--l2", type=float, metavar="λ", default=0.0, help="add λ·Σw² over the decayed weights (no "
                   "biases or LayerNorm) to the loss: coupled L2, unlike --weight-decay")
    g.add_argument("--l1", type=float, metavar="λ", default=0.0,
                   help="add λ·Σ|w| over the decayed weights to the loss")
    g.add_argument("--augment", action="store_true", help="sentence tasks: add EDA copies of each training row "
                   "(random deletion, swap, insertion); never validation/test")
    g.add_argument("--augment-p", type=float, metavar="P", default=0.1, help="--augment: share of a row's words "
                   "changed")
    g.add_argument("--augment-n", type=int, metavar="N", default=1, help="--augment: copies per training row")
    g.add_argument("--mask-tokens", type=float, metavar="F", default=0.0, help="replace this share of training word "
                   "pieces with [MASK], afresh each epoch")
    g = p.add_argument_group("imbalance and loss")
    g.add_argument("--undersample", action="store_true", help="draw each class down to the smallest, afresh "
                   "each epoch (classification)")
    g.add_argument("--loss", choices=["ce", "focal"], default="ce", help="classification, multilabel: "
                   "cross-entropy, or focal loss -(1 - p_t)^γ log p_t (Lin et al. 2017)")
    g.add_argument("--focal-gamma", type=float, metavar="γ", default=2.0, help="--loss focal: γ (0 is cross-entropy)")
    g.add_argument("--label-smoothing", type=float, metavar="ε", default=0.0,
                   help="classification: ε of label smoothing")
    g.add_argument("--tune-thresholds", action=argparse.BooleanOptionalAction, help="multilabel: per-label "
                   "probability thresholds that maximise each label's F1 on the validation set; saved, used by "
                   "evaluate and predict (" + RECIPE + "; --no-tune-thresholds keeps 0.5)")
    g = p.add_argument_group("optimizer")
    g.add_argument("--optimizer", choices=sorted(optim.OPTIMIZERS), default="adamw",
                   help="adamw: decoupled --weight-decay; adam: --weight-decay is coupled L2 (added to the "
                        "gradient, so it enters the moments); sgd: plain, --momentum, --nesterov")
    g.add_argument("--momentum", type=float, metavar="μ", default=0.0, help="sgd: momentum μ")
    g.add_argument("--nesterov", action="store_true", help="sgd: Nesterov momentum (needs --momentum > 0)")
    g = p.add_argument_group("splits and calibration")
    g.add_argument("--test-fraction", type=float, metavar="F", default=0.0, help="hold out this share of --train as "
                   "a stratified test split (beside validation)")
    g.add_argument("--folds", type=int, metavar="K", default=0, help="K-fold cross-validation: train K models into "
                   "OUT/fold-k, each validated on its fold; mean ± standard error in OUT/results.json")
    g.add_argument("--calibrate", action="store_true", help="classification: fit a softmax temperature on the "
                   "validation set after training (Guo et al. 2017)")


def resolve_defaults(args) -> dict:
    """Fill each recipe flag the user left out (None) from the task's recipe, in place; the one place the loop's
    defaults come from. Returns {hyperparameter: "flag" or "recipe"}, and sets `args.settings_source` to it."""
    recipe = asdict(TASKS[args.task].recipe_of(args.task))
    source = {}
    for name, value in recipe.items():
        source[name] = "flag" if getattr(args, name) is not None else "recipe"
        if source[name] == "recipe":
            setattr(args, name, value)
    if getattr(args, "lora", 0):  # the task's rates are for full fine-tuning; adapters take LoRA's (lora.RECIPE)
        for name in ("lr", "lr_head"):
            if source[name] == "recipe":
                setattr(args, name, lora.RECIPE[name])
    args.settings_source = source
    args.max_length_is_default = source["max_length"] == "recipe"  # may be lowered to fit (train_checks.check_length)
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
    recipe = f"the {args.task} recipe" + (" with LoRA's rates" if getattr(args, "lora", 0) else "")
    return (f"settings: from {recipe}: {' '.join(parts['recipe']) or '-'} | from flags: "
            f"{' '.join(parts['flag']) or '-'} | defaults: {' '.join(parts['default']) or '-'}")

"""The flags of `python -m minift.train` and the checks that reject a combination that cannot work.

Kept apart from minift/train.py so that the loop reads in one page; `minift.train.parser` is this `parser`.
A check that fails raises `cli.UsageError`, which the command turns into one message and exit code 2.
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
                        "or all")
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


def check_recipe_args(args) -> None:
    """The recipe flags: rates in range, and each only for the tasks it means something for."""
    sentence = args.task in ("classification", "multilabel", "regression")
    for flag, value in (("--dropout", args.dropout), ("--attention-dropout", args.attention_dropout),
                        ("--mask-tokens", args.mask_tokens), ("--augment-p", args.augment_p),
                        ("--label-smoothing", args.label_smoothing), ("--test-fraction", args.test_fraction)):
        if value is not None and not 0 <= value < 1:
            raise cli.UsageError(f"{flag} {value}: must lie in [0, 1)")
    if args.l1 < 0 or args.l2 < 0 or args.focal_gamma < 0 or args.momentum < 0 or args.augment_n < 1:
        raise cli.UsageError("--l1, --l2, --focal-gamma and --momentum must be >= 0, --augment-n at least 1")
    if args.augment and not sentence:
        raise cli.UsageError(f"--augment rewrites sentences: it applies to classification, multilabel and "
                             f"regression, not --task {args.task}")
    if args.mask_tokens and args.task == "seq2seq":
        raise cli.UsageError("--mask-tokens would mask the targets a seq2seq model learns to write: not for seq2seq")
    if args.undersample and (args.oversample or args.task != "classification"):
        raise cli.UsageError("--undersample applies to --task classification, without --oversample")
    if args.loss == "focal" and args.task not in ("classification", "multilabel"):
        raise cli.UsageError("--loss focal applies to --task classification and multilabel")
    if args.label_smoothing and (args.task != "classification" or args.loss == "focal"):
        raise cli.UsageError("--label-smoothing smooths the cross-entropy of --task classification: not for other "
                             "tasks, nor with --loss focal")
    if args.tune_thresholds and args.task != "multilabel":
        raise cli.UsageError("--tune-thresholds chooses multi-label thresholds: --task multilabel only")
    if args.calibrate and args.task != "classification":
        raise cli.UsageError("--calibrate fits a softmax temperature: --task classification only")
    if args.optimizer != "sgd" and (args.momentum or args.nesterov):
        raise cli.UsageError("--momentum and --nesterov are for --optimizer sgd")
    if args.nesterov and not args.momentum:
        raise cli.UsageError("--nesterov needs --momentum > 0")
    if args.folds and (args.folds < 2 or args.valid or args.resume):
        raise cli.UsageError("--folds K needs K >= 2, and validates on each fold: not with --valid or --resume")
    if args.test_fraction and args.test:
        raise cli.UsageError("--test-fraction splits a test set off --train: not with --test")
    if not args.valid and not args.folds and args.test_fraction + args.valid_fraction >= 1:
        raise cli.UsageError(f"--valid-fraction {args.valid_fraction} + --test-fraction {args.test_fraction} "
                             "leave no rows to train on")


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
    recipe = f"the {args.task} recipe" + (" with LoRA's rates" if getattr(args, "lora", 0) else "")
    return (f"settings: from {recipe}: {' '.join(parts['recipe']) or '-'} | from flags: "
            f"{' '.join(parts['flag']) or '-'} | defaults: {' '.join(parts['default']) or '-'}")


def check_args(args) -> None:
    if getattr(args, "settings_source", None) is None:
        resolve_defaults(args)
    if args.max_steps is not None and args.max_steps < 1:
        raise cli.UsageError(f"--max-steps {args.max_steps}: must be at least 1")
    if args.epochs < (0 if args.max_steps else 1):  # --max-steps overrides --epochs: then 0 is fine
        raise cli.UsageError(f"--epochs {args.epochs}: must be at least 1, or 0 with --max-steps N (N updates, however "
                             "many epochs that is)")
    positive = {"--batch-size": args.batch_size, "--accumulate": args.accumulate, "--max-length": args.max_length}
    for flag, value in positive.items():
        if value < 1:
            raise cli.UsageError(f"{flag} {value}: must be at least 1")
    if args.save_every < 0 or args.keep_checkpoints < 1:
        raise cli.UsageError("--save-every must be >= 0 and --keep-checkpoints at least 1")
    if args.max_bad_steps < 1:
        raise cli.UsageError(f"--max-bad-steps {args.max_bad_steps}: must be at least 1")
    if not 0 < args.lr < float("inf"):  # also refuses nan
        raise cli.UsageError(f"--lr {args.lr}: must be above 0 (fine-tuning takes 1e-5 to 1e-4; the default is 5e-5)")
    if not 0 < args.valid_fraction < 1:
        raise cli.UsageError(f"--valid-fraction {args.valid_fraction}: must be between 0 and 1, the share of --train "
                             "held out for validation (e.g. 0.2), or give --valid FILE")
    if not args.warmup >= 0:
        raise cli.UsageError(f"--warmup {args.warmup}: must be at least 0 (steps, or a fraction of them if below 1)")
    if args.lr_head is not None and not 0 < args.lr_head < float("inf"):
        raise cli.UsageError(f"--lr-head {args.lr_head}: must be above 0 (a new head often takes 10-50x --lr)")
    if args.layer_decay is not None and not 0 < args.layer_decay <= 1:
        raise cli.UsageError(f"--layer-decay {args.layer_decay}: must be in (0, 1]")
    check_recipe_args(args)
    if args.task != "classification" and (args.class_weights != "none" or args.oversample):
        raise cli.UsageError("--class-weights and --oversample apply to --task classification only")
    if args.task != "qa" and (args.articles or args.valid_articles):
        raise cli.UsageError("--articles and --valid-articles select SQuAD articles: they apply to --task qa only")
    if args.max_target_length < 2 or args.beams < 1 or args.max_eval_sources < 0:
        raise cli.UsageError("--max-target-length must be at least 2, --beams at least 1, --max-eval-sources >= 0")
    if args.max_answer_length < 1:
        raise cli.UsageError(f"--max-answer-length {args.max_answer_length}: must be at least 1")
    check_lora(args)
    if args.doc_stride is not None and not 0 <= args.doc_stride < args.max_length // 2:
        raise cli.UsageError(f"--doc-stride {args.doc_stride}: must be at least 0 and under half of --max-length "
                             f"({args.max_length})")


def check_lora(args) -> None:
    """The LoRA flags, and what they cannot go with; fills in --lora-alpha's default (lora.RECIPE)."""
    if not args.lora:
        if args.save_adapter:
            raise cli.UsageError("--save-adapter writes LoRA adapters: it needs --lora R")
        return
    if args.lora < 0 or not 0 <= args.lora_dropout < 1:
        raise cli.UsageError(f"--lora {args.lora} --lora-dropout {args.lora_dropout}: the rank must be at least 1 "
                             "(0: no LoRA), the dropout in [0, 1)")
    if args.lora_alpha is None:
        args.lora_alpha = lora.RECIPE["alpha_per_rank"] * args.lora
    if args.gradual_unfreeze:
        raise cli.UsageError("--gradual-unfreeze unfreezes pretrained layers, which --lora keeps frozen: use one")
    if args.save_adapter and not TASKS[args.task].peft_task_type:
        raise cli.UsageError(f"--save-adapter: PEFT has no adapter layout for --task {args.task}'s head; the "
                             "merged model in --out is all there is to load")
    for flag, check in (("--lora-targets", lambda: lora.parse_targets(args.lora_targets)),
                        ("--freeze", lambda: lora.frozen_layers(args.freeze))):
        try:
            check()
        except ValueError as e:
            raise cli.UsageError(f"{flag}: {e}") from None

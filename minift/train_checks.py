"""The checks that reject a combination of `python -m minift.train` flags that cannot work, before anything loads.

The flags themselves are declared in minift/train_flags.py; `check_args` runs after `train_flags.resolve_defaults`
(it calls it if the loop has not), so every value it checks is the one the run will use; `check_length` runs once
the model's config is read, before the data. A check that fails raises `cli.UsageError`, which the command turns
into one message and exit code 2.
"""
from __future__ import annotations

from minift import cli, lora
from minift.tasks import TASKS
from minift.train_flags import resolve_defaults


def check_args(args) -> None:
    """Every flag of the run in range, and no two that cannot go together; raises cli.UsageError naming the flags."""
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


def check_lora(args) -> None:
    """The LoRA flags, and what they cannot go with; fills in --lora-alpha's default (lora.RECIPE)."""
    if not args.lora:
        if args.save_adapter:
            raise cli.UsageError("--save-adapter writes LoRA adapters: it needs --lora R")
        return
    if args.lora < 0 or not 0 <= args.lora_dropout < 1:
        raise cli.UsageError(f"--lora {args.lora} --lora-dropout {args.lora_dropout}: the rank must be at least 1 "
                             "(0: no LoRA), the dropout in [0, 1)")
    if args.lora_embedding_rank < 1:
        raise cli.UsageError(f"--lora-embedding-rank {args.lora_embedding_rank}: the rank must be at least 1")
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


def check_length(args, cfg) -> None:
    """Fit the longest sequence into the model's position embeddings: a default --max-length is lowered to fit,
    one the user gave is an error (before any data is read), not a failure in the middle of training."""
    positions = cfg.max_tokens
    extra = args.max_target_length + 1 if args.task == "seq2seq" else 0  # seq2seq: source, target, its [SEP]
    if args.max_length + extra <= positions:
        return
    if args.max_length_is_default and positions - extra >= 2:
        args.max_length = positions - extra
        return
    what = f"--max-length {args.max_length}" + (f" + --max-target-length {args.max_target_length} + 1" if extra
                                                else "")
    raise cli.UsageError(f"{what} tokens do not fit the {positions} positions of {args.model}: ask for at most "
                         f"{positions} tokens in all")

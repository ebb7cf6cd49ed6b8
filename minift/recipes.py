"""The fine-tuning recipes of issue 15 as the loop uses them: the optimizer, the L1 / L2 penalties, augmented and
masked training rows, the train / validation / test split and k-fold cross-validation, temperature calibration, and
the run's record (minift.json "training", the model card's facts). Each is one small function `minift/train.py`
calls; the formulas live below it (losses.py, optim.py, augment.py, splits.py, metrics/calibration.py).
"""
from __future__ import annotations

import copy
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from minift import atomic, augment, cli, losses, optim
from minift.data import Example
from minift.metrics import expected_calibration_error, fit_temperature, nll
from minift.splits import stratified_folds, stratified_split
from minift.tasks import TASKS


def make_optimizer(args, model) -> torch.optim.Optimizer:
    """--optimizer: AdamW (decoupled decay), Adam (coupled L2 decay) or SGD (--momentum, --nesterov), over
    `optim.param_groups` (no decay for biases and LayerNorm; --layer-decay; the new head at --lr-head)."""
    groups = optim.param_groups(model, args.lr, args.weight_decay, args.layer_decay, args.lr_head)
    extra = {"momentum": args.momentum, "nesterov": args.nesterov} if args.optimizer == "sgd" else {}
    return optim.OPTIMIZERS[args.optimizer](groups, lr=args.lr, **extra)


def penalty(args):
    """--l2 / --l1 as a function of the decayed parameters -> {"l2_penalty": λ₂ Σw², "l1_penalty": λ₁ Σ|w|}
    (differentiable), for `step.update` to add once per update; None when neither flag is set."""
    if not (args.l1 or args.l2):
        return None

    def terms(params) -> dict:
        out = {}
        if args.l2:
            out["l2_penalty"] = args.l2 * losses.l2_penalty(params)
        if args.l1:
            out["l1_penalty"] = args.l1 * losses.l1_penalty(params)
        return out
    return terms


def augmented(args, rows: list[Example]) -> list[Example]:
    """--augment: the training rows, then `--augment-n` EDA copies of each (augment.augment), labels kept;
    a pair's second text is copied unchanged."""
    texts, _ = augment.augment([e.text for e in rows], list(range(len(rows))), args.augment_p, args.augment_n,
                               args.seed)
    copies = [Example(t, rows[i].text_pair, rows[i].label, rows[i].line)
              for t, i in zip(texts[len(rows):], np.repeat(np.arange(len(rows)), args.augment_n))]
    return rows + copies


def mask_batches(args, tokenizer, batches: list[dict], epoch: int) -> list[dict]:
    """--mask-tokens F: in each training batch, replace a share F of the word pieces (never [CLS], [SEP] or
    padding) with [MASK]; the generator is seeded by (seed, epoch), so a resumed epoch masks the same pieces."""
    if not args.mask_tokens:
        return batches
    if tokenizer.mask_id is None:
        raise cli.UsageError("--mask-tokens: this model's vocabulary has no [MASK] token")
    generator = torch.Generator().manual_seed(args.seed * 1_000_003 + epoch)
    specials = torch.tensor([i for i in (tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id) if i is not None])
    for batch in batches:
        ids = batch["input_ids"]  # (B, T)
        special = torch.isin(ids, specials) | (batch["attention_mask"] == 0)
        batch["input_ids"] = augment.mask_tokens(ids, special, tokenizer.mask_id, args.mask_tokens, generator)
    return batches


def split_rows(args, task, rows: list) -> tuple[list, list, list]:
    """(train, valid, test) rows: --test-fraction's stratified test split first, then --valid (a file), the
    fold of --folds, or a --valid-fraction split of what is left; --test is read as given. Seeded, disjoint;
    sizes printed when --train was split three ways or into folds."""
    def labels_of(part):  # stratify classification by label; the rest is shuffled
        return [e.label for e in part] if args.task == "classification" else list(range(len(part)))
    stratify = args.task == "classification"
    test = task.read(args.test) if args.test else []
    if args.test_fraction:
        keep, held = stratified_split(labels_of(rows), args.test_fraction, args.seed, stratify=stratify)
        rows, test = [rows[i] for i in keep], [rows[i] for i in held]
    fold = getattr(args, "fold", None)
    if args.valid:
        train, valid = rows, task.read(args.valid)
    else:
        if fold is not None:
            if len(rows) < args.folds:
                raise cli.DataError(f"{args.train}: {len(rows)} rows cannot make {args.folds} folds")
            valid_idx = set(stratified_folds(labels_of(rows), args.folds, args.seed, stratify=stratify)[fold])
            tr, va = [i for i in range(len(rows)) if i not in valid_idx], sorted(valid_idx)
        else:
            share = args.valid_fraction / (1 - args.test_fraction)  # of all of --train
            tr, va = stratified_split(labels_of(rows), share, args.seed, stratify=stratify)
        train, valid = [rows[i] for i in tr], [rows[i] for i in va]
    if args.test_fraction or fold is not None:
        print(f"{args.train}: {len(train)} training, {len(valid)} validation, {len(test)} test rows"
              + (f" (fold {fold} of {args.folds})" if fold is not None else ""), file=sys.stderr)
    return train, valid, test


def record(args, train_f, valid_f, test_f) -> dict:
    """minift.json's "training": the base model, the data and its sizes, the flags that shape the model."""
    names = ["epochs", "max_steps", "batch_size", "accumulate", "lr", "weight_decay", "warmup", "schedule",
             "optimizer", "momentum", "nesterov", "max_length", "pooling", "freeze", "layer_decay",
             "class_weights", "oversample", "undersample", "loss", "focal_gamma", "label_smoothing", "dropout",
             "attention_dropout", "l2", "l1", "augment", "augment_p", "augment_n", "mask_tokens",
             "tune_thresholds", "calibrate", "valid_fraction", "test_fraction", "folds", "fold", "precision", "seed",
             "gradient_checkpointing"]
    unused = ({"augment_p", "augment_n"} if not args.augment else set()) | \
        ({"momentum", "nesterov"} if args.optimizer != "sgd" else set()) | \
        ({"focal_gamma"} if args.loss != "focal" else set())
    shown = {n: getattr(args, n) for n in names if hasattr(args, n) and n not in unused}
    data = {"train": str(args.train), "train_rows": len(train_f), "valid": str(args.valid or f"{args.train} (split)"),
            "valid_rows": len(valid_f)}
    if test_f:
        data.update(test=str(args.test or f"{args.train} (split)"), test_rows=len(test_f))
    return {"base_model": args.model, "data": data, "flags": shown}


@torch.no_grad()
def calibrate(task, model, valid_f, device) -> dict:
    """--calibrate: fit the softmax temperature T on the validation rows (Guo et al. 2017, minimising NLL), set
    it on `task`; returns T and the validation ECE and NLL before (T = 1) and after."""
    logits = task.logits(model, valid_f, device=device).double().numpy()  # (N, C)
    y = np.array([int(f["labels"]) for f in valid_f])
    t = fit_temperature(logits, y)
    probs = lambda temp: torch.from_numpy(logits / temp).softmax(-1).numpy()  # noqa: E731
    task.temperature = t
    return {"temperature": t, "ece_before": expected_calibration_error(probs(1.0), y),
            "ece_after": expected_calibration_error(probs(t), y), "nll_before": nll(logits, y),
            "nll_after": nll(logits, y, t)}


def cross_validate(args, fit_one) -> dict:
    """--folds K: `fit_one(fold_args)` K times, fold k validating into OUT/fold-k; OUT/results.json gets each fold's
    main metric (on its validation fold) and their mean ± standard error s / √K (s: the sample deviation)."""
    metric = TASKS[args.task].main_metric_of(args.task)
    folds = []
    for k in range(args.folds):
        fold_args = copy.copy(args)
        fold_args.fold, fold_args.out = k, str(Path(args.out) / f"fold-{k}")
        results = fit_one(fold_args)
        folds.append({"fold": k, metric: results["valid"][metric], **({"test": results["test"][metric]}
                                                                        if "test" in results else {})})
    scores = np.array([f[metric] for f in folds])
    summary = {"metric": metric, "folds": folds, "mean": float(scores.mean()),
               "stderr": float(scores.std(ddof=1) / math.sqrt(len(scores)))}
    atomic.write_json(Path(args.out) / "results.json", summary)
    print(f"{args.folds}-fold {metric}: {summary['mean']:.4f} ± {summary['stderr']:.4f} (standard error); "
          f"{json.dumps([round(s, 4) for s in scores.tolist()])}")
    return summary

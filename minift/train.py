"""`python -m minift.train`: fine-tune a pretrained encoder on a labelled file, evaluate it, save the best model.

The loop, in the order it runs (Devlin et al., 2019, §4; Mosbach et al., 2021 for the small-data advice):

    1. read the data, map labels to ids, split off a validation set if none is given
    2. load the pretrained encoder and tokenizer, add the task's head, freeze what `--freeze` says
    3. AdamW with decoupled weight decay; the learning rate warms up, then follows `--schedule`
    4. for each step: sum the loss over `--accumulate` micro-batches, divide the gradient by the number of
       examples they hold (so N micro-batches equal one N-times larger batch), clip, update
    5. every `--eval-every` steps and at the end of each epoch: validation metrics to `metrics.jsonl`; the best
       model so far (by the task's main metric) is written to `--out`; stop after `--patience` evaluations
       without improvement
    6. reload the best model; write its validation and test scores to `results.json`

With no arguments it fine-tunes all-MiniLM-L6-v2 on the small sentiment dataset bundled with minift.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from importlib import resources
from pathlib import Path

import torch
from tqdm import tqdm

from minift import cli, freeze, optim
from minift.batching import balanced_class_weights
from minift.data import stratified_split
from minift.encoder import Encoder
from minift.tasks.qa import only_articles
from minift.tokenizer import Tokenizer

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BUNDLED = resources.files("minift") / "bundled" / "sentiment.csv"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m minift.train", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--task", choices=sorted(cli.TASKS), default="classification")
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
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--accumulate", type=int, default=1, help="micro-batches per update")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=float, default=0.1, help="warmup steps, or a fraction of all steps if < 1")
    p.add_argument("--schedule", choices=sorted(optim.SCHEDULES), default="linear")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="clip the gradient norm (0: no clipping)")
    p.add_argument("--max-length", type=int, help="tokens per input (default: 384 for qa, else 128)")
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
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def check_args(a) -> None:
    if a.max_length is None:
        a.max_length = 384 if a.task == "qa" else 128
    positive = {"--epochs": a.epochs, "--batch-size": a.batch_size, "--accumulate": a.accumulate,
                "--max-length": a.max_length}
    for flag, value in positive.items():
        if value < 1:
            raise cli.UsageError(f"{flag} {value}: must be at least 1")
    if a.lr <= 0 or not 0 < a.valid_fraction < 1 or a.warmup < 0:
        raise cli.UsageError("--lr must be > 0, --valid-fraction between 0 and 1, --warmup >= 0")
    if a.layer_decay is not None and not 0 < a.layer_decay <= 1:
        raise cli.UsageError(f"--layer-decay {a.layer_decay}: must be in (0, 1]")
    if a.task != "classification" and (a.class_weights != "none" or a.oversample):
        raise cli.UsageError("--class-weights and --oversample apply to --task classification only")
    if a.task != "qa" and (a.articles or a.valid_articles):
        raise cli.UsageError("--articles and --valid-articles select SQuAD articles: they apply to --task qa only")
    if a.max_answer_length < 1:
        raise cli.UsageError(f"--max-answer-length {a.max_answer_length}: must be at least 1")
    if a.doc_stride is not None and not 0 <= a.doc_stride < a.max_length // 2:
        raise cli.UsageError(f"--doc-stride {a.doc_stride}: must be at least 0 and under half of --max-length "
                             f"({a.max_length})")


def prepare(a, tokenizer):
    """Read the files, build the label map, split, and tokenize: (task, train, valid, test features)."""
    task = cli.TASKS[a.task].from_args(a, tokenizer)  # each task reads the flags it needs
    train = only_articles(task.read(a.train), a.articles)
    if not train:
        raise cli.DataError(f"{a.train}: no rows to train on")
    task.fit_labels(train)
    if a.valid:
        valid = only_articles(task.read(a.valid), a.valid_articles)
    else:
        labels = [e.label for e in train] if a.task == "classification" else None
        tr, va = stratified_split(labels or list(range(len(train))), a.valid_fraction, a.seed,
                                  stratify=labels is not None)
        train, valid = [train[i] for i in tr], [train[i] for i in va]
    test = only_articles(task.read(a.test), a.valid_articles) if a.test else []
    return (task, task.featurize(train, str(a.train)), task.featurize(valid, str(a.valid or a.train)),
            task.featurize(test, str(a.test)))


def save(task, model, tokenizer, out: Path) -> None:
    """Write the model folder atomically: every file goes to a temporary folder first, then is renamed in."""
    tmp = out / ".saving"
    shutil.rmtree(tmp, ignore_errors=True)
    task.save(model, tmp)
    tokenizer.save(tmp)
    (tmp / "minift.json").write_text(json.dumps(task.meta(), indent=2) + "\n", encoding="utf-8")
    for f in tmp.iterdir():
        f.replace(out / f.name)
    tmp.rmdir()


def train(a) -> dict:
    check_args(a)
    device = cli.pick_device(a.device)
    cli.seed_everything(a.seed)
    out = Path(a.out)
    tokenizer = Tokenizer.from_pretrained(a.model, a.revision)
    task, train_f, valid_f, test_f = prepare(a, tokenizer)
    model = task.build_model(Encoder.from_pretrained(a.model, a.revision)).to(device)
    if a.class_weights == "balanced":
        counts = [int(f["labels"]) for f in train_f]
        task.class_weights = balanced_class_weights(counts, len(task.labels)).float().to(device)

    # The optimizer holds every parameter; frozen ones get no gradient, and AdamW skips them.
    opt = optim.AdamW(optim.param_groups(model, a.lr, a.weight_decay, a.layer_decay), lr=a.lr)
    try:
        freeze.apply_freeze(model, a.freeze)
    except ValueError as e:
        raise cli.UsageError(f"--freeze: {e}") from None
    if a.gradual_unfreeze:
        freeze.gradual_unfreeze(model, 0, a.freeze)
    print(freeze.describe(model), file=sys.stderr)

    micro_batches = math.ceil(len(train_f) / a.batch_size)
    steps_per_epoch = math.ceil(micro_batches / a.accumulate)
    total = a.max_steps or a.epochs * steps_per_epoch
    epochs = math.ceil(total / steps_per_epoch)
    warmup = int(a.warmup * total) if a.warmup < 1 else int(a.warmup)
    schedule = optim.SCHEDULES[a.schedule]
    out.mkdir(parents=True, exist_ok=True)
    log = (out / "metrics.jsonl").open("w", encoding="utf-8")
    best, best_step, evals_since_best, step, start = -math.inf, None, 0, 0, time.time()
    bar = tqdm(total=total, disable=a.quiet, desc="train", dynamic_ncols=True)

    def evaluate_and_keep_best(epoch: float, train_loss: float) -> bool:
        """Log validation metrics; save the model if it is the best so far; True when patience runs out."""
        nonlocal best, best_step, evals_since_best
        scores = task.evaluate(model, valid_f, device=device)
        log.write(json.dumps({"step": step, "epoch": round(epoch, 4), "train_loss": train_loss,
                              "lr": opt.param_groups[0]["lr"], "elapsed_s": round(time.time() - start, 2),
                              "valid": scores}) + "\n")
        log.flush()
        score = scores[task.main_metric]
        if best_step is None or score > best:
            best, best_step, evals_since_best = score, step, 0
            save(task, model, tokenizer, out)
        else:
            evals_since_best += 1
        model.train()
        return bool(a.patience) and evals_since_best >= a.patience

    stop = False
    for epoch in range(epochs):
        if a.gradual_unfreeze:
            freeze.gradual_unfreeze(model, epoch, a.freeze)
        model.train()
        batches = list(task.batches(train_f, a.batch_size, a.seed, epoch, shuffle=True, bucket=a.bucket,
                                    oversample=a.oversample))
        for i in range(0, len(batches), a.accumulate):
            group = batches[i:i + a.accumulate]
            loss_sum, count = 0.0, 0.0
            for batch in group:  # sum the loss of each micro-batch; normalise once for the whole update
                batch = {k: v.to(device) for k, v in batch.items()}
                total_loss, n = task.loss(model, batch)
                total_loss.backward()
                loss_sum, count = loss_sum + total_loss.item(), count + n
            for p in model.parameters():
                if p.grad is not None:
                    p.grad /= count
            if a.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), a.max_grad_norm)
            optim.set_lr(opt, schedule(step, total, warmup))
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss_sum / count:.4f}", lr=f"{opt.param_groups[0]['lr']:.2e}")
            if a.eval_every and step % a.eval_every == 0:
                stop = evaluate_and_keep_best(epoch + (i + len(group)) / len(batches), loss_sum / count)
            if stop or step >= total:
                break
        if not stop and not (a.eval_every and step % a.eval_every == 0):
            stop = evaluate_and_keep_best(epoch + 1.0, loss_sum / count)
        if stop or step >= total:
            break
    bar.close()
    log.close()

    task, model = cli.load_trained(out, device)  # the best model, as saved
    results = {"valid": task.evaluate(model, valid_f, device=device), "best_step": best_step,
               "train_seconds": round(time.time() - start, 2)}
    if test_f:
        results["test"] = task.evaluate(model, test_f, device=device)
    cli.write_json_atomic(out / "results.json", results)
    print(f"validation {task.main_metric}: {results['valid'][task.main_metric]:.4f} "
          f"(best at step {best_step}); model saved to {out}")
    return results


def main(argv=None) -> None:
    train(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="minift.train"))

"""`python -m minift.train`: fine-tune a pretrained encoder on a labelled file, evaluate it, save the best model.

The loop, in the order it runs (Devlin et al., 2019, §4; Mosbach et al., 2021 for the small-data advice):

    1. read the data, map labels to ids, split off a validation set if none is given
    2. load the pretrained encoder and tokenizer, add the task's head, freeze what `--freeze` says
    3. AdamW with decoupled weight decay; the learning rate warms up, then follows `--schedule`
    4. for each step: sum the loss over `--accumulate` micro-batches (forward + loss under `--precision`, see
       minift/precision.py), divide the gradient by the number of examples they hold (so N micro-batches equal
       one N-times larger batch), clip, update. An update whose loss or gradient norm is NaN or infinite is
       skipped and counted (`skipped_steps`); `--max-bad-steps` of them in a row stop the run with advice.
       Under torchrun each process takes its shard of every batch and the count is summed over processes
       (minift/distributed.py), so W processes compute what one does
    5. every `--eval-every` steps and at the end of each epoch: validation metrics, loss, learning rate,
       gradient norm and throughput to `metrics.jsonl`; the best model so far (by the task's main metric, and
       only with finite weights) is written to `--out`; stop after `--patience` evaluations without improvement.
       Every `--save-every` steps, and on Ctrl-C, a checkpoint to `--resume` from (minift/resume.py, faults.py)
    6. reload the best model; write its validation and test scores to `results.json`

With no arguments it fine-tunes all-MiniLM-L6-v2 on the small sentiment dataset bundled with minift.
"""
from __future__ import annotations

import json
import math
import shutil
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from minift import cli, distributed, faults, freeze, optim, precision, resume
from minift.train_flags import BUNDLED, DEFAULT_MODEL, check_args, parser  # noqa: F401 (re-exported)
from minift.batching import balanced_class_weights
from minift.data import stratified_split
from minift.encoder import Encoder
from minift.tasks.qa import only_articles
from minift.tokenizer import Tokenizer

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


def check_length(a, cfg) -> None:
    """Fit the longest sequence into the model's position embeddings: a default --max-length is lowered to fit,
    one the user gave is an error (before any data is read), not a failure in the middle of training."""
    positions = cfg.max_tokens
    extra = a.max_target_length + 1 if a.task == "seq2seq" else 0  # seq2seq: source, then target and its [SEP]
    if a.max_length + extra <= positions:
        return
    if a.max_length_is_default and positions - extra >= 2:
        a.max_length = positions - extra
        return
    what = f"--max-length {a.max_length}" + (f" + --max-target-length {a.max_target_length} + 1" if extra else "")
    raise cli.UsageError(f"{what} tokens do not fit the {positions} positions of {a.model}: ask for at most "
                         f"{positions} tokens in all")


def save(task, model, tokenizer, out: Path) -> None:
    """Write the model folder so that a crash at any moment leaves a loadable model, the old or the new one.

    The files are written to OUT/.saving; renaming that folder to OUT/.saved is the commit point (one atomic
    rename); its files are then moved into OUT one by one. A crash before the commit leaves OUT as it was (and
    .saving is cleared by the next save); a crash between the moves leaves .saved, which `cli.finish_save`
    moves in before anything reads the folder (every load does), so no one sees a mix of two saves."""
    cli.finish_save(out)  # complete a save that an earlier crash cut short
    tmp = out / ".saving"
    shutil.rmtree(tmp, ignore_errors=True)
    task.save(model, tmp)
    tokenizer.save(tmp)
    (tmp / "minift.json").write_text(json.dumps(task.meta(), indent=2) + "\n", encoding="utf-8")
    tmp.rename(out / ".saved")
    cli.finish_save(out)


def train(a) -> dict:
    """Run `python -m minift.train` with parsed flags `a`; return the best model's results (rank 0 under torchrun).

    Around the loop: the torchrun process group (if any), Ctrl-C as a request to checkpoint and stop, and
    out-of-memory errors as advice (minift/distributed.py, minift/faults.py)."""
    with distributed.process_group(), faults.StopRequest() as stop_request, faults.out_of_memory_advice(a):
        return fit(a, stop_request)


def fit(a, stop_request) -> dict:
    """The run itself, steps 1 to 6 above; `stop_request.requested` turns true when Ctrl-C arrives."""
    check_args(a)
    device = distributed.local_device(cli.pick_device(a.device))
    precision.check(a.precision, device)
    cli.seed_everything(a.seed)
    out, main = Path(a.out), distributed.is_main()  # only the main process (rank 0) logs and writes files
    tokenizer = Tokenizer.from_pretrained(a.model, a.revision)
    encoder = Encoder.from_pretrained(a.model, a.revision)
    check_length(a, encoder.cfg)
    task, train_f, valid_f, test_f = prepare(a, tokenizer)
    model = task.build_model(encoder).to(device)
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
    if main:
        print(freeze.describe(model), file=sys.stderr)

    micro_batches = math.ceil(len(train_f) / a.batch_size)
    steps_per_epoch = math.ceil(micro_batches / a.accumulate)
    total = a.max_steps or a.epochs * steps_per_epoch
    epochs = math.ceil(total / steps_per_epoch)
    warmup = int(a.warmup * total) if a.warmup < 1 else int(a.warmup)
    schedule = optim.SCHEDULES[a.schedule]
    scaler = precision.grad_scaler(a.precision, device)  # fp16 only: scales the loss so gradients don't underflow
    out.mkdir(parents=True, exist_ok=True)
    best, best_step, evals_since_best, step, start = -math.inf, None, 0, 0, time.time()
    skipped, bad_in_row, grad_norm = 0, 0, math.nan  # updates skipped for a NaN / inf loss or gradient
    first_epoch, position, train_loss = 0, 0, math.nan  # where the loop starts: epoch, micro-batch within it
    if a.resume:  # the model, optimizer and random generators as they were after the checkpoint's update
        loop = resume.load(a.resume, model, opt, scaler)
        step, first_epoch, position, train_loss = loop["step"], loop["epoch"], loop["position"], loop["train_loss"]
        best, best_step, evals_since_best = loop["best"], loop["best_step"], loop["evals_since_best"]
        skipped, bad_in_row, grad_norm = loop["skipped"], loop["bad_in_row"], loop["grad_norm"]
        if step >= total:
            raise cli.UsageError(f"--resume {a.resume}: that checkpoint is at step {step}, already the run's last "
                                 f"({total}); raise --max-steps or --epochs to train further")
        if main:
            resume.forget_log_after(out / "metrics.jsonl", step)  # lines the interrupted run wrote after it
    if main and not a.resume:
        (out / "metrics.jsonl").write_text("", encoding="utf-8")  # one line per evaluation is appended below
    seen = {"examples": 0, "tokens": 0, "since": time.time()}  # for throughput since the last log line
    bar = tqdm(total=total, initial=step, disable=a.quiet or not main, desc="train", dynamic_ncols=True)

    def throughput() -> tuple[float, float]:
        seconds = max(time.time() - seen["since"], 1e-9)
        return seen["examples"] / seconds, seen["tokens"] / seconds

    def evaluate_and_keep_best(epoch: float, train_loss: float) -> bool:
        """Log validation metrics; save the model if it is the best so far; True when patience runs out.
        Under torchrun rank 0 alone evaluates on every validation row; it tells the others whether to stop."""
        nonlocal best, best_step, evals_since_best
        if main:
            examples_per_s, tokens_per_s = throughput()
            scores = task.evaluate(model, valid_f, device=device)
            with (out / "metrics.jsonl").open("a", encoding="utf-8") as log:
                log.write(json.dumps({"step": step, "epoch": round(epoch, 4), "train_loss": train_loss,
                                      "grad_norm": grad_norm, "lr": opt.param_groups[0]["lr"],
                                      "examples_per_s": round(examples_per_s, 1),
                                      "tokens_per_s": round(tokens_per_s, 1), "skipped_steps": skipped,
                                      "elapsed_s": round(time.time() - start, 2), "valid": scores}) + "\n")
            score = scores[task.main_metric]
            finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())  # never save a NaN model
            if finite and (best_step is None or score > best):
                best, best_step, evals_since_best = score, step, 0
                save(task, model, tokenizer, out)
            else:
                evals_since_best += 1
        model.train()
        seen.update(examples=0, tokens=0, since=time.time())  # evaluation time is not training throughput
        patience_ran_out = main and bool(a.patience) and evals_since_best >= a.patience
        return distributed.all_reduce_sum(patience_ran_out)[0] > 0

    def checkpoint(epoch: int, position: int) -> Path:
        """Write OUT/checkpoints/step-N: the state after this update, `position` micro-batches into `epoch`."""
        loop = {"step": step, "epoch": epoch, "position": position, "train_loss": train_loss, "best": best,
                "best_step": best_step, "evals_since_best": evals_since_best, "skipped": skipped,
                "bad_in_row": bad_in_row, "grad_norm": grad_norm}
        folder = out / "checkpoints" / f"step-{step}"
        if main:
            resume.save(folder, model, opt, scaler, loop, a.keep_checkpoints)
        return folder

    stop, stop_request.armed = False, True  # from here on, Ctrl-C means: checkpoint after this update
    for epoch in range(first_epoch, epochs):
        if a.gradual_unfreeze:
            freeze.gradual_unfreeze(model, epoch, a.freeze)
        ddp = distributed.wrap(model, device)  # after unfreezing: DDP syncs what requires a gradient when built
        model.train()
        batches = list(task.batches(train_f, a.batch_size, a.seed, epoch, shuffle=True, bucket=a.bucket,
                                    oversample=a.oversample))
        for i in range(position if epoch == first_epoch else 0, len(batches), a.accumulate):
            group = batches[i:i + a.accumulate]
            loss_sum, count = 0.0, 0.0
            for j, batch in enumerate(group):  # sum the loss of each micro-batch; normalise once for the update
                seen["examples"] += len(batch["input_ids"])  # the global batch: throughput of all processes
                seen["tokens"] += int(batch["attention_mask"].sum())
                rows, weight = distributed.shard(batch)  # this process's rows; weight 0 for a stand-in row
                rows = {k: v.to(device) for k, v in rows.items()}
                with distributed.sync_gradients(ddp, j == len(group) - 1):  # all-reduce after the last one
                    with precision.autocast(a.precision, device):  # forward + loss in bf16 / fp16; fp32 weights
                        total_loss, n = task.loss(ddp, rows)
                    total_loss = total_loss.float() * weight
                    (scaler.scale(total_loss) if scaler else total_loss).backward()
                loss_sum, count = loss_sum + total_loss.item(), count + n * weight
            # One all-reduce: the whole update's loss and count, and whether any process was asked to stop.
            loss_sum, count, stop_requested = distributed.all_reduce_sum(loss_sum, count, stop_request.requested)
            if scaler:
                scaler.unscale_(opt)  # divide the gradients by the loss scale before clipping
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            if grads:  # g /= count for each, in one kernel (as in optim.AdamW); DDP averaged over processes, hence
                torch._foreach_div_(grads, count / distributed.world_size())  # the world size (distributed.py)
            # The norm before clipping; max_norm inf multiplies by 1, so --max-grad-norm 0 still measures it.
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), a.max_grad_norm or math.inf))
            optim.set_lr(opt, schedule(step, total, warmup))
            if math.isfinite(loss_sum) and math.isfinite(grad_norm):
                scaler.step(opt) if scaler else opt.step()
                bad_in_row = 0
            else:  # skip the update: the gradients are thrown away below and the weights stay as they were
                skipped += 1
                # fp16 gradient overflow with a finite loss is the GradScaler's business: it lowers its scale.
                overflow_only = scaler is not None and math.isfinite(loss_sum)
                bad_in_row += 0 if overflow_only else 1
            if scaler:
                scaler.update()
            opt.zero_grad(set_to_none=True)
            step, train_loss = step + 1, loss_sum / count
            bar.update(1)
            examples_per_s, tokens_per_s = throughput()
            bar.set_postfix(loss=f"{train_loss:.4f}", lr=f"{opt.param_groups[0]['lr']:.2e}",
                            grad_norm=f"{grad_norm:.3g}", ex_s=f"{examples_per_s:.1f}", tok_s=f"{tokens_per_s:.0f}",
                            skipped=skipped)
            if bad_in_row >= a.max_bad_steps:
                bar.close()
                raise faults.diverged(a, bad_in_row, step, out)
            if a.eval_every and step % a.eval_every == 0:
                stop = evaluate_and_keep_best(epoch + (i + len(group)) / len(batches), train_loss)
            interrupted = stop_requested and step < total and not stop  # Ctrl-C: checkpoint, then exit 130
            if interrupted or (a.save_every and step % a.save_every == 0):  # after the evaluation: resuming skips it
                folder = checkpoint(epoch, i + len(group))
            if interrupted:
                bar.close()
                raise KeyboardInterrupt(f"checkpoint written; continue with --resume {folder} (and the same flags)")
            if stop or step >= total:
                break
        if not stop and not (a.eval_every and step % a.eval_every == 0):
            stop = evaluate_and_keep_best(epoch + 1.0, train_loss)
        if stop or step >= total:
            break
    bar.close()
    stop_request.armed = False
    if not main:
        return {}

    task, model = cli.load_trained(out, device)  # the best model, as saved
    results = {"valid": task.evaluate(model, valid_f, device=device), "best_step": best_step,
               "skipped_steps": skipped, "train_seconds": round(time.time() - start, 2)}
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

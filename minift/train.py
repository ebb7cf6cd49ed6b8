"""`python -m minift.train`: fine-tune a pretrained encoder on a labelled file, evaluate it, save the best model.

The loop, in the order it runs (Devlin et al., 2019, §4; Mosbach et al., 2021 for the small-data advice):

    1. read the data, map labels to ids, split off a validation set if none is given          `prepare`
    2. load the pretrained encoder and tokenizer, add the task's head, freeze what `--freeze` says (or train
       LoRA adapters, `--lora R`, minift/lora.py)                                                  `setup`
    3. AdamW with decoupled weight decay (`--optimizer adam | sgd`: minift/recipes.py, optim.py); the learning
       rate warms up, then follows `--schedule`
    4. for each epoch, for each update (`fit`; the update itself is minift/step.py):            `update`
       sum the loss over `--accumulate` micro-batches (forward + loss under `--precision`, see
       minift/precision.py), divide the gradient by the number of examples they hold (so N micro-batches equal
       one N-times larger batch), clip, set the scheduled learning rate, step. An update whose loss or gradient
       norm is NaN or infinite is skipped and counted (`skipped_steps`); `--max-bad-steps` of them in a row stop
       the run with advice (minift/faults.py). Under torchrun each process takes its shard of every batch and
       the count is summed over processes (minift/distributed.py), so W processes compute what one does
    5. every `--eval-every` steps and at the end of each epoch: validation metrics, loss, learning rate,
       gradient norm and throughput to `metrics.jsonl`; the best model so far (by the task's main metric, and
       only with finite weights) is written to `--out`; stop after `--patience` evaluations without
       improvement                                                                       `evaluate_and_keep_best`
       Every `--save-every` steps, and on Ctrl-C, a checkpoint to `--resume` from (minift/resume.py,
       faults.py); `LoopState` is what it holds of the loop                                    `checkpoint`
    6. reload the best model; `--calibrate` fits a temperature on the validation rows; write its validation and
       test scores to `results.json` and, with the run's flags and data, to minift.json and the model card `finish`

What a task does (read, featurize, loss, evaluate, save) is minift/tasks/: the loop knows nothing else of it.
With no arguments it fine-tunes all-MiniLM-L6-v2 on the small sentiment dataset bundled with minift.
"""
from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from minift import atomic, cli, distributed, faults, freeze, lora, optim, outdir, precision, recipes, resume
from minift.encoder import Encoder
from minift.splits import check_training_rows
from minift.step import Update, update
from minift.tasks import TASKS, Task
from minift.tokenizer import Tokenizer
from minift.train_checks import check_args, check_length
from minift.train_flags import parser, settings, settings_line


@dataclass
class LoopState:
    """Where the loop is: all a checkpoint keeps of it (trainer_state.json's "loop"), and all `--resume` restores."""

    step: int = 0  # updates done
    epoch: int = 0  # the epoch, and the micro-batch in it, where the next update starts
    position: int = 0
    train_loss: float = math.nan  # of the last update
    best: float = -math.inf  # the best validation score so far, and the step it was reached at
    best_step: int | None = None
    evals_since_best: int = 0  # for --patience
    skipped: int = 0  # updates skipped for a NaN / inf loss or gradient; `bad_in_row` of them in a row
    bad_in_row: int = 0
    grad_norm: float = math.nan  # of the last update, before clipping
    penalties: dict = field(default_factory=dict)  # --l2 / --l1 terms of the last update, beside train_loss

    def record(self, update: Update, epoch: int, position: int) -> None:
        """Count one update, after which the next starts `position` micro-batches into `epoch`."""
        self.step, self.epoch, self.position = self.step + 1, epoch, position
        self.train_loss, self.grad_norm, self.penalties = update.loss, update.grad_norm, update.penalties
        self.skipped += update.skipped
        self.bad_in_row = self.bad_in_row + update.bad if update.skipped else 0


@dataclass
class Run:
    """What `setup` builds once and the loop works with."""

    args: argparse.Namespace
    task: Task
    model: torch.nn.Module
    opt: torch.optim.Optimizer  # --optimizer: optim.AdamW, Adam or SGD
    scaler: torch.amp.GradScaler
    device: torch.device
    train_f: list
    valid_f: list
    test_f: list
    total: int  # updates in the whole run
    warmup: int  # of them, warming up
    epochs: int
    out: Path
    main: bool  # only the main process (rank 0) logs and writes files
    start: float


class Throughput:
    """Examples and tokens per second of training (over all processes) since the last `reset`."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.examples, self.tokens, self.since = 0, 0, time.time()

    def add(self, batches: list[dict]) -> None:
        for batch in batches:
            self.examples += len(batch["input_ids"])
            self.tokens += int(batch["attention_mask"].sum())

    def rates(self) -> tuple[float, float]:
        seconds = max(time.time() - self.since, 1e-9)
        return self.examples / seconds, self.tokens / seconds


def prepare(args, tokenizer):
    """Read the files, fit the labels, split, and tokenize: (task, train, valid, test features)."""
    task = TASKS[args.task].from_args(args, tokenizer)  # each task reads the flags it needs
    train = task.read(args.train, training=True)
    if not train:
        raise cli.DataError(f"{args.train}: no rows to train on")
    task.fit_labels(train)
    train, valid, test = recipes.split_rows(args, task, train)  # --valid, --test, --test-fraction, --folds
    labels = [e.label for e in train] if args.task == "classification" else None
    check_training_rows(str(args.train), len(train), len(valid), labels, None if args.valid else args.valid_fraction)
    if args.augment:  # the training rows only, after the split: no copy of a row reaches validation or test
        train = recipes.augmented(args, train)
    train_f = task.featurize(train, str(args.train))
    task.fit_loss(train_f)  # e.g. balanced class weights, from the training rows only
    return task, train_f, task.featurize(valid, str(args.valid or args.train)), task.featurize(test, str(args.test))


def setup(args) -> Run:
    """Steps 1 to 3: the device, the data, the model with the task's head, what is frozen, the optimizer."""
    check_args(args)
    device = distributed.local_device(cli.pick_device(args.device))
    precision.check(args.precision, device)
    cli.seed_everything(args.seed)
    tokenizer = Tokenizer.from_pretrained(args.model, args.revision)
    encoder = Encoder.from_pretrained(args.model, args.revision).set_dropout(args.dropout, args.attention_dropout)
    check_length(args, encoder.cfg)
    task, train_f, valid_f, test_f = prepare(args, tokenizer)
    task.record = recipes.record(args, train_f, valid_f, test_f)  # minift.json "training" and the model card
    encoder.gradient_checkpointing = args.gradient_checkpointing
    model = task.build_model(encoder).to(device)
    if args.lora:  # A and B are new parameters: before the optimizer
        try:
            lora.apply_lora(model, args.lora, args.lora_alpha, args.lora_dropout, args.lora_targets,
                            args.lora_embedding_rank, args.lora_embedding_alpha)
        except ValueError as e:
            raise cli.UsageError(f"--lora-targets {args.lora_targets}: {e}") from None
    # The optimizer holds every parameter (under LoRA: A, B and the head); frozen ones get no gradient, and the
    # optimizer skips them.
    opt = recipes.make_optimizer(args, model)
    try:
        (lora.freeze_adapters if args.lora else freeze.apply_freeze)(model, args.freeze)
    except ValueError as e:
        raise cli.UsageError(f"--freeze: {e}") from None
    if args.gradual_unfreeze:
        freeze.gradual_unfreeze(model, 0, args.freeze)
    main = distributed.is_main()
    steps_per_epoch = math.ceil(math.ceil(len(train_f) / args.batch_size) / args.accumulate)
    total = args.max_steps or args.epochs * steps_per_epoch
    warmup = int(args.warmup * total) if args.warmup < 1 else int(args.warmup)
    task.train_settings = {**settings(args), "total_steps": total, "warmup_steps": warmup}  # for minift.json
    if main:
        print(settings_line(args), file=sys.stderr)
        print(freeze.describe(model), file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    return Run(args, task, model, opt, precision.grad_scaler(args.precision, device), device, train_f, valid_f,
               test_f, total, warmup, math.ceil(total / steps_per_epoch), out, main, time.time())


def start_state(run: Run) -> LoopState:
    """A fresh loop, or with --resume the checkpoint's: its loop state, and its model, optimizer, loss scale and
    random generators as they were after its update."""
    log = run.out / "metrics.jsonl"  # one line per evaluation, appended by evaluate_and_keep_best
    if not run.args.resume:
        if run.main:
            log.write_text("", encoding="utf-8")
            shutil.rmtree(run.out / "checkpoints", ignore_errors=True)  # an earlier run's (--overwrite)
            (run.out / "results.json").unlink(missing_ok=True)  # and its results; this run's come at its end
        return LoopState()
    state = resume.load(run.args.resume, run.model, run.opt, run.scaler, LoopState)
    if state.step >= run.total and (run.out / "results.json").is_file():  # else killed before finishing: finish
        raise cli.UsageError(f"--resume {run.args.resume}: that checkpoint is at step {state.step}, already the "
                             f"run's last ({run.total}); raise --max-steps or --epochs to train further")
    if run.main:  # drop the lines the interrupted run wrote after the checkpoint: an --eval-every evaluation at
        evaluated = run.args.eval_every and state.step % run.args.eval_every == 0  # its step came before it
        resume.forget_log_after(log, state.step if evaluated else state.step - 1)
    return state


def evaluate_and_keep_best(run: Run, state: LoopState, epoch: float, throughput: Throughput) -> bool:
    """Log validation metrics; save the model if it is the best so far; True when patience has run out.
    Under torchrun rank 0 alone evaluates, on every validation row, and tells the others whether to stop."""
    if run.main:
        examples_per_s, tokens_per_s = throughput.rates()
        run.task.tune(run.model, run.valid_f, device=run.device)  # e.g. --tune-thresholds, saved with the model
        scores = run.task.evaluate(run.model, run.valid_f, device=run.device)
        with (run.out / "metrics.jsonl").open("a", encoding="utf-8") as log:
            row = {"step": state.step, "epoch": round(epoch, 4), "train_loss": state.train_loss, **state.penalties,
                   "grad_norm": state.grad_norm, "lr": run.opt.param_groups[0]["lr"],
                   "examples_per_s": round(examples_per_s, 1), "tokens_per_s": round(tokens_per_s, 1),
                   "skipped_steps": state.skipped, "elapsed_s": round(time.time() - run.start, 2), "valid": scores}
            log.write(json.dumps(row) + "\n")
        score = scores[run.task.main_metric]
        finite = all(bool(torch.isfinite(p).all()) for p in run.model.parameters())  # never save a NaN model
        if finite and (state.best_step is None or score > state.best):
            state.best, state.best_step, state.evals_since_best = score, state.step, 0
            run.task.save(run.model, run.out, adapter_of=run.args.model if run.args.save_adapter else None)
        else:
            state.evals_since_best += 1
    run.model.train()
    throughput.reset()  # evaluation time is not training throughput
    patience_ran_out = run.main and bool(run.args.patience) and state.evals_since_best >= run.args.patience
    return distributed.all_reduce_sum(patience_ran_out)[0] > 0


def checkpoint(run: Run, state: LoopState) -> Path:
    """Write OUT/checkpoints/step-N: the model, optimizer and random state after this update, and `state`."""
    folder = run.out / "checkpoints" / f"step-{state.step}"
    if run.main:
        resume.save(folder, run.model, run.opt, run.scaler, asdict(state), run.args.keep_checkpoints)
    return folder


def epoch_batches(run: Run, epoch: int) -> tuple[torch.nn.Module, list[dict]]:
    """An epoch's start: unfreeze one more layer (--gradual-unfreeze), wrap the model for DDP (after unfreezing:
    DDP syncs what requires a gradient when built), and cut the epoch's batches (a function of seed and epoch)."""
    args = run.args
    if args.gradual_unfreeze:
        freeze.gradual_unfreeze(run.model, epoch, args.freeze)
    ddp = distributed.wrap(run.model, run.device)
    run.model.train()
    batches = list(run.task.batches(run.train_f, args.batch_size, args.seed, epoch, shuffle=True, bucket=args.bucket))
    return ddp, recipes.mask_batches(args, run.task.tokenizer, batches, epoch)  # --mask-tokens


def show(bar, state: LoopState, run: Run, throughput: Throughput) -> None:
    """One more update on the progress bar, with the loss, learning rate, gradient norm and throughput."""
    examples_per_s, tokens_per_s = throughput.rates()
    bar.update(1)
    bar.set_postfix(loss=f"{state.train_loss:.4f}", lr=f"{run.opt.param_groups[0]['lr']:.2e}",
                    grad_norm=f"{state.grad_norm:.3g}", ex_s=f"{examples_per_s:.1f}", tok_s=f"{tokens_per_s:.0f}",
                    skipped=state.skipped)


def train(args) -> dict:
    """Run `python -m minift.train` with parsed flags; return the best model's results (rank 0 under torchrun).

    Around the loop: the torchrun process group (if any), Ctrl-C as a request to checkpoint and stop,
    out-of-memory errors and a full disk as advice, and the lock on --out (minift/distributed.py, faults.py,
    outdir.py)."""
    with distributed.process_group(), faults.StopRequest() as stop_request, faults.out_of_memory_advice(args), \
            faults.disk_full_advice(args), outdir.claim(args, distributed.is_main()):
        if args.folds:  # k-fold cross-validation: k runs into OUT/fold-k, their summary in OUT/results.json
            return recipes.cross_validate(args, lambda fold_args: fit(fold_args, stop_request))
        return fit(args, stop_request)


def fit(args, stop_request) -> dict:
    """The run itself, steps 1 to 6 above; `stop_request.requested` turns true when Ctrl-C arrives."""
    run = setup(args)
    state = start_state(run)
    first_epoch, first_position, throughput = state.epoch, state.position, Throughput()
    stop, stop_request.armed = False, True  # from here on, Ctrl-C means: checkpoint after this update
    with tqdm(total=run.total, initial=state.step, disable=args.quiet or not run.main, desc="train",
              dynamic_ncols=True) as bar:
        for epoch in range(first_epoch, run.epochs):
            ddp, batches = epoch_batches(run, epoch)
            for i in range(first_position if epoch == first_epoch else 0, len(batches), args.accumulate):
                if state.step >= run.total:  # resumed from the last update's checkpoint: only the end is left
                    break
                group = batches[i:i + args.accumulate]
                throughput.add(group)
                done = update(ddp, run.opt, run.scaler, group, run.task.loss, run.device,
                              optim.SCHEDULES[args.schedule](state.step, run.total, run.warmup),
                              args.max_grad_norm, args.precision, lambda: stop_request.requested,
                              recipes.penalty(args))
                state.record(done, epoch, i + len(group))
                show(bar, state, run, throughput)
                if state.bad_in_row >= args.max_bad_steps:
                    raise faults.diverged(args, state.bad_in_row, state.step, run.out)
                if args.eval_every and state.step % args.eval_every == 0:
                    stop = evaluate_and_keep_best(run, state, epoch + (i + len(group)) / len(batches), throughput)
                interrupted = done.stop_requested and state.step < run.total and not stop  # Ctrl-C: exit 130
                if interrupted or (args.save_every and state.step % args.save_every == 0):  # after evaluating:
                    folder = checkpoint(run, state)  # resuming skips the evaluation
                if interrupted:
                    raise KeyboardInterrupt(f"checkpoint written to {folder}; continue with --resume {run.out} (and "
                                            "the same flags)")
                if stop or state.step >= run.total:
                    break
            if not stop and not (args.eval_every and state.step % args.eval_every == 0):
                stop = evaluate_and_keep_best(run, state, epoch + 1.0, throughput)
            if stop or state.step >= run.total:
                break
    stop_request.armed = False
    return finish(run, state)


def finish(run: Run, state: LoopState) -> dict:
    """Step 6: reload the best model as saved, score it on the validation (and test) rows, write results.json."""
    if not run.main:
        return {}
    task, model = cli.load_trained(run.out, run.device)
    calibration = recipes.calibrate(task, model, run.valid_f, run.device) if run.args.calibrate else None
    results = {"valid": task.evaluate(model, run.valid_f, device=run.device), "best_step": state.best_step,
               "skipped_steps": state.skipped, "train_seconds": round(time.time() - run.start, 2)}
    if run.test_f:
        results["test"] = task.evaluate(model, run.test_f, device=run.device)
    if calibration:
        results["calibration"] = calibration  # the temperature, and validation ECE / NLL before and after
    task.record["scores"] = {split: results[split] for split in ("valid", "test") if split in results}
    task.write_meta(run.out)  # minift.json (with the temperature) and the model card, now with the scores
    atomic.write_json(run.out / "results.json", results)
    print(f"validation {task.main_metric}: {results['valid'][task.main_metric]:.4f} "
          f"(best at step {state.best_step}); model saved to {run.out}")
    return results


def main(argv=None) -> None:
    train(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="minift.train"))

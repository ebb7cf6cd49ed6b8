"""What the training loop does when something goes wrong: Ctrl-C, a GPU out of memory, updates that diverge.

    Ctrl-C (SIGINT) or SIGTERM   the first one only raises a flag; the loop finishes the update it is in (so the
                                 weights, optimizer and random state all belong to one step), writes a checkpoint
                                 OUT/checkpoints/step-N as --save-every would, and exits with code 130 and the
                                 `--resume` to continue with. A second one interrupts at once (no checkpoint).
    CUDA out of memory           a user error (exit 2) that names the knobs: --batch-size, --accumulate (which
                                 keeps the examples per update), --max-length, --precision bf16
    a full disk                  a save the disk refuses keeps nothing of itself (minift/atomic.py): a user error
                                 that says so and how to go on (--resume OUT, with --save-every)
    kill -9, a power cut         nothing to handle: every save is atomic, and `--resume OUT` continues from the
                                 latest complete checkpoint (tests/test_crash.py)
    NaN / inf updates            skipped and counted by the loop; `diverged` is the error after K in a row

Handling the signal at the step boundary, not where it lands, is what makes the checkpoint exact: a
KeyboardInterrupt raised inside `opt.step()` would leave half the parameters updated. SIGTERM is handled too
because schedulers (and torchrun, when its own Ctrl-C arrives) stop a job with it.
"""
from __future__ import annotations

import contextlib
import errno
import signal
import sys
import threading

import torch

from minift import atomic, cli


class StopRequest:
    """While active and `armed` (the loop arms it around its updates), SIGINT and SIGTERM set `requested` instead
    of killing the process; a second one, or one while disarmed (reading data, the final evaluation), raises
    KeyboardInterrupt at once. Outside the main thread (where Python cannot catch signals) it stays inert."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested, self.armed, self.previous = False, False, {}

    def _handle(self, signum, frame):
        if self.requested or not self.armed:
            raise KeyboardInterrupt
        self.requested = True
        print(f"\n{signal.Signals(signum).name}: stopping after this update to write a checkpoint "
              "(press Ctrl-C again to quit without one)", file=sys.stderr)

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def out_of_memory_advice(args):
    """Turn `torch.OutOfMemoryError` (CUDA's, in training or evaluation) into a user error naming the knobs."""
    try:
        yield
    except torch.OutOfMemoryError as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else "out of memory"
        first_line = ". ".join(first_line.split(". ")[:2])  # "CUDA out of memory. Tried to allocate 20.00 MiB"
        half, twice = max(args.batch_size // 2, 1), 2 * args.accumulate
        bf16 = f", or --precision bf16 (now {args.precision})" if args.precision == "fp32" else ""
        raise cli.UsageError(
            f"the device ran out of memory ({first_line}). Use less: a smaller --batch-size (now {args.batch_size}) "
            f"with a larger --accumulate to keep the examples per update (--batch-size {half} --accumulate "
            f"{twice} for {half * twice}), a shorter --max-length (now {args.max_length}){bf16}") from None


@contextlib.contextmanager
def disk_full_advice(args):
    """Turn a save the disk refused (atomic.SaveError), or a full disk under any other write, into a user error
    that says what is intact and how to go on."""
    try:
        yield
    except OSError as e:
        if not isinstance(e, atomic.SaveError) and e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        again = f"continue from the latest checkpoint with --resume {args.out}" if args.save_every or args.resume \
            else "run again"
        raise cli.UsageError(f"{e}. Free some space there (or give an --out on another disk) and {again}") from None


def diverged(args, bad_in_row: int, step: int, out) -> cli.TrainingDiverged:
    """The error that stops a run after `--max-bad-steps` NaN / inf updates in a row, with what to try."""
    return cli.TrainingDiverged(
        f"{bad_in_row} updates in a row (up to step {step}) had a NaN or infinite loss or gradient norm, so "
        f"training stopped; the best model so far is in {out}. Try a lower --lr (now {args.lr}), gradient clipping "
        f"(--max-grad-norm 1.0; now {args.max_grad_norm}), or --precision fp32 (now {args.precision}); --max-bad-steps "
        f"(now {args.max_bad_steps}) sets how many to tolerate")

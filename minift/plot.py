"""`python -m minift.plot DIR`: draw a run's training loss, validation metric and learning rate against the step.

Reads DIR/metrics.jsonl, one line per evaluation written by `python -m minift.train`:

    {"step": 40, "epoch": 1.0, "train_loss": 0.41, "lr": 4.1e-05, "grad_norm": 2.3, ..., "valid": {"accuracy": 0.88}}

and writes DIR/curves.png (or `--out FILE`; the suffix picks the format): three panels over a shared step axis,
the training loss (of the update just before each evaluation), the validation metric (the task's main metric
from DIR/minift.json, or `--metric`) and the learning rate. It can be run on a folder that is still training.
matplotlib is an optional dependency: `pip install "minift[plot]"`.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from minift import atomic, cli
from minift.tasks import TASKS


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m minift.plot", description=__doc__.splitlines()[0])
    p.add_argument("dir", help="the --out folder of `python -m minift.train` (holds metrics.jsonl)")
    p.add_argument("--out", help="image file to write (default: DIR/curves.png)")
    p.add_argument("--metric", help="validation metric to draw (default: the task's main metric)")
    return p


def read_log(folder: Path) -> list[dict]:
    """The rows of FOLDER/metrics.jsonl; a last line without its newline (still being written) is left out."""
    path = folder / "metrics.jsonl"
    if not path.is_file():
        raise cli.UsageError(f"{path}: no such file; give the --out folder of `python -m minift.train`, which "
                             "writes metrics.jsonl at its first evaluation")
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise cli.DataError(f"{path}, line {number}: not JSON ({e.msg})") from None
    if not rows:
        raise cli.UsageError(f"{path}: no evaluations yet; plot again after the run's first evaluation")
    return rows


def main_metric(folder: Path, rows: list[dict]) -> str:
    """The task's main metric (minift.json names the task), else the first metric of the log."""
    meta = folder / "minift.json"
    task = json.loads(meta.read_text(encoding="utf-8"))["task"] if meta.is_file() else None
    name = TASKS[task].main_metric_of(task) if task in TASKS else None
    return name if name in rows[0]["valid"] else next(iter(rows[0]["valid"]))


def main(argv=None) -> None:
    args = parser().parse_args(argv)
    try:
        import matplotlib
    except ImportError:
        raise cli.UsageError('matplotlib is not installed: pip install "minift[plot]" (or pip install '
                             "matplotlib)") from None
    matplotlib.use("Agg")  # files only: no window, no display needed
    from matplotlib import pyplot as plt

    folder = Path(args.dir)
    rows = read_log(folder)
    metric = args.metric or main_metric(folder, rows)
    if metric not in rows[0]["valid"]:
        raise cli.UsageError(f"--metric {metric}: the log has {', '.join(rows[0]['valid'])}")
    steps = [r["step"] for r in rows]
    fig, (loss, score, lr) = plt.subplots(3, 1, sharex=True, figsize=(7, 8), constrained_layout=True)
    loss.plot(steps, [r["train_loss"] for r in rows], marker=".")
    loss.set_ylabel("training loss")
    score.plot(steps, [r["valid"].get(metric, float("nan")) for r in rows], marker=".", color="tab:green")
    score.set_ylabel(f"validation {metric}")
    lr.plot(steps, [r["lr"] for r in rows], marker=".", color="tab:gray")
    lr.set_ylabel("learning rate")
    lr.set_xlabel("step")
    fig.suptitle(str(folder))
    out = Path(args.out) if args.out else folder / "curves.png"
    atomic.write_file(out, lambda tmp: fig.savefig(tmp, format=out.suffix.lstrip(".") or "png", dpi=100))
    plt.close(fig)
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(cli.run(main, prog="minift.plot"))

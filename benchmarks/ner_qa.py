"""minift on real token and span tasks: WNUT-17 named entities and SQuAD v1.1 question answering.

Both are trained from `sentence-transformers/all-MiniLM-L6-v2` through minift's CLI entry point
(`minift.train.train(parser().parse_args([...]))`), with a validation split of the training rows for choosing the
best epoch, then scored once, with that model, on rows it never saw (`--test`):

    wnut17  train wnut17train.conll (3,394 sentences; 10% held out for validation), score emerging.dev.conll
            (1,009 sentences): entity-level micro F1, target >= 0.40
    squad   train on articles 0-29 of squad-v1.1-dev-articles-00-37.json (7,010 questions; 5% held out for
            validation), score articles 30-37 (1,572 questions): SQuAD F1 (0-100), target >= 65

    HF_HUB_CACHE=../shared/hf-cache HF_HUB_OFFLINE=1 python benchmarks/ner_qa.py \
        [--tasks wnut17,squad] [--rows 40] [--epochs wnut17=5] [--lr squad=1e-4] [--batch-size 16] [--threads 2]
        [--device cuda] [--out benchmarks/results/ner_qa.json]

`--rows N` caps the training rows (sentences, questions) at N and the scored rows at max(N // 4, 10): a smoke
run; the subsets are written to a temporary folder, never into the repository. It prints a table (task, rows,
epochs, lr, scores, target met, wall time) and merges each finished task into the `--out` JSON at once.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
if (ROOT.parent / "shared" / "hf-cache").is_dir():
    os.environ.setdefault("HF_HUB_CACHE", str(ROOT.parent / "shared" / "hf-cache"))
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from minift import train  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
SQUAD = "squad/squad-v1.1-dev-articles-00-37.json"
TASKS = {
    "wnut17": dict(task="ner", epochs=5, lr=1e-4, max_length=128, valid_fraction=0.1, metric="f1", target=0.40),
    "squad": dict(task="qa", epochs=3, lr=1e-4, max_length=384, valid_fraction=0.05, metric="f1", target=65.0),
}


def conll_head(src: Path, dst: Path, n: int) -> str:
    """The first n sentences of a CoNLL file, written to dst."""
    text = src.read_text(encoding="utf-8").replace("\r\n", "\n")
    blocks = [b for b in re.split(r"\n[ \t]*\n", text) if b.strip()]  # WNUT's blank lines hold a tab
    dst.write_text("\n\n".join(blocks[:n]) + "\n", encoding="utf-8")
    return str(dst)


def squad_head(src: Path, dst: Path, articles: range, n: int) -> str:
    """The first n questions of the given articles of a SQuAD file, written to dst as a SQuAD file."""
    data, left, out = json.loads(src.read_text(encoding="utf-8"))["data"], n, []
    for article in (data[i] for i in articles):
        paragraphs = []
        for p in article["paragraphs"]:
            qas = p["qas"][:max(left, 0)]
            left -= len(qas)
            if qas:
                paragraphs.append({**p, "qas": qas})
        if paragraphs:
            out.append({**article, "paragraphs": paragraphs})
    dst.write_text(json.dumps({"version": "1.1", "data": out}), encoding="utf-8")
    return str(dst)


def files(name: str, rows: int | None, tmp: Path) -> tuple[list, list]:
    """(--train/--articles arguments, --test/--valid-articles arguments) for the full data or a --rows subset."""
    if name == "wnut17":
        tr, te = DATA / "wnut17" / "wnut17train.conll", DATA / "wnut17" / "emerging.dev.conll"
        if rows:
            tr, te = conll_head(tr, tmp / "train.conll", rows), conll_head(te, tmp / "dev.conll", max(rows // 4, 10))
        return ["--train", str(tr)], ["--test", str(te)]
    src = DATA / SQUAD
    if rows:
        return (["--train", squad_head(src, tmp / "train.json", range(0, 30), rows)],
                ["--test", squad_head(src, tmp / "test.json", range(30, 38), max(rows // 4, 10))])
    return ["--train", str(src), "--articles", "0-29"], ["--test", str(src), "--valid-articles", "30-37"]


def per_task(spec: str | None, cast) -> dict:
    """"squad=1e-4,wnut17=3e-5" or "2" (every task) -> {task: value}."""
    if not spec:
        return {}
    if "=" not in spec:
        return {name: cast(spec) for name in TASKS}
    return {k: cast(v) for k, v in (part.split("=") for part in spec.split(","))}


def run(name: str, a, tmp: Path) -> dict:
    cfg = TASKS[name]
    epochs, lr = per_task(a.epochs, int).get(name, cfg["epochs"]), per_task(a.lr, float).get(name, cfg["lr"])
    train_args, test_args = files(name, a.rows, tmp)
    argv = ["--task", cfg["task"], *train_args, *test_args, "--model", MODEL, "--out", str(tmp / f"run-{name}"),
            "--epochs", str(epochs), "--lr", str(lr), "--batch-size", str(a.batch_size), "--max-length",
            str(cfg["max_length"]), "--valid-fraction", str(cfg["valid_fraction"]), "--seed", "42",
            "--device", a.device, "--quiet"]
    start = time.time()
    results = train.train(train.parser().parse_args(argv))
    wall = round(time.time() - start, 1)
    score = results["test"][cfg["metric"]]
    return {"argv": argv, "epochs": epochs, "lr": lr, "rows": a.rows or "all", "valid": results["valid"],
            "test": results["test"], "metric": cfg["metric"], "score": score, "target": cfg["target"],
            "target_met": score >= cfg["target"], "wall_s": wall, "threads": torch.get_num_threads(),
            "device": a.device if a.device == "cpu" else torch.cuda.get_device_name()}


def merge(out: Path, name: str, row: dict) -> None:
    """Add one task's result to the JSON file (created if missing), written whole then renamed."""
    old = json.loads(out.read_text(encoding="utf-8")) if out.is_file() else {}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps({**old, name: row}, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="wnut17,squad")
    p.add_argument("--rows", type=int, help="smoke run: cap the training rows (scored rows: max(N // 4, 10))")
    p.add_argument("--epochs", help="e.g. 2, or wnut17=5,squad=2")
    p.add_argument("--lr", help="e.g. 1e-4, or wnut17=5e-5")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "ner_qa.json"))
    a = p.parse_args(argv)
    if not DATA.is_dir():
        sys.exit(f"no data at {DATA}: this benchmark reads ../shared/data (see its README.md)")
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"{'task':8} {'rows':>6} {'epochs':>6} {'lr':>8} {'metric':>7} {'score':>8} {'target':>7} {'met':>4} "
          f"{'wall s':>8}")
    for name in a.tasks.split(","):
        if name not in TASKS:
            sys.exit(f"--tasks: unknown task {name!r}; expected some of {', '.join(TASKS)}")
        with tempfile.TemporaryDirectory() as tmp:
            row = run(name, a, Path(tmp))
        merge(Path(a.out), name, row)
        print(f"{name:8} {str(row['rows']):>6} {row['epochs']:>6} {row['lr']:>8.0e} {row['metric']:>7} "
              f"{row['score']:>8.3f} {row['target']:>7} {'yes' if row['target_met'] else 'no':>4} "
              f"{row['wall_s']:>8}", flush=True)


if __name__ == "__main__":
    main()

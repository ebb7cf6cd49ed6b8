"""The recipes of issue 15 measured on real data with all-MiniLM-L6-v2: imbalance, regularisation, multi-label.

    imbalance       SST-2 rows made 1:9 (negative : positive) in training, validation and held-out test alike;
                    plain vs --class-weights balanced vs --oversample vs --undersample vs --loss focal; macro-F1
                    and the minority (negative) class's recall on the held-out rows, several seeds, mean ± s.e.
    regularisation  1,000 SST-2 rows; none vs --dropout 0.2 vs --l2 vs --l1 vs --augment; validation accuracy
                    and the train - validation accuracy gap (both of the best model)
    goemotions      10,000 GoEmotions rows (28 labels), --tune-thresholds (per-label thresholds on validation),
                    scored on held-out rows: micro- and macro-F1, beside the same run at the 0.5 threshold

The rows come from ../shared/data (see its README), are drawn with a fixed seed and written to a temporary folder
(never into the repository); each run is `minift.train` through its CLI entry point, then the saved model is
scored on the held-out rows with minift.metrics. Results are merged into `--out` after every run.

    export HF_HUB_CACHE=../shared/hf-cache HF_HUB_OFFLINE=1
    python benchmarks/recipes.py imbalance --rows 4000 --seeds 1,2,3          # the issue's full tables
    python benchmarks/recipes.py regularisation --rows 1000 --epochs 5
    python benchmarks/recipes.py goemotions --rows 10000 --epochs 3 --lr 1e-4
    python benchmarks/recipes.py imbalance --rows 400 --eval-rows 400 --seeds 1 --max-length 48   # minutes

    python benchmarks/recipes.py imbalance --source bundled --rows 110 --eval-rows 50 --epochs 5    # the bundled set

Options: --source (sst2 or bundled), --rows (training rows), --eval-rows (validation and held-out rows each), --epochs, --lr, --seeds,
--configs (a subset of the experiment's), --max-length, --batch-size, --threads, --device, --out.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"

EXPERIMENTS = {  # name -> {config: extra flags}
    "imbalance": {"plain": [], "class_weights": ["--class-weights", "balanced"], "oversample": ["--oversample"],
                  "undersample": ["--undersample"], "focal": ["--loss", "focal", "--focal-gamma", "2"]},
    "regularisation": {"none": [], "dropout_0.2": ["--dropout", "0.2"], "l2_1e-3": ["--l2", "1e-3"],
                       "l1_1e-5": ["--l1", "1e-5"], "augment": ["--augment", "--augment-p", "0.1", "--augment-n", "1"]},
    "goemotions": {"tuned": ["--tune-thresholds"], "threshold_0.5": ["--no-tune-thresholds"]},
}


def read_sst2():
    with open(DATA / "sst2" / "train.tsv", encoding="utf-8", newline="") as f:
        return [(r["sentence"], r["label"]) for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]


def read_bundled():
    """minift's own 416 reviews (minift/bundled/sentiment.csv), labels as SST-2's: negative "0", positive "1"."""
    with open(ROOT / "minift" / "bundled" / "sentiment.csv", encoding="utf-8", newline="") as f:
        return [(r["text"], {"negative": "0", "positive": "1"}[r["label"]]) for r in csv.DictReader(f)]


def read_goemotions():
    names = (DATA / "goemotions" / "emotions.txt").read_text(encoding="utf-8").split()
    with open(DATA / "goemotions" / "train.tsv", encoding="utf-8", newline="") as f:
        return [(" ".join(r[0].split()), ",".join(names[int(i)] for i in r[1].split(",")))
                for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]


def imbalanced(rows, n, rng, minority="0", share=0.1):
    """n rows, a share of them of the minority label, drawn without replacement (and removed from `rows`)."""
    by = {lab: [i for i, (_, y) in enumerate(rows) if y == lab] for lab in {y for _, y in rows}}
    k = int(round(share * n))
    picked = list(rng.choice(by[minority], k, replace=False))
    picked += list(rng.choice([i for lab, idx in by.items() if lab != minority for i in idx], n - k, replace=False))
    return [rows[i] for i in rng.permutation(picked)]


def splits(experiment, args, rng):
    """(train, valid, test) rows for an experiment, disjoint."""
    rows = read_goemotions() if experiment == "goemotions" else read_bundled() if args.source == "bundled" else read_sst2()
    order = rng.permutation(len(rows))
    rows = [rows[i] for i in order]
    if experiment == "imbalance":
        pool_train, pool_eval = rows[:len(rows) // 2], rows[len(rows) // 2:]  # disjoint pools
        held = imbalanced(pool_eval, 2 * args.eval_rows, rng)
        return imbalanced(pool_train, args.rows, rng), held[:args.eval_rows], held[args.eval_rows:]
    n, m = args.rows, args.eval_rows
    return rows[:n], rows[n:n + m], rows[n + m:n + 2 * m]


def write(path: Path, rows) -> str:
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return str(path)


def scores(out: Path, data: str, task_kind: str) -> dict:
    """The saved model's scores on a labelled file: classification macro-F1, accuracy and the minority recall;
    multilabel micro / macro F1 at the model's thresholds."""
    from minift.cli import load_trained
    from minift.metrics import accuracy, f1, multilabel_f1, recall

    task, model = load_trained(out, torch.device(args_device))
    features = task.featurize(task.read(data), data)
    logits = task.logits(model, features, device=args_device)
    y = torch.stack([f["labels"] for f in features]).numpy()
    if task_kind == "multilabel":
        pred = task.decide(logits).numpy()
        return {"f1_micro": multilabel_f1(y, pred, "micro", zero_division=0.0),
                "f1_macro": multilabel_f1(y, pred, "macro", zero_division=0.0)}
    pred = logits.argmax(-1).numpy()
    minority = task.labels.names.index("0")
    return {"accuracy": accuracy(y, pred), "f1_macro": f1(y, pred, average="macro", zero_division=0.0),
            "minority_recall": float(recall(y, pred, average=None, labels=[minority], zero_division=0.0)[0])}


def run_one(experiment, config, flags, files, args, seed, workdir: Path) -> dict:
    from minift.train import parser, train

    kind = "multilabel" if experiment == "goemotions" else "classification"
    out = workdir / f"{experiment}-{config}-{seed}"
    argv = ["--task", kind, "--train", files["train"], "--valid", files["valid"], "--model", MODEL, "--out", str(out),
            "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
            "--max-length", str(args.max_length), "--seed", str(seed), "--device", args.device, "--quiet", *flags]
    start = time.perf_counter()
    results = train(parser().parse_args(argv))
    row = {"experiment": experiment, "config": config, "seed": seed, "argv": argv,
           "wall_s": round(time.perf_counter() - start, 1), "valid": results["valid"],
           "test": scores(out, files["test"], kind)}
    if experiment == "regularisation":
        row["train"] = scores(out, files["train"], kind)
        row["gap"] = row["train"]["accuracy"] - results["valid"]["accuracy"]
    return row


def summary(rows, metrics) -> list[str]:
    lines = []
    for config in dict.fromkeys(r["config"] for r in rows):
        got = [r for r in rows if r["config"] == config]
        cells = []
        for name, get in metrics:
            v = np.array([get(r) for r in got])
            se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
            cells.append(f"{name} {v.mean():.4f} ± {se:.4f}" if len(v) > 1 else f"{name} {v.mean():.4f}")
        lines.append(f"{config:>15}  n={len(got)}  " + "  ".join(cells))
    return lines


METRICS = {"imbalance": [("macro-F1", lambda r: r["test"]["f1_macro"]),
                         ("minority recall", lambda r: r["test"]["minority_recall"])],
           "regularisation": [("valid acc", lambda r: r["valid"]["accuracy"]), ("gap", lambda r: r["gap"])],
           "goemotions": [("micro-F1", lambda r: r["test"]["f1_micro"]), ("macro-F1", lambda r: r["test"]["f1_macro"])]}
DEFAULTS = {"imbalance": dict(rows=4000, eval_rows=1000, epochs=1, lr=5e-5),
            "regularisation": dict(rows=1000, eval_rows=1000, epochs=5, lr=5e-5),
            "goemotions": dict(rows=10000, eval_rows=2000, epochs=3, lr=1e-4)}


def main():
    global args_device
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("experiment", choices=sorted(EXPERIMENTS))
    p.add_argument("--source", choices=["sst2", "bundled"], default="sst2", help="imbalance, regularisation: SST-2 "
                   "rows, or minift's bundled 416 reviews (then e.g. --rows 110 --eval-rows 100 for imbalance)")
    p.add_argument("--rows", type=int)
    p.add_argument("--eval-rows", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--configs", help="comma-separated subset of the experiment's configurations")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "recipes.json"))
    args = p.parse_args()
    for k, v in DEFAULTS[args.experiment].items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.threads:
        torch.set_num_threads(args.threads)
    args_device = args.device
    configs = EXPERIMENTS[args.experiment]
    chosen = args.configs.split(",") if args.configs else list(configs)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        parts = splits(args.experiment, args, np.random.default_rng(0))  # the same rows for every config and seed
        files = {name: write(tmp / f"{name}.csv", part) for name, part in zip(("train", "valid", "test"), parts)}
        print(f"{args.experiment}: {', '.join(f'{k} {len(v)} rows' for k, v in zip(files, parts))}", flush=True)
        for seed in [int(s) for s in args.seeds.split(",")]:
            for config in chosen:
                row = run_one(args.experiment, config, configs[config], files, args, seed, tmp)
                row["settings"] = {k: getattr(args, k) for k in ("source", "rows", "eval_rows", "epochs", "lr", "max_length",
                                                                 "batch_size", "device")}
                rows.append(row)
                print(json.dumps({k: row[k] for k in ("config", "seed", "test", "wall_s")}), flush=True)
                out = Path(args.out)
                saved = json.loads(out.read_text()) if out.is_file() else []
                out.write_text(json.dumps(saved + [row], indent=1) + "\n")
    print("\n".join(summary(rows, METRICS[args.experiment])))


args_device = "cpu"

if __name__ == "__main__":
    main()

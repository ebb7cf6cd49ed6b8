"""minift vs `transformers.Trainer` on real sentence tasks: same model, rows, epochs, batch size and max length.

For each dataset the rows are read from ../shared/data (see its README.md), split with a fixed seed, and written
to a temporary folder (never into the repository). Then the same split is trained twice, one system after the
other in this process: minift through its CLI entry point (`minift.train.train(parser().parse_args([...]))`)
and `transformers.Trainer` with `AutoModelForSequenceClassification`. Each system has its own learning rate
(`--lr-minift`, `--lr-trainer`). Both are scored on the held-out rows with the final model (minift also keeps
the best epoch; its score is recorded as `best_valid` in the JSON, but the table shows the final model, as for
Trainer, since the held-out rows are the only evaluation rows). Trainer's metrics are computed here with
sklearn / scipy from its logits. Wall time covers loading the model, tokenizing, training and scoring.

    HF_HUB_CACHE=../shared/hf-cache HF_HUB_OFFLINE=1 python benchmarks/sentence_tasks.py \
        [--datasets sst2,trec,stsb,goemotions] [--systems minift,trainer,probe] [--rows 200 | --rows stsb=2000/749]
        [--epochs 1 | --epochs trec=2] [--lr-minift sst2=1e-4] [--lr-trainer sst2=1e-4] [--lr-probe 2e-3]
        [--seeds 42,1,2] [--threads 1] [--device cuda] [--out benchmarks/results/sentence_tasks.json]

Datasets (default splits and epochs; `--rows N` caps training rows at N and held-out rows at max(N // 4, 50)):
    sst2        SST-2 sentiment, 20,000 train / 2,000 held out, 1 epoch, accuracy; plus a minift linear probe
                (`--freeze encoder`) at its own learning rate (`--lr-probe`)
    trec        TREC coarse question type (6 classes), 4,952 / 500, 3 epochs, accuracy
    stsb        STS-B similarity (regression, 0-5), 5,000 / 749, 2 epochs, Pearson
    goemotions  GoEmotions (multilabel, 28 labels), 10,000 / 2,000, 2 epochs, micro-F1

Results are merged into the `--out` JSON after every run, so partial results survive an interrupted run.
"""
from __future__ import annotations

import argparse
import csv
import fcntl
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BATCH, MAX_LENGTH, SEED = 32, 128, 42

# name: task, epochs, default train / held-out rows, learning rates (minift, Trainer), main metric
DATASETS = {
    "sst2": dict(task="classification", epochs=1, n_train=20000, n_eval=2000, lr_minift=1e-4, lr_trainer=1e-4,
                 lr_probe=2e-3, metric="accuracy"),
    "trec": dict(task="classification", epochs=3, n_train=4952, n_eval=500, lr_minift=1e-4, lr_trainer=1e-4,
                 metric="accuracy"),
    "stsb": dict(task="regression", epochs=2, n_train=5000, n_eval=749, lr_minift=1e-4, lr_trainer=1e-4,
                 metric="pearson"),
    "goemotions": dict(task="multilabel", epochs=2, n_train=10000, n_eval=2000, lr_minift=1e-4, lr_trainer=1e-4,
                       metric="f1_micro"),
}
ORDER = ["sst2", "trec", "stsb", "goemotions"]


# ---- reading the raw files: rows of (text, text_pair or None, label) ----
def _clean(s: str) -> str:
    """Tabs and line breaks would break the unquoted TSV files written for minift."""
    return " ".join(s.replace("\t", " ").split())


def read_sst2():
    with open(DATA / "sst2" / "train.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(_clean(r["sentence"]), None, r["label"]) for r in rows]


def read_stsb():
    with open(DATA / "stsb" / "train.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [(_clean(r["sentence1"]), _clean(r["sentence2"]), r["score"]) for r in rows]


def read_trec():
    rows = []
    with open(DATA / "trec" / "train_5500.label", encoding="latin-1") as f:
        for line in f:
            if line.strip():
                label, text = line.rstrip("\n").split(" ", 1)
                rows.append((_clean(text), None, label.split(":")[0]))
    return rows


def read_goemotions():
    with open(DATA / "goemotions" / "train.tsv", encoding="utf-8", newline="") as f:
        return [(_clean(r[0]), None, r[1]) for r in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]


READERS = {"sst2": read_sst2, "stsb": read_stsb, "trec": read_trec, "goemotions": read_goemotions}


def split(rows, n_train, n_eval, seed=SEED):
    """A seeded permutation: the first n_train rows train, the next n_eval are held out (disjoint)."""
    order = np.random.default_rng(seed).permutation(len(rows))
    if n_train + n_eval > len(rows):
        raise SystemExit(f"{n_train} + {n_eval} rows asked for, only {len(rows)} exist")
    return [rows[i] for i in order[:n_train]], [rows[i] for i in order[n_train:n_train + n_eval]]


def restrict_multilabel(train, held):
    """Drop held-out label ids never seen in training (only matters for tiny smoke runs), and rows left empty."""
    seen = {x for _, _, y in train for x in y.split(",")}
    out = []
    for t, p, y in held:
        kept = [x for x in y.split(",") if x in seen]
        if kept:
            out.append((t, p, ",".join(kept)))
    return out


def write_tsv(path: Path, rows, pair: bool, encoding="utf-8", header=True):
    with open(path, "w", encoding=encoding, newline="") as f:
        if header:
            f.write("\t".join(["text", "text_pair", "label"] if pair else ["text", "label"]) + "\n")
        for t, p, y in rows:
            f.write("\t".join([t, p, y] if pair else [t, y]) + "\n")


# ---- minift ----
def run_minift(name, cfg, files, lr, workdir: Path, device: str, freeze=None, seed=SEED):
    from minift.train import parser, train

    out = workdir / ("minift-" + (freeze or "full"))
    argv = ["--task", cfg["task"], "--train", str(files["train"]), "--valid", str(files["eval"]),
            "--model", MODEL, "--out", str(out), "--epochs", str(cfg["epochs"]), "--batch-size", str(BATCH),
            "--lr", str(lr), "--max-length", str(MAX_LENGTH), "--seed", str(seed), "--device", device, "--quiet"]
    if name == "goemotions":
        argv += ["--no-header", "--text-col", "0", "--label-col", "1", "--label-delimiter", ","]
    else:
        argv += ["--text-col", "text", "--label-col", "label"]
    if cfg["task"] == "regression":
        argv += ["--text-pair-col", "text_pair"]
    if name == "trec":
        argv += ["--encoding", "latin-1"]
    if freeze:
        argv += ["--freeze", freeze]
    start = time.perf_counter()
    results = train(parser().parse_args(argv))
    wall = time.perf_counter() - start
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {"metrics": log[-1]["valid"], "best_valid": results["valid"], "best_step": results["best_step"],
            "train_seconds": results["train_seconds"], "wall_s": round(wall, 1),
            "per_epoch": [{"step": r["step"], "train_loss_last_batch": r["train_loss"], "valid": r["valid"]}
                          for r in log], "argv": argv}


# ---- transformers.Trainer ----
def trainer_metrics(task, logits, y):
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, mean_squared_error, roc_auc_score

    if task == "classification":
        z = logits - logits.max(-1, keepdims=True)
        p = np.exp(z) / np.exp(z).sum(-1, keepdims=True)
        pred = logits.argmax(-1)
        try:
            auc = roc_auc_score(y, p[:, 1]) if p.shape[1] == 2 else roc_auc_score(
                y, p, multi_class="ovr", average="macro", labels=np.arange(p.shape[1]))
        except ValueError:
            auc = float("nan")
        return {"accuracy": accuracy_score(y, pred), "f1": f1_score(y, pred, average="macro", zero_division=0),
                "auc": float(auc)}
    if task == "multilabel":
        pred = (logits > 0).astype(int)
        return {"f1_micro": f1_score(y, pred, average="micro", zero_division=0),
                "f1_macro": f1_score(y, pred, average="macro", zero_division=0),
                "subset_accuracy": accuracy_score(y, pred)}
    pred = logits.reshape(-1)
    return {"pearson": float(pearsonr(y, pred)[0]), "spearman": float(spearmanr(y, pred)[0]),
            "mse": float(mean_squared_error(y, pred))}


def run_trainer(cfg, train_rows, eval_rows, lr, workdir: Path, device: str, seed=SEED):
    import transformers
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                              Trainer, TrainingArguments)

    transformers.logging.set_verbosity_error()
    task, cache = cfg["task"], os.environ.get("HF_HUB_CACHE")
    start = time.perf_counter()
    if task == "classification":
        names = sorted({y for _, _, y in train_rows}, key=lambda s: (not s.lstrip("-").isdigit(),
                                                                      int(s) if s.lstrip("-").isdigit() else 0, s))
        ids = {n: i for i, n in enumerate(names)}
        encode = lambda y: ids[y]  # noqa: E731
        num_labels, problem = len(names), "single_label_classification"
    elif task == "multilabel":
        names = sorted({x for _, _, y in train_rows for x in y.split(",")}, key=int)
        ids = {n: i for i, n in enumerate(names)}

        def encode(y):
            v = [0.0] * len(names)
            for x in y.split(","):
                v[ids[x]] = 1.0
            return v
        num_labels, problem = len(names), "multi_label_classification"
    else:
        encode, num_labels, problem = float, 1, "regression"

    tok = AutoTokenizer.from_pretrained(MODEL, cache_dir=cache, local_files_only=True)

    def features(rows):
        texts, pairs = [r[0] for r in rows], [r[1] for r in rows]
        enc = tok(texts, pairs if pairs[0] is not None else None, truncation=True, max_length=MAX_LENGTH)
        return [{**{k: enc[k][i] for k in enc}, "labels": encode(r[2])} for i, r in enumerate(rows)]

    train_f, eval_f = features(train_rows), features(eval_rows)
    transformers.set_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(MODEL, cache_dir=cache, local_files_only=True,
                                                               num_labels=num_labels, problem_type=problem)
    args = TrainingArguments(output_dir=str(workdir / "trainer"), per_device_train_batch_size=BATCH,
                             per_device_eval_batch_size=64, num_train_epochs=cfg["epochs"], learning_rate=lr,
                             warmup_steps=0.1, weight_decay=0.01, lr_scheduler_type="linear", eval_strategy="no",
                             save_strategy="no", report_to=[], seed=seed, use_cpu=device == "cpu", logging_steps=50,
                             disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=train_f, data_collator=DataCollatorWithPadding(tok),
                      processing_class=tok)
    train_out = trainer.train()
    train_seconds = time.perf_counter() - start
    pred = trainer.predict(eval_f)
    wall = time.perf_counter() - start
    y = np.array([f["labels"] for f in eval_f])
    return {"metrics": trainer_metrics(task, pred.predictions, y), "train_seconds": round(train_seconds, 2),
            "wall_s": round(wall, 1), "train_loss": train_out.training_loss,
            "loss_curve": [(h["step"], h["loss"]) for h in trainer.state.log_history if "loss" in h]}


# ---- driver ----
def save_run(path: Path, key: str, run: dict, setup: dict):
    """Merge one run into the JSON under a lock, so that two processes (e.g. --systems minift and
    --systems trainer started side by side) can share one --out file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(path.parent, os.O_RDONLY)  # lock the folder: no lock file left behind
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        record = json.loads(path.read_text()) if path.is_file() else {}
        record["setup"] = setup
        record.setdefault("runs", {})[key] = run
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record, indent=1, default=float) + "\n", encoding="utf-8")
        tmp.replace(path)
    finally:
        os.close(folder)  # releases the lock
    return record


def fmt(metrics: dict) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in metrics.items())


def print_table(runs: dict):
    print(f"\n{'dataset':<11} {'train/eval':<12} {'system':<15} {'lr':<8} {'seed':>5} {'metrics':<58} {'wall s':>8}")
    for key, r in runs.items():
        print(f"{r['dataset']:<11} {r['n_train']}/{r['n_eval']:<6} {r['system']:<15} {r['lr']:<8.0e} "
              f"{r.get('seed', SEED):>5} {fmt(r['metrics']):<58} {r['wall_s']:>8.1f}")
    groups = {}  # (dataset, system, lr) -> main-metric values over seeds
    for r in runs.values():
        groups.setdefault((r["dataset"], r["system"], r["lr"]), []).append(r["metrics"][r["main_metric"]])
    for (dataset, system, lr), v in groups.items():
        if len(v) > 1:  # standard error of the mean: sample std / sqrt(n)
            print(f"mean over {len(v)} seeds: {dataset} {system} lr {lr:g}: {np.mean(v):.4f} "
                  f"+- {np.std(v, ddof=1) / np.sqrt(len(v)):.4f}")
    sys.stdout.flush()


def per_dataset(spec: str, cast=str) -> dict:
    """"sst2=1e-4,trec=5e-5" -> {"sst2": 1e-4, "trec": 5e-5}."""
    out = {}
    for item in filter(None, (x.strip() for x in spec.split(","))):
        name, _, value = item.partition("=")
        if name not in DATASETS or not value:
            raise SystemExit(f"{item!r}: expected NAME=VALUE with NAME one of {','.join(ORDER)}")
        out[name] = cast(value)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default=",".join(ORDER), help="comma-separated: " + ",".join(ORDER))
    p.add_argument("--systems", default="minift,trainer,probe", help="any of minift, trainer, probe (SST-2 only)")
    p.add_argument("--rows", default="", help="N: at most N training rows and max(N // 4, 50) held-out rows for "
                   "every dataset; or per dataset TRAIN/HELDOUT, e.g. stsb=2000/749,goemotions=4000/1000")
    p.add_argument("--epochs", default="", help="N for every dataset, or per dataset, e.g. trec=2,goemotions=3")
    p.add_argument("--lr-minift", default="", help="per dataset, e.g. sst2=1e-4,trec=5e-5 (defaults: DATASETS)")
    p.add_argument("--lr-trainer", default="", help="per dataset, as --lr-minift")
    p.add_argument("--lr-probe", type=float, help="learning rate of the SST-2 linear probe (minift --freeze encoder)")
    p.add_argument("--seeds", default=str(SEED), help="training seeds, e.g. 42,1,2: each system runs once per seed "
                   "on the same rows (the row split always uses seed 42); runs other than seed 42 are stored under "
                   "'NAME/SYSTEM/seedN' and the table adds each system's mean over seeds")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (1 is faster on a busy 2-core machine)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda, "
                   "for both systems (default: cuda when available)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sentence_tasks.json"))
    a = p.parse_args(argv)

    names = [n.strip() for n in a.datasets.split(",") if n.strip()]
    systems = set(a.systems.split(","))
    for n in names:
        if n not in DATASETS:
            raise SystemExit(f"unknown dataset {n!r}; expected some of {','.join(ORDER)}")
    if a.threads:
        torch.set_num_threads(a.threads)
    lrs = {"minift": per_dataset(a.lr_minift, float), "trainer": per_dataset(a.lr_trainer, float)}
    epochs = ({n: int(a.epochs) for n in DATASETS} if a.epochs.isdigit() else per_dataset(a.epochs, int))
    if a.rows.isdigit():
        n = int(a.rows)
        rows = {k: (min(n, c["n_train"]), min(max(n // 4, 50), c["n_eval"])) for k, c in DATASETS.items()}
    else:
        rows = {k: tuple(int(x) for x in v.split("/")) for k, v in per_dataset(a.rows).items()}
    out = Path(a.out)
    seeds = [int(x) for x in a.seeds.split(",") if x.strip()]
    setup = {"model": MODEL, "batch_size": BATCH, "max_length": MAX_LENGTH, "split_seed": SEED,
             "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
             "transformers": __import__("transformers").__version__, "cpus": os.cpu_count(),
             "device": a.device if a.device == "cpu" else torch.cuda.get_device_name()}
    record = {"runs": {}}

    for name in names:
        cfg = dict(DATASETS[name])
        cfg["epochs"] = epochs.get(name, cfg["epochs"])
        n_train, n_eval = rows.get(name, (cfg["n_train"], cfg["n_eval"]))
        train_rows, eval_rows = split(READERS[name](), n_train, n_eval)
        if cfg["task"] == "multilabel":
            eval_rows = restrict_multilabel(train_rows, eval_rows)
        with tempfile.TemporaryDirectory(prefix=f"minift-bench-{name}-") as tmp:
            tmp = Path(tmp)
            pair = cfg["task"] == "regression"
            files = {"train": tmp / "train.tsv", "eval": tmp / "eval.tsv"}
            for split_name, part in (("train", train_rows), ("eval", eval_rows)):
                write_tsv(files[split_name], part, pair, encoding="latin-1" if name == "trec" else "utf-8",
                          header=name != "goemotions")
            plan = [("minift", lrs["minift"].get(name, cfg["lr_minift"]), None),
                    ("trainer", lrs["trainer"].get(name, cfg["lr_trainer"]), None)]
            if name == "sst2":
                plan.append(("probe", a.lr_probe or cfg["lr_probe"], "encoder"))
            for seed in seeds:
                for system, lr, freeze in plan:
                    if system not in systems:
                        continue
                    label = {"minift": "minift", "trainer": "hf-trainer", "probe": "minift-frozen"}[system]
                    print(f"== {name}: {label}, lr {lr:g}, seed {seed}, {cfg['epochs']} epoch(s), "
                          f"{len(train_rows)} train / {len(eval_rows)} held out", flush=True)
                    if system == "trainer":
                        r = run_trainer(cfg, train_rows, eval_rows, lr, tmp, a.device, seed)
                    else:
                        r = run_minift(name, cfg, files, lr, tmp, a.device, freeze, seed)
                    r.update(dataset=name, system=label, lr=lr, seed=seed, epochs=cfg["epochs"],
                             n_train=len(train_rows), n_eval=len(eval_rows), main_metric=cfg["metric"],
                             threads=torch.get_num_threads(), finished=time.strftime("%Y-%m-%d %H:%M"))
                    print(f"   {fmt(r['metrics'])}  wall {r['wall_s']} s", flush=True)
                    key = f"{name}/{label}" + ("" if seed == SEED else f"/seed{seed}")
                    record = save_run(out, key, r, setup)
    print_table(record["runs"])


if __name__ == "__main__":
    main()

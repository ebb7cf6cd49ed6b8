"""Do the task recipes work? Each family's defaults (no hyperparameter flags) against a small sweep, on held-out rows.

Issue 19: a newcomer gives only the data and its columns; the run takes its `--task`'s recipe (minift/tasks/,
`Recipe`). For each dataset below, the same seeded split is trained once per configuration through minift's CLI
entry point (`minift.train.train(parser().parse_args([...]))`): the recipe (no flags) and the sweep's flags. As a
newcomer's run would, each holds out its own validation split of the training rows (`--valid-fraction 0.2`) to
keep the best epoch; the score is that model's on held-out rows it never saw (`--test`).

    HF_HUB_CACHE=../shared/hf-cache HF_HUB_OFFLINE=1 python benchmarks/defaults.py \
        [--datasets trec,sst2,stsb,goemotions] [--rows 2000] [--configs recipe,lr1e-4-b32] [--threads 2] \
        [--device cpu] [--out benchmarks/results/defaults.json]

`--rows N` caps the training rows at N (held-out rows: max(N // 4, 50)). Results are merged into `--out` after each
run, under the dataset and row count, with the command that reproduces the run. Generation (E2E) is measured by
`benchmarks/e2e.py --defaults`, extractive QA and NER by `benchmarks/ner_qa.py` (whose recipes are the tasks'
recipes); benchmarks/README.md ("Defaults") has the table.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402

from ner_qa import merge  # noqa: E402  (add one run to the results JSON)
from sentence_tasks import DATASETS, MODEL, READERS, restrict_multilabel, split, write_tsv  # noqa: E402

# The sweep: name -> the flags that differ from the recipe ("recipe": none at all). The H200 sweep's rates at its
# batch of 32 (benchmarks/results/gpu/sweep_lr*.json), and the recipe of each family.
CONFIGS = {
    "recipe": [],
    "lr1e-4-b32": ["--lr", "1e-4", "--batch-size", "32"],
    "lr2e-4-b32": ["--lr", "2e-4", "--batch-size", "32"],
    "lr5e-5-b16": ["--lr", "5e-5", "--batch-size", "16"],
    "one-recipe": ["--lr", "5e-5", "--lr-head", "5e-5", "--epochs", "3", "--batch-size", "16"],  # before issue 19
}
DEFAULT_CONFIGS = {"trec": "recipe,lr1e-4-b32,lr2e-4-b32", "sst2": "recipe,lr1e-4-b32,lr2e-4-b32",
                   "stsb": "recipe,lr5e-5-b16,lr1e-4-b32", "goemotions": "recipe,one-recipe"}
SEED = 42


def data_flags(name: str, cfg: dict) -> list[str]:
    """Only the columns and how the file is written: what a newcomer must say about the data."""
    if name == "goemotions":
        return ["--no-header", "--text-col", "0", "--label-col", "1"]
    flags = ["--text-col", "text", "--label-col", "label"]
    if cfg["task"] == "regression":
        flags += ["--text-pair-col", "text_pair"]
    return flags + (["--encoding", "latin-1"] if name == "trec" else [])


def run(name: str, cfg: dict, files: dict, config: str, a, workdir: Path) -> dict:
    from minift.train import parser, train

    out = workdir / config
    argv = ["--task", cfg["task"], "--train", str(files["train"]), "--test", str(files["test"]), "--model", MODEL,
            "--out", str(out), *data_flags(name, cfg), *CONFIGS[config], "--seed", str(SEED), "--quiet",
            *(["--device", a.device] if a.device else [])]
    start = time.perf_counter()
    results = train(parser().parse_args(argv))
    settings = json.loads((out / "minift.json").read_text(encoding="utf-8"))["train_settings"]
    shown = [x if not x.startswith(("/", str(workdir))) else "FILE" for x in argv if x != str(out)]
    return {"flags": CONFIGS[config], "test": results["test"], "valid": results["valid"],
            "best_step": results["best_step"], "train_settings": settings,
            "wall_s": round(time.perf_counter() - start, 1), "argv": shown}


def summary(name: str, cfg: dict, runs: dict) -> dict:
    """The recipe's held-out score against the best configuration's (best by held-out score)."""
    metric = cfg["metric"]
    scores = {k: r["test"][metric] for k, r in runs.items()}
    best = max(scores, key=scores.get)
    out = {"metric": metric, "scores": scores, "best": best, "configs_swept": len(scores)}
    if "recipe" in scores:
        out["recipe_minus_best"] = scores["recipe"] - scores[best]
    return out


# Sweeps already committed (one H200, benchmarks/results/gpu/): family -> dataset, recipe's config, {config: file}.
GPU = ROOT / "benchmarks" / "results" / "gpu"
COMMITTED = {
    "qa": ("squad", "3ep-lr1e-4-b16", {"3ep-lr1e-4-b16": "ner_qa_squad.json", "5ep-lr1e-4-b16": "ner_qa_squad_5ep.json",
                                       "5ep-lr2e-4-b32": "ner_qa_squad_5ep_lr2e-4.json"}),
    "ner": ("wnut17", "5ep-lr1e-4-b16", {"5ep-lr1e-4-b16": "ner_qa.json",
                                         "10ep-lr1e-4-b16": "ner_qa_wnut17_10ep.json"}),
    "regression": ("stsb", "2ep-lr2e-4-b32", {"2ep-lr5e-5-b32": "sweep_lr5e-5.json", "2ep-lr1e-4-b32":
                                              "sentence_tasks.json", "2ep-lr2e-4-b32": "sweep_lr2e-4.json"}),
}


def committed() -> dict:
    """The committed H200 sweeps whose configurations include a family's recipe, as the same summary: held-out
    score of each configuration, the best, and the recipe's distance to it."""
    out = {}
    for family, (dataset, recipe, files) in COMMITTED.items():
        scores, argv = {}, {}
        for config, file in files.items():
            d = json.loads((GPU / file).read_text(encoding="utf-8"))
            run = d[dataset] if dataset in d else d["runs"][f"{dataset}/minift"]
            scores[config] = run["score"] if "score" in run else run["metrics"][run["main_metric"]]
            argv[config] = f"benchmarks/results/gpu/{file}"
        best = max(scores, key=scores.get)
        out[f"{family}-{dataset}-h200"] = {"task": family, "swept_here": False, "recipe": recipe, "scores": scores,
                                            "best": best, "configs_swept": len(scores), "sources": argv,
                                            "recipe_minus_best": scores[recipe] - scores[best]}
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="trec", help="comma-separated: " + ",".join(DATASETS))
    p.add_argument("--rows", type=int, help="cap the training rows (held-out rows: max(N // 4, 50))")
    p.add_argument("--configs", help="comma-separated names of CONFIGS (default: per dataset, DEFAULT_CONFIGS)")
    p.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "defaults.json"))
    p.add_argument("--committed", action="store_true", help="only add the committed H200 sweeps (COMMITTED) to --out")
    a = p.parse_args(argv)
    if a.committed:
        for key, row in committed().items():
            merge(Path(a.out), key, row)
            print(key, json.dumps(row["scores"]), "recipe - best:", round(row["recipe_minus_best"], 4))
        return
    if a.threads:
        torch.set_num_threads(a.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for name in a.datasets.split(","):
        cfg = DATASETS[name]
        n_train = min(a.rows or cfg["n_train"], cfg["n_train"])
        n_test = max(n_train // 4, 50) if a.rows else cfg["n_eval"]
        train_rows, test_rows = split(READERS[name](), n_train, n_test, SEED)
        if cfg["task"] == "multilabel":
            test_rows = restrict_multilabel(train_rows, test_rows)
        key = f"{name}-rows{n_train}-test{len(test_rows)}"
        pair = cfg["task"] == "regression"
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            encoding = "latin-1" if name == "trec" else "utf-8"
            header = name != "goemotions"
            files = {"train": tmp / "train.tsv", "test": tmp / "test.tsv"}
            write_tsv(files["train"], train_rows, pair, encoding, header)
            write_tsv(files["test"], test_rows, pair, encoding, header)
            runs = {}
            old = json.loads(Path(a.out).read_text(encoding="utf-8")).get(key, {}) if Path(a.out).is_file() else {}
            runs.update(old.get("runs", {}))  # a later call adds configurations to the same split
            for config in (a.configs or DEFAULT_CONFIGS[name]).split(","):
                runs[config] = run(name, cfg, files, config, a, tmp)
                row = {"task": cfg["task"], "train_rows": n_train, "test_rows": len(test_rows),
                       "device": a.device or ("cuda" if torch.cuda.is_available() else "cpu"),
                       "threads": torch.get_num_threads(), "runs": runs, **summary(name, cfg, runs),
                       "command": f"python benchmarks/defaults.py --datasets {name}"
                                  + (f" --rows {a.rows}" if a.rows else "") + f" --configs {','.join(runs)}"}
                merge(Path(a.out), key, row)
                s = runs[config]
                print(f"{key} {config:12} {cfg['metric']} {s['test'][cfg['metric']]:.4f} (valid "
                      f"{s['valid'][cfg['metric']]:.4f}) {s['wall_s']} s", flush=True)
        print(json.dumps(summary(name, cfg, runs)))


if __name__ == "__main__":
    main()

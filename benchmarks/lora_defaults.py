"""Do LoRA's defaults work? `--lora 8` with no other flag, against the task recipe's rates and the old defaults.

minift/lora.py's RECIPE sets --lr, --lr-head, --lora-alpha and --lora-dropout under --lora when the user leaves
them out. This trains the bundled data (the README's first command's reviews, lesson 13's tagging set, the QA and
generation sets) through minift's CLI entry point once per configuration, seed 42, and reports the validation score
of the best epoch (each run holds out minift's own validation split of the file). Regression and multi-label have
no bundled set: `stsb` (STS-B, 2,000 pairs to train, the next 500 held out) and `goemotions` (GoEmotions, 4,000 /
1,000) read ../shared/data, split as benchmarks/sentence_tasks.py splits them, and are scored on the held-out rows:

    recipe      --lora 8 and nothing else: LoRA's recipe
    task rates  the task recipe's --lr and head rate with the old alpha 2R and dropout 0.1 (the old no-flag run)
    old + 1e-3  the old alpha and dropout at --lr 1e-3 (what the README's LoRA command used to pass)
    full        no LoRA: full fine-tuning at the task's recipe

    HF_HUB_CACHE=../shared/hf-cache HF_HUB_OFFLINE=1 python benchmarks/lora_defaults.py \
        [--targets all] [--flags "MINIFT FLAGS"] [--data reviews,tagging,qa,generation,stsb,goemotions] \
        [--configs recipe,full] \
        [--out benchmarks/results/lora_defaults_cpu.json]

15-70 s a run on 2 CPU cores for the bundled sets (the model comes from the Hub cache), 1-4 min for STS-B and
GoEmotions. Runs are merged into --out (a run of the same data and configuration replaces the old one).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

from sentence_tasks import READERS, ROOT, restrict_multilabel, save_run, split, write_tsv

sys.path.insert(0, str(ROOT))  # minift from this checkout

BUNDLED = ROOT / "minift" / "bundled"
DATA = {"reviews": ("classification", "sentiment.csv"), "tagging": ("ner", "tagging.conll"),  # name: (task, file)
        "qa": ("qa", "qa.json"), "generation": ("seq2seq", "generation.csv"),
        "stsb": ("regression", "../shared/data/stsb"), "goemotions": ("multilabel", "../shared/data/goemotions")}
SHARED_ROWS = {"stsb": (2000, 500), "goemotions": (4000, 1000)}  # train / held-out rows of the ../shared sets
OLD = ["--lora", "8", "--lora-alpha", "16", "--lora-dropout", "0.1"]  # minift's LoRA defaults before 2026-12-03


def configs(task: str) -> dict[str, list[str]]:
    """The four runs of one dataset; "task rates" are the task recipe's lr and head rate, spelled out."""
    from minift.tasks import TASKS

    recipe = TASKS[task].recipe_of(task)
    head = recipe.lr_head or recipe.lr
    return {"recipe": ["--lora", "8"], "task rates": [*OLD, "--lr", f"{recipe.lr:g}", "--lr-head", f"{head:g}"],
            "old + 1e-3": [*OLD, "--lr", "1e-3", "--lr-head", "1e-3"], "full": []}


def data_flags(data: str, work: Path) -> list[str]:
    """The flags that give a run its data: a bundled file (minift splits off validation), or a ../shared set's
    seeded train / held-out split written to `work` as TSV."""
    task, file = DATA[data]
    if data not in SHARED_ROWS:
        return ["--task", task, "--train", str(BUNDLED / file)]
    train_rows, held = split(READERS[data](), *SHARED_ROWS[data])
    held = restrict_multilabel(train_rows, held) if task == "multilabel" else held
    pair = task == "regression"
    for name, rows in (("train", train_rows), ("valid", held)):
        write_tsv(work / f"{name}.tsv", rows, pair)
    return ["--task", task, "--train", str(work / "train.tsv"), "--valid", str(work / "valid.tsv"),
            *(["--text-pair-col", "text_pair"] if pair else [])]


def run(task: str, argv: list[str]) -> tuple[float, str]:
    """One training run in this process: (the best model's validation score, the line that says it)."""
    from minift.tasks import TASKS
    from minift.train import parser, train

    said = io.StringIO()
    with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
        results = train(parser().parse_args(argv))
    line = next(s for s in said.getvalue().splitlines() if s.startswith("validation "))
    return results["valid"][TASKS[task].main_metric_of(task)], line


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--targets", default="all", help="--lora-targets for the LoRA runs")
    p.add_argument("--flags", default="", help="more minift flags for the LoRA runs, e.g. \"--lora-embedding-alpha 1\" "
                   "(they name the runs in --out)")
    p.add_argument("--data", default=",".join(DATA), help="comma-separated: " + ", ".join(DATA))
    p.add_argument("--configs", default="recipe,task rates,old + 1e-3,full", help="comma-separated, of those four")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "lora_defaults_cpu.json"))
    a = p.parse_args(argv)
    command = "python benchmarks/lora_defaults.py " + " ".join(sys.argv[1:] if argv is None else argv)
    for data in a.data.split(","):
        task = DATA[data][0]
        for name, extra in configs(task).items():
            if name not in a.configs.split(","):
                continue
            targets = ["--lora-targets", a.targets, *a.flags.split()] if extra else []
            with tempfile.TemporaryDirectory(prefix="minift-lora-defaults-") as work:
                argv_run = [*data_flags(data, Path(work)), "--out", str(Path(work) / "run"), "--seed", "42", "--quiet",
                            *extra, *targets]
                start = time.perf_counter()
                score, line = run(task, argv_run)
            save_run(Path(a.out), f"{data}/{name}" + (f" {a.flags}" if a.flags and extra else ""), {
                "score": score, "line": line, "argv": argv_run, "command": command,
                "when": time.strftime("%Y-%m-%d %H:%M"), "wall_s": round(time.perf_counter() - start, 1)},
                {"cpus": os.cpu_count()})
            print(f"{data:<8} {name:<11} {score:.4f}   {line}", flush=True)


if __name__ == "__main__":
    main()

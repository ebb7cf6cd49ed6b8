"""minift on real generation: E2E NLG (restaurant descriptions from meaning representations), UniLM-style.

One pretrained encoder, `sentence-transformers/all-MiniLM-L6-v2`, fine-tuned as a sequence-to-sequence model with
the UniLM mask (`--task seq2seq`, minift/tasks/seq2seq.py) through minift's CLI entry point
(`minift.train.train(parser().parse_args([...]))`):

    train   --rows N rows of ../shared/data/e2e/trainset.csv (a seeded random subset; default all 42,061), of which
            2% are held out to pick the best epoch (greedy BLEU on at most 100 of their distinct MRs)
    score   ../shared/data/e2e/devset.csv grouped by MR (547 MRs, 4,672 references: every reference of an MR
            counts), decoded with greedy search and with beam search (4 beams): corpus BLEU (sacrebleu semantics)
            and ROUGE-1/2/L/Lsum F, 0-100. Target: BLEU >= 55.

    HF_HUB_CACHE=../shared/hf-cache HF_HUB_OFFLINE=1 python benchmarks/e2e.py \
        --device cuda --precision bf16 --epochs 3 --lr 2e-4 --batch-size 64

`--defaults` trains with no hyperparameter flags at all (the seq2seq task's recipe, minift/tasks/seq2seq.py), as a
newcomer would: `--rows 3000 --defaults --device cpu` is issue 19's check (BLEU >= 40 on the dev MRs).
CPU smoke run (a couple of minutes): `--rows 64 --dev-rows 8 --epochs 1 --device cpu`. Options: `--threads`,
`--max-target-length 64`, `--length-penalty 1.0`, `--decode-batch 128`, `--keep DIR` (keep the trained model),
`--model` and `--data` (a checkpoint folder and a folder with the two CSVs, where ../shared is not beside the
project), `--out benchmarks/results/e2e.json`. It prints a table (greedy vs beam 4: BLEU, ROUGE-1/2/L/Lsum, decode seconds)
and the training wall time, and merges the run into the `--out` JSON, keyed by device and rows. The subsets are
written to a temporary folder, never into the repository.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
E2E = ROOT.parent / "shared" / "data" / "e2e"
if (ROOT.parent / "shared" / "hf-cache").is_dir():
    os.environ.setdefault("HF_HUB_CACHE", str(ROOT.parent / "shared" / "hf-cache"))
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from minift import cli, precision, train  # noqa: E402
from minift.metrics import bleu, generation_summary  # noqa: E402
from ner_qa import merge  # noqa: E402  (beside this script: add one run to the results JSON)

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TARGET_BLEU = 55.0


def read_rows(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [(row["mr"], row["ref"]) for row in csv.DictReader(f)]


def write_rows(path: Path, rows) -> str:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["mr", "ref"])
        w.writerows(rows)
    return str(path)


def by_mr(rows) -> dict[str, list[str]]:
    """{meaning representation: all of its references}, in file order."""
    groups = {}
    for mr, ref in rows:
        groups.setdefault(mr, []).append(ref)
    return groups


def decode(task, model, device, a, groups: dict, beams: int) -> dict:
    """Generate for every MR (batched, under --precision) and score against all of its references."""
    mrs = list(groups)
    sources = [f["source_ids"] for f in task.featurize([task.example(m) for m in mrs], with_labels=False)]
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.time()
    with precision.autocast(a.precision, device):
        hyps = task.generate(model, sources, a.decode_batch, beams=beams)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = round(time.time() - start, 2)
    refs = [groups[m] for m in mrs]
    scores = generation_summary(hyps, refs)
    scores["bleu_lowercased"] = bleu(hyps, refs, lowercase=True).score
    return {"scores": {k: round(v, 2) for k, v in scores.items()}, "decode_s": seconds,
            "samples": [{"mr": m, "generated": h} for m, h in zip(mrs[:3], hyps[:3])]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, help="train on a seeded random subset of this many rows (default: all)")
    p.add_argument("--dev-rows", type=int, help="score only the first N MRs of devset.csv (default: all 547)")
    p.add_argument("--defaults", action="store_true", help="no --epochs, --lr, --batch-size, --max-length flags: "
                                                          "the task's recipe")
    p.add_argument("--greedy-only", action="store_true", help="decode the dev MRs greedily only (no beam search)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-target-length", type=int, default=64)
    p.add_argument("--length-penalty", type=float, default=1.0)
    p.add_argument("--decode-batch", type=int, default=128, help="MRs decoded at once")
    p.add_argument("--device", help="cpu, cuda (default: cuda when available)")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--keep", help="folder for the trained model (default: a temporary folder)")
    p.add_argument("--model", default=MODEL, help="checkpoint folder or Hub id to start from")
    p.add_argument("--data", default=str(E2E), help="folder holding trainset.csv and devset.csv")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "e2e.json"))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads or torch.get_num_threads())
    data = Path(a.data)
    if not (data / "trainset.csv").is_file():
        sys.exit(f"no trainset.csv in {data}: this benchmark reads ../shared/data/e2e (see its README.md), or --data")
    rows = read_rows(data / "trainset.csv")
    if a.rows:
        rows = random.Random(0).sample(rows, min(a.rows, len(rows)))
    dev = by_mr(read_rows(data / "devset.csv"))
    if a.dev_rows:
        dev = dict(list(dev.items())[:a.dev_rows])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(a.keep or Path(tmp) / "run")
        hyper = [] if a.defaults else ["--epochs", str(a.epochs), "--lr", str(a.lr), "--batch-size",
                                       str(a.batch_size), "--max-length", "96"]
        argv = ["--task", "seq2seq", "--train", write_rows(Path(tmp) / "train.csv", rows), "--source-col", "mr",
                "--target-col", "ref", "--valid-fraction", "0.02", "--max-eval-sources", "100", "--model", a.model,
                "--out", str(out), *hyper, "--max-target-length", str(a.max_target_length), "--length-penalty",
                str(a.length_penalty), "--precision", a.precision, "--seed", "42", "--quiet",
                *(["--device", a.device] if a.device else [])]
        start = time.time()
        results = train.train(train.parser().parse_args(argv))
        train_s = round(time.time() - start, 1)
        device = cli.pick_device(a.device)
        task, model = cli.load_trained(out, device)
        used = json.loads((out / "minift.json").read_text(encoding="utf-8")).get("train_settings", {})
        if a.defaults:
            a.epochs, a.lr, a.batch_size = used["epochs"], used["lr"], used["batch_size"]
        searches = (("greedy", 1),) if a.greedy_only else (("greedy", 1), ("beam4", 4))
        runs = {name: decode(task, model, device, a, dev, beams) for name, beams in searches}
    name = "cuda" if device.type == "cuda" else "cpu"
    row = {"argv": argv, "rows": len(rows), "dev_mrs": len(dev), "dev_references": sum(map(len, dev.values())),
           "epochs": a.epochs, "lr": a.lr, "batch_size": a.batch_size, "precision": a.precision,
           "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu x{torch.get_num_threads()}",
           "train_s": train_s, "train_settings": used, "valid": results["valid"], **runs,
           "target_met": runs["greedy"]["scores"]["bleu"] >= TARGET_BLEU}
    merge(Path(a.out), f"{name}-rows{len(rows)}-dev{len(dev)}" + ("-defaults" if a.defaults else ""), row)
    print(f"E2E: trained on {len(rows)} rows, {a.epochs} epochs, lr {a.lr}, batch {a.batch_size}, {a.precision} on "
          f"{row['device']}: {train_s} s; dev: {len(dev)} MRs, {row['dev_references']} references")
    print(f"{'decoding':8} {'BLEU':>6} {'R-1':>6} {'R-2':>6} {'R-L':>6} {'R-Lsum':>6} {'BLEU-lc':>7} {'seconds':>8}")
    for kind, r in runs.items():
        s = r["scores"]
        print(f"{kind:8} {s['bleu']:>6.2f} {s['rouge1']:>6.2f} {s['rouge2']:>6.2f} {s['rougeL']:>6.2f} "
              f"{s['rougeLsum']:>6.2f} {s['bleu_lowercased']:>7.2f} {r['decode_s']:>8}")
    print(f"target BLEU >= {TARGET_BLEU}: {'met' if row['target_met'] else 'not met'}; e.g. "
          f"{json.dumps(runs['greedy']['samples'][0], ensure_ascii=False)}")


if __name__ == "__main__":
    main()

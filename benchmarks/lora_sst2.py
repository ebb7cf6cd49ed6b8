"""LoRA vs full fine-tuning vs a linear probe on SST-2: accuracy, trainable parameters, time, memory, file size.

Every method trains sentence-transformers/all-MiniLM-L6-v2 with minift (`minift.train`) on the same SST-2 rows
from ../shared/data (read and split by benchmarks/sentence_tasks.py: a seeded permutation, the first rows train,
the next are held out), for the same epochs, batch size 32 and max length, and is scored on the held-out rows:

    method     minift flags                                              default learning rates (the sweep)
    full       (none): every weight trains                               5e-5, 1e-4, 2e-4
    probe      --freeze encoder: the head alone (a linear probe)         1e-3, 2e-3
    lora-qv    --lora 8 --lora-targets query,value --save-adapter        5e-4, 1e-3, 3e-3
    lora-all   --lora 8 --lora-targets all --save-adapter                5e-4, 1e-3, 3e-3
    lora-emb   --lora 8 --lora-targets all,embeddings --save-adapter     5e-4
               (and a rank-4 adapter on the word embeddings, α 4)

Each (method, learning rate) runs in its own process, one after the other, so that its peak memory is its own:
the RSS high-water mark of that process (resource.getrusage, ru_maxrss), which includes Python, torch and the
data (`rss_before_train_mb` is the mark before training starts). Wall time covers loading the model,
tokenizing, training and scoring. "saved" is the file a method needs to keep: model.safetensors for full and
probe, OUT/adapter/adapter_model.safetensors (A, B and the head) for LoRA. A method's best learning rate is
picked by held-out accuracy (the issue's protocol: the same held-out rows select and score, so the best of a
sweep is optimistic by the sweep's noise).

    HF_HUB_CACHE=../shared/hf-cache HF_HUB_OFFLINE=1 python benchmarks/lora_sst2.py \
        [--rows 20000/2000] [--epochs 1] [--max-length 128] [--methods full,probe,lora-qv,lora-all,lora-emb] \
        [--lrs full=1e-4/2e-4,lora-qv=1e-3] [--pooling pooler] [--flags "--lora-dropout 0"] [--threads 2] \
        [--fresh 4000] [--variant loraplus:16|pissa|norms|words] [--device cpu] \
        [--out benchmarks/results/lora_sst2.json]

`--pooling` applies to every method: minift's default, the pretrained pooler tanh(W h[CLS]), stays frozen under
--freeze encoder and LoRA (as in PEFT), while all-MiniLM-L6-v2 was trained for mean pooling (`--pooling mean`).
`--flags` adds minift flags to every run (e.g. `--lora-dropout 0`) and names the runs with them. `--fresh N` also
scores every run (as minift's `--test`) on the N rows after the held-out ones: rows that pick nothing, so their
accuracy is an unbiased estimate for a setting the held-out rows picked. `--variant` trains every run with one of
lora_variants.py's LoRA variants (LoRA+, PiSSA, trained norms or word embeddings).
The defaults are the issue's full size (20,000 / 2,000 rows, 1 epoch, the sweeps above). Every finished run is
merged into --out at once (so partial results survive), and the table at the end reads the whole file.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sentence_tasks import BATCH, MODEL, ROOT, SEED, read_sst2, save_run, split, write_tsv

sys.path.insert(0, str(ROOT))  # minift from this checkout

METHODS = {
    "full": ([], [5e-5, 1e-4, 2e-4]),
    "probe": (["--freeze", "encoder"], [1e-3, 2e-3]),
    "lora-qv": (["--lora", "8", "--lora-targets", "query,value", "--save-adapter"], [5e-4, 1e-3, 3e-3]),
    "lora-all": (["--lora", "8", "--lora-targets", "all", "--save-adapter"], [5e-4, 1e-3, 3e-3]),
    "lora-emb": (["--lora", "8", "--lora-targets", "all,embeddings", "--save-adapter"], [5e-4]),
}


def megabytes(kilobytes: int) -> float:
    return round(kilobytes / 1024, 1)  # Linux reports ru_maxrss in KiB


def child(a) -> None:
    """One run in this process; prints `RESULT {json}` as its last line."""
    import torch

    from minift.train import parser, train

    if a.threads:
        torch.set_num_threads(a.threads)
    if a.variant:
        import lora_variants
        lora_variants.use(a.variant)
    work = Path(a.workdir)
    out = work / f"{a.child}-{a.lr:g}-{a.pooling}"
    argv = ["--train", str(work / "train.tsv"), "--valid", str(work / "eval.tsv"), "--model", MODEL, "--out",
            str(out), "--epochs", str(a.epochs), "--batch-size", str(BATCH), "--lr", str(a.lr), "--max-length",
            str(a.max_length), "--seed", str(SEED), "--device", a.device, "--pooling", a.pooling, "--quiet",
            *METHODS[a.child][0], *a.flags.split()]
    if (work / "fresh.tsv").is_file():  # --fresh: scored once at the end, never used to pick anything
        argv += ["--test", str(work / "fresh.tsv")]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    err, start = io.StringIO(), time.perf_counter()
    with contextlib.redirect_stderr(err):
        results = train(parser().parse_args(argv))
    wall = time.perf_counter() - start
    sys.stderr.write(err.getvalue())
    trainable, total = (int(x.replace(",", "")) for x in
                        re.search(r"trainable parameters: ([\d,]+) of ([\d,]+)", err.getvalue()).groups())
    saved = out / "adapter" / "adapter_model.safetensors"
    saved = saved if saved.is_file() else out / "model.safetensors"
    print("RESULT " + json.dumps({
        "accuracy": results["valid"]["accuracy"], "valid": results["valid"], "trainable": trainable,
        "total": total, "trainable_pct": round(100 * trainable / total, 3), "wall_s": round(wall, 1),
        "train_seconds": results["train_seconds"], "peak_rss_mb": megabytes(resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss), "rss_before_train_mb": megabytes(rss_before),
        "saved_file": str(saved.relative_to(out)), "saved_bytes": saved.stat().st_size, "argv": argv}
        | ({"fresh_accuracy": results["test"]["accuracy"], "fresh": results["test"]} if "test" in results else {})))


def per_method(spec: str) -> dict[str, list[float]]:
    """"full=1e-4/2e-4,probe=2e-3" -> {"full": [1e-4, 2e-4], "probe": [2e-3]}."""
    out = {}
    for item in filter(None, (x.strip() for x in spec.split(","))):
        name, _, values = item.partition("=")
        if name not in METHODS or not values:
            raise SystemExit(f"--lrs {item!r}: expected METHOD=LR/LR/... with METHOD one of {', '.join(METHODS)}")
        out[name] = [float(v) for v in values.split("/")]
    return out


def table(runs: dict) -> None:
    """Every run, then each method (and pooling) at its best learning rate (by held-out accuracy)."""
    print(f"\n{'method':<9} {'pooling':<7} {'lr':>7} {'accuracy':>8} {'trainable':>11} {'%':>7} {'wall s':>7} "
          f"{'peak MB':>8} {'saved MB':>9}")
    best = {}
    for r in runs.values():
        saved_mb = r["saved_bytes"] / 2**20
        method = (r["method"] + (" " + r["flags"] if r.get("flags") else "") +
                  (" variant " + r["variant"] if r.get("variant") else ""), r.get("pooling", "pooler"))
        print(f"{method[0]:<9} {method[1]:<7} {r['lr']:>7.0e} {r['accuracy']:>8.4f} {r['trainable']:>11,} "
              f"{r['trainable_pct']:>7.3f} {r['wall_s']:>7.1f} {r['peak_rss_mb']:>8.1f} {saved_mb:>9.2f}")
        if method not in best or r["accuracy"] > best[method]["accuracy"]:
            best[method] = r
    print("\nbest learning rate of each method:")
    for (m, pooling), r in best.items():
        full = best.get(("full", pooling))
        gap = f"  ({100 * (r['accuracy'] - full['accuracy']):+.2f} points vs full)" if full else ""
        print(f"{m:<9} {pooling:<7} lr {r['lr']:g}: accuracy {r['accuracy']:.4f}{gap}, "
              f"{r['trainable_pct']:.2f}% trainable")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", default="20000/2000", help="TRAIN/HELDOUT rows of SST-2")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated: " + ", ".join(METHODS))
    p.add_argument("--lrs", default="", help="per method, e.g. full=1e-4/2e-4,lora-qv=1e-3 (default: the sweeps)")
    p.add_argument("--pooling", choices=["pooler", "cls", "mean"], default="pooler", help="minift --pooling, for "
                   "every method (pooler: the pretrained pooler, frozen under --freeze encoder and LoRA)")
    p.add_argument("--flags", default="", help="more minift flags for every run, e.g. \"--lora-dropout 0\"")
    p.add_argument("--fresh", type=int, default=0, metavar="N", help="also score every run on the N rows after the "
                   "held-out ones, which pick nothing (an unbiased estimate of the picked setting)")
    p.add_argument("--variant", help="a LoRA variant for every run: loraplus:R, pissa, norms or words "
                   "(lora_variants.py)")
    p.add_argument("--threads", type=int, help="torch.set_num_threads in each run")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "lora_sst2.json"))
    p.add_argument("--child", choices=sorted(METHODS), help=argparse.SUPPRESS)  # one run, in a subprocess
    p.add_argument("--lr", type=float, help=argparse.SUPPRESS)
    p.add_argument("--workdir", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        return child(a)
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; expected some of {', '.join(METHODS)}")
    lrs = {m: METHODS[m][1] for m in methods} | per_method(a.lrs)
    n_train, n_eval = (int(x) for x in a.rows.split("/"))
    train_rows, eval_rows = split(read_sst2(), n_train, n_eval + a.fresh)  # the first n_eval as before
    eval_rows, fresh_rows = eval_rows[:n_eval], eval_rows[n_eval:]
    import torch  # for the record only; the runs import it themselves
    setup = {"model": MODEL, "rows": [n_train, n_eval], "fresh_rows": a.fresh, "epochs": a.epochs,
             "batch_size": BATCH, "max_length": a.max_length, "pooling": a.pooling, "split_seed": SEED,
             "train_seed": SEED, "flags": a.flags, "variant": a.variant, "threads": a.threads, "device": a.device,
             "torch": torch.__version__, "cpus": os.cpu_count(),
             "command": "python benchmarks/lora_sst2.py " + shlex.join(sys.argv[1:] if argv is None else argv)}
    out, record = Path(a.out), {"runs": {}}
    with tempfile.TemporaryDirectory(prefix="minift-lora-sst2-") as work:
        write_tsv(Path(work) / "train.tsv", train_rows, pair=False)
        write_tsv(Path(work) / "eval.tsv", eval_rows, pair=False)
        if fresh_rows:
            write_tsv(Path(work) / "fresh.tsv", fresh_rows, pair=False)
        for method in methods:
            for lr in lrs[method]:
                print(f"== {method}, lr {lr:g}: {n_train} train / {n_eval} held out, {a.epochs} epoch(s)", flush=True)
                cmd = [sys.executable, __file__, "--child", method, "--lr", str(lr), "--workdir", work, "--epochs",
                       str(a.epochs), "--max-length", str(a.max_length), "--device", a.device, "--pooling",
                       a.pooling, "--flags=" + a.flags] + (["--threads", str(a.threads)] if a.threads else []) + \
                    (["--variant", a.variant] if a.variant else [])
                proc = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, text=True)
                if proc.returncode:
                    raise SystemExit(f"{method} at lr {lr:g} failed (exit {proc.returncode})")
                run = json.loads(proc.stdout.strip().splitlines()[-1].removeprefix("RESULT "))
                run.update(method=method, lr=lr, pooling=a.pooling, flags=a.flags, variant=a.variant,
                           command=setup["command"],
                           finished=time.strftime("%Y-%m-%d %H:%M"))
                fresh = f" (fresh rows {run['fresh_accuracy']:.4f})" if "fresh_accuracy" in run else ""
                print(f"   accuracy {run['accuracy']:.4f}{fresh}, {run['trainable']:,} trainable, wall {run['wall_s']} s, "
                      f"peak {run['peak_rss_mb']} MB", flush=True)
                key = f"{method}/lr{lr:g}" + ("" if a.pooling == "pooler" else f"/{a.pooling}") + \
                    "".join("/" + f.lstrip("-") for f in a.flags.split()) + \
                    (f"/variant/{a.variant}" if a.variant else "")
                record = save_run(out, key, run, setup)
    table(record["runs"])


if __name__ == "__main__":
    main()

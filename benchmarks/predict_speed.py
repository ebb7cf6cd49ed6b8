"""Inference, whole processes: `python -m minift.predict` vs a `transformers` text-classification pipeline.

One model folder serves both: all-MiniLM-L6-v2 with a fresh, seeded two-class head, saved by minift (Hugging Face
names, config.json with `BertForSequenceClassification`, the tokenizer), in a temporary folder. The sentences are
`--rows` SST-2 training sentences (../shared/data/sst2, a seeded sample), written to a temporary TSV file; nothing
is written into the repository but the results JSON.

    throughput   sentences per second of the whole process (start, import, load, read, predict, print), for
                 `python -m minift.predict --data FILE` (its default batch of 64) and for the pipeline at each
                 `--pipeline-batches` size; also the processes' CPU seconds (steadier on a shared machine).
                 The pipeline's best batch size is picked on the first `--select-rows` sentences, then both run
                 on all of them.
    start-up     seconds from starting the process to the first prediction printed, for one `--text`
                 (`python -m minift.predict --model DIR --text T` vs a process that imports `transformers`,
                 builds the pipeline from DIR and labels T), median of `--repeats`, run alternately.

    HF_HUB_CACHE=../shared/hf-cache HF_HUB_OFFLINE=1 python benchmarks/predict_speed.py [--rows 10000]
        [--threads 2] [--out benchmarks/results/predict_speed_cpu.json]
"""
import argparse
import csv
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sst2" / "train.tsv"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def make_model(folder: Path) -> None:
    """MiniLM + a fresh seeded classifier, saved as `minift.train` saves a model."""
    import torch

    from minift.data import LabelMap
    from minift.encoder import Encoder
    from minift.tasks.sentence import SentenceTask
    from minift.tokenizer import Tokenizer
    torch.manual_seed(0)
    task = SentenceTask("classification", Tokenizer.from_pretrained(MODEL), {"text": "sentence", "label": "label"},
                        max_length=128, labels=LabelMap(["0", "1"]))
    task.save(task.build_model(Encoder.from_pretrained(MODEL)), folder)


def write_sentences(path: Path, rows: int, seed: int = 0) -> list[str]:
    with DATA.open(encoding="utf-8") as f:
        all_rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    picked = random.Random(seed).sample(all_rows, rows)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        w.writerow(["sentence", "label"])
        w.writerows([r["sentence"].strip(), r["label"]] for r in picked)
    return [r["sentence"].strip() for r in picked]


def timed_process(cmd: list[str], threads: int, first_line: bool = False) -> dict:
    """Run a process; its wall seconds (to its first output line when `first_line`) and CPU seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:  # not a pipe: read after the process ends, it cannot block it
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=ROOT)
        first = proc.stdout.readline()
        to_first = time.perf_counter() - start
        rest = proc.stdout.read()
        proc.wait()
        wall = time.perf_counter() - start
        if proc.returncode:
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{err.read()[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"wall_s": to_first if first_line else wall, "cpu_s": cpu, "lines": 1 + rest.count("\n") if first else 0}


def minift_cmd(model: Path, threads: int, data: Path | None = None, text: str | None = None) -> list[str]:
    source = ["--data", str(data)] if data else ["--text", text]
    return [sys.executable, "-m", "minift.predict", "--model", str(model), *source, "--device", "cpu"]


def pipeline_cmd(model: Path, threads: int, data: Path | None = None, text: str | None = None,
                 batch: int = 1) -> list[str]:
    source = ["--data", str(data)] if data else ["--text", text]
    return [sys.executable, __file__, "--child", str(model), *source, "--batch", str(batch), "--threads", str(threads)]


def child(args) -> None:
    """The transformers side, as a user would write it: build the pipeline, label every sentence, print."""
    import torch
    from transformers import pipeline
    torch.set_num_threads(args.threads)
    pipe = pipeline("text-classification", model=args.child, device="cpu")
    if args.text:
        print(json.dumps(pipe(args.text)[0]), flush=True)
        return
    with open(args.data, encoding="utf-8") as f:
        texts = [r["sentence"] for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")]
    out = pipe(texts, batch_size=args.batch, truncation=True, max_length=128)
    print("\n".join(json.dumps(o) for o in out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--select-rows", type=int, default=1_000, help="sentences to pick the pipeline's batch size on")
    ap.add_argument("--pipeline-batches", default="8,32,64")
    ap.add_argument("--repeats", type=int, default=3, help="start-up runs of each")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--text", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=8, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    sys.path.insert(0, str(ROOT))
    load_before, t = os.getloadavg(), args.threads
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_model(tmp / "model")
        small, full = tmp / "small.tsv", tmp / "full.tsv"
        write_sentences(small, args.select_rows)
        write_sentences(full, args.rows)
        select = {}
        for b in map(int, args.pipeline_batches.split(",")):
            select[b] = timed_process(pipeline_cmd(tmp / "model", t, small, batch=b), t)
            print(f"pipeline batch {b:3d} on {args.select_rows} sentences: {select[b]['wall_s']:.1f} s, "
                  f"{select[b]['cpu_s']:.1f} CPU s", flush=True)
        best = min(select, key=lambda b: select[b]["cpu_s"])
        throughput = {"minift": timed_process(minift_cmd(tmp / "model", t, full), t),
                      f"pipeline (batch {best})": timed_process(pipeline_cmd(tmp / "model", t, full, batch=best), t)}
        for name, r in throughput.items():
            assert r["lines"] == args.rows, (name, r["lines"])
            r["sentences_per_s"], r["sentences_per_cpu_s"] = args.rows / r["wall_s"], args.rows / r["cpu_s"]
            print(f"{name:20s} {args.rows} sentences: {r['wall_s']:7.1f} s ({r['sentences_per_s']:6.1f}/s), "
                  f"{r['cpu_s']:7.1f} CPU s ({r['sentences_per_cpu_s']:6.1f}/CPU s)", flush=True)
        text = "a gripping , beautifully acted film"
        startup = {"minift": [], "pipeline": []}
        for _ in range(args.repeats):
            startup["minift"].append(timed_process(minift_cmd(tmp / "model", t, text=text), t, first_line=True))
            startup["pipeline"].append(timed_process(pipeline_cmd(tmp / "model", t, text=text), t, first_line=True))
        start_med = {k: {"wall_s": statistics.median(r["wall_s"] for r in v),
                         "cpu_s": statistics.median(r["cpu_s"] for r in v)} for k, v in startup.items()}
        for k, v in start_med.items():
            print(f"start-up to the first prediction, {k:8s}: {v['wall_s']:.2f} s ({v['cpu_s']:.2f} CPU s)")
    a, b = throughput["minift"], throughput[f"pipeline (batch {best})"]
    summary = {"speedup_wall": a["sentences_per_s"] / b["sentences_per_s"],
               "speedup_cpu": a["sentences_per_cpu_s"] / b["sentences_per_cpu_s"],
               "startup_ratio_wall": start_med["minift"]["wall_s"] / start_med["pipeline"]["wall_s"],
               "startup_ratio_cpu": start_med["minift"]["cpu_s"] / start_med["pipeline"]["cpu_s"]}
    print("minift / pipeline: " + ", ".join(f"{k} {v:.2f}" for k, v in summary.items()))
    if args.out:
        record = {"argv": sys.argv[1:], "threads": t, "rows": args.rows, "load_average_before": load_before,
                  "load_average_after": os.getloadavg(), "pipeline_batch_selection": select, "best_batch": best,
                  "throughput": throughput, "startup_runs": startup, "startup": start_med, "summary": summary}
        Path(args.out).write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""minift's training update is `transformers.Trainer`'s: same start, same batches, no dropout -> same run.

sentence_tasks.py compares the two systems by their scores, and one seed of one run differs from another by
about as much as the systems might. This check takes the randomness out, to see whether the recipe itself
differs: the loss, its gradient, clipping, AdamW with decoupled weight decay (none on biases and LayerNorm),
warmup and linear decay, and the pooler classification head.

    1. one starting folder: `AutoModelForSequenceClassification` (pretrained encoder, seeded new classifier,
       dropout set to 0 in its config) saved with its tokenizer; minift loads the same classifier from it
    2. ROWS rows of SST-2 (or the sentiment file bundled with minift when ../shared is absent), and a batch
       size of ROWS: each epoch is one update on the same full batch, so the order of rows cannot differ
    3. minift: `python -m minift.train ... --epochs STEPS --save-every STEPS`; Trainer: the same settings
    4. compared: the training loss of every update, the logits of the trained models on the rows, every weight

Run:  python benchmarks/loop_vs_trainer.py [--model NAME_OR_DIR] [--steps 6] [--rows 32] [--lr 1e-4]
      (needs the `bench` extra: transformers and accelerate). Prints a JSON report; exit 1 if they differ.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
if (SHARED / "hf-cache").is_dir():
    os.environ.setdefault("HF_HUB_CACHE", str(SHARED / "hf-cache"))

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Float32 on a CPU: the two systems sum in different orders, so they agree to rounding, not bit for bit.
LOSS_TOL, LOGIT_TOL, WEIGHT_TOL = 1e-4, 1e-3, 1e-4


def read_rows(n: int) -> list[tuple[str, str]]:
    """The first n (sentence, label) rows of SST-2's training file (read as sentence_tasks.py reads it), or of
    minift's bundled sentiment file when ../shared is absent."""
    if (SHARED / "data" / "sst2" / "train.tsv").is_file():
        from sentence_tasks import read_sst2  # this folder's SST-2 reader

        return [(text, label) for text, _, label in read_sst2()[:n]]
    with open(ROOT / "minift" / "bundled" / "sentiment.csv", encoding="utf-8", newline="") as f:
        return [(r["text"], r["label"]) for r in csv.DictReader(f)][:n]


def start_folder(model: str, num_labels: int, folder: Path) -> Path:
    """The pretrained encoder with a seeded new classifier and no dropout, as a Hugging Face folder."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    m = AutoModelForSequenceClassification.from_pretrained(model, num_labels=num_labels, hidden_dropout_prob=0.0,
                                                           attention_probs_dropout_prob=0.0)
    m.save_pretrained(folder)
    AutoTokenizer.from_pretrained(model).save_pretrained(folder)
    return folder


def run_minift(start: Path, train_file: Path, a, out: Path):
    """Train with minift's CLI; return (loss per update, trained model's logits, weights under HF names)."""
    from safetensors.torch import load_model

    from minift import cli
    from minift.train import parser, train

    train(parser().parse_args([
        "--task", "classification", "--train", str(train_file), "--valid", str(train_file), "--model", str(start),
        "--text-col", "text", "--label-col", "label", "--out", str(out), "--epochs", str(a.steps),
        "--batch-size", str(a.rows), "--lr", str(a.lr), "--warmup", str(a.warmup), "--schedule", "linear",
        "--weight-decay", "0.01", "--max-grad-norm", "1.0", "--save-every", str(a.steps), "--seed", "0",
        "--device", "cpu", "--quiet"]))
    losses = [json.loads(line)["train_loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    task, model = cli.load_trained(out, torch.device("cpu"))  # the architecture; then the last update's weights
    load_model(model, str(out / "checkpoints" / f"step-{a.steps}" / "model.safetensors"))
    batch = next(iter(task.batches(task.featurize(task.read(train_file), str(train_file)), a.rows, 0, 0,
                                   shuffle=False)))
    with torch.no_grad():
        logits = model(batch["input_ids"], batch["attention_mask"], batch.get("token_type_ids"))
    family = model.encoder.cfg.model_type
    weights = {**model.encoder.hf_state_dict(f"{family}."),
               "classifier.weight": model.head.out.weight, "classifier.bias": model.head.out.bias}
    return losses, logits, weights


def run_trainer(start: Path, rows, a, out: Path):
    """The same run with `transformers.Trainer`; return what run_minift returns, plus the untrained logits."""
    import transformers
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding,
                              Trainer, TrainingArguments)

    transformers.logging.set_verbosity_error()
    tok = AutoTokenizer.from_pretrained(start)
    enc = tok([t for t, _ in rows], truncation=True, max_length=min(128, tok.model_max_length))  # minift's default
    data = [{**{k: enc[k][i] for k in enc}, "labels": int(y)} for i, (_, y) in enumerate(rows)]
    model = AutoModelForSequenceClassification.from_pretrained(start)
    batch = DataCollatorWithPadding(tok)([{k: v for k, v in d.items() if k != "labels"} for d in data])
    model.eval()
    with torch.no_grad():
        before = model(**batch).logits
    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=a.rows, num_train_epochs=a.steps,
                             learning_rate=a.lr, warmup_steps=a.warmup, weight_decay=0.01, lr_scheduler_type="linear",
                             max_grad_norm=1.0, optim="adamw_torch", logging_steps=1, save_strategy="no",
                             eval_strategy="no", report_to=[], seed=0, use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=DataCollatorWithPadding(tok))
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    model.eval()
    with torch.no_grad():
        logits = model(**batch).logits
    return losses, logits, dict(model.state_dict()), before


def compare(a) -> dict:
    rows = read_rows(a.rows)
    labels = sorted({y for _, y in rows})
    rows = [(t, str(labels.index(y))) for t, y in rows]  # ids 0..C-1 as digits: both systems order them alike
    with tempfile.TemporaryDirectory(prefix="minift-loop-vs-trainer-") as tmp:
        tmp = Path(tmp)
        start = start_folder(a.model, len(labels), tmp / "start")
        start_weights = load_file(start / "model.safetensors")
        train_file = tmp / "train.tsv"
        train_file.write_text("text\tlabel\n" + "".join(f"{' '.join(t.split())}\t{y}\n" for t, y in rows),
                              encoding="utf-8")
        m_loss, m_logits, m_weights = run_minift(start, train_file, a, tmp / "minift")
        t_loss, t_logits, t_weights, before = run_trainer(start, rows, a, tmp / "trainer")
    shared = [k for k in m_weights if k in t_weights]
    weight_diff = max(float((m_weights[k] - t_weights[k]).abs().max()) for k in shared)
    moved = max(float((t_weights[k] - start_weights[k]).abs().max()) for k in shared if k in start_weights)
    report = {
        "model": a.model, "rows": len(rows), "updates": a.steps, "lr": a.lr, "warmup": a.warmup,
        "loss_minift": [round(x, 6) for x in m_loss], "loss_trainer": [round(x, 6) for x in t_loss],
        "max_loss_diff": max(abs(x - y) for x, y in zip(m_loss, t_loss)),
        "max_logit_diff": float((m_logits - t_logits).abs().max()),
        "logit_change_in_training": float((t_logits - before).abs().max()),  # what the check would miss
        "max_weight_diff": weight_diff, "weight_change_in_training": moved, "weights_compared": len(shared), "weights_in_trainer": len(t_weights),
    }
    report["same"] = (len(m_loss) == len(t_loss) == a.steps and report["max_loss_diff"] < LOSS_TOL
                      and report["max_logit_diff"] < LOGIT_TOL and weight_diff < WEIGHT_TOL
                      and len(shared) == len(t_weights))
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=MODEL, help="hub name or folder of a BERT-family encoder")
    p.add_argument("--steps", type=int, default=6, help="updates (= epochs of one full batch)")
    p.add_argument("--rows", type=int, default=32, help="rows, and the batch size")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=2, help="warmup updates (then linear decay to 0)")
    a = p.parse_args(argv)
    report = compare(a)
    print(json.dumps(report, indent=1))
    return 0 if report["same"] else 1


if __name__ == "__main__":
    sys.exit(main())

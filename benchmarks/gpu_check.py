"""GPU check: minift on a CUDA GPU, in one script. Four parts, each printed and saved to `--out` (JSON):

    1. parity   the encoder parity tests (tests/test_encoder.py) run on the GPU (MINIFT_TEST_DEVICE=cuda), and the
                real all-MiniLM-L6-v2 against `transformers` on the GPU: largest difference of the hidden states
                (real tokens) and of the pooled output, in fp32 and under bf16 autocast
    2. speed    benchmarks/encoder_speed.py on the GPU (minift vs transformers BertModel, forward + backward),
                fp32 and bf16
    3. finetune a short bf16 fine-tuning of all-MiniLM-L6-v2 on SST-2 rows through `minift.train`
                (`--precision bf16 --device cuda`): validation accuracy, wall time, examples/s and tokens/s
    4. MFU      model FLOPs utilisation of that run (Chowdhery et al., 2022, "PaLM", appendix B): a training
                step costs about 6·N + 12·L·H·T FLOPs per token (N non-embedding weights, L layers, hidden H,
                T tokens a sequence attends over), so MFU = tokens/s · (6·N + 12·L·H·T) / peak FLOP/s. The
                peak is the card's dense bf16 figure (989 TFLOP/s for an H100/H200 SXM), and also a measured
                8192³ bf16 matrix product, the peak this card reaches in practice

    HF_HUB_CACHE=../shared/hf-cache HF_HUB_OFFLINE=1 python benchmarks/gpu_check.py [--rows 8000] [--out FILE]

`--device cpu --rows 64` runs the same code on the CPU (no MFU): a smoke run to check the script before a GPU run.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
if (ROOT.parent / "shared" / "hf-cache").is_dir():
    os.environ.setdefault("HF_HUB_CACHE", str(ROOT.parent / "shared" / "hf-cache"))

import torch  # noqa: E402

from minift import train  # noqa: E402
from minift.encoder import Encoder  # noqa: E402
from minift.tokenizer import Tokenizer  # noqa: E402
from sentence_tasks import read_sst2, split, write_tsv  # noqa: E402  (beside this script)

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "A100": 312e12}  # dense bf16 FLOP/s of the SXM cards


def parity(device: torch.device, pytest: bool = True) -> dict:
    """The parity tests on the GPU (unless `pytest` is False), then the real checkpoint against transformers."""
    out, start = {}, time.time()
    command = [sys.executable, "-m", "pytest", str(ROOT / "tests" / "test_encoder.py"), "-q", "-p", "no:cacheprovider"]
    run = None if not pytest else subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                                                 env={**os.environ, "MINIFT_TEST_DEVICE": str(device)})
    if run is not None:
        summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-500:]
        print(f"parity tests on {device}: {summary}", flush=True)
        if run.returncode:
            print(run.stdout[-3000:], run.stderr[-2000:])
        out = {"pytest_test_encoder": summary, "pytest_returncode": run.returncode,
               "pytest_seconds": round(time.time() - start, 1)}

    from transformers import AutoModel
    ours = Encoder.from_pretrained(MODEL).to(device).eval()
    hf = AutoModel.from_pretrained(MODEL, attn_implementation="sdpa").to(device).eval()
    tok = Tokenizer.from_pretrained(MODEL)
    texts = [t for t, _, _ in read_sst2()[:64]]
    enc = tok(texts, max_length=128)
    ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
    types = enc["token_type_ids"].to(device)
    real = mask.bool()
    for precision in ("fp32", "bf16"):
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=types)
            got = ours(ids, mask, types)
            pooled = ours.pool(got)
        out[f"minilm_{precision}_hidden_max_diff"] = float((ref.last_hidden_state[real].float()
                                                            - got[real].float()).abs().max())
        out[f"minilm_{precision}_pooled_max_diff"] = float((ref.pooler_output.float() - pooled.float()).abs().max())
    with torch.no_grad():
        slow = ours.use_reference_attention(True)(ids, mask, types)
        fast = ours.use_reference_attention(False)(ids, mask, types)
    out["minilm_reference_vs_fast_attention_max_diff"] = float((slow[real] - fast[real]).abs().max())
    print(f"real checkpoint on {device}: " + ", ".join(f"{k} {v:.2e}" for k, v in out.items()
                                                       if k.startswith("minilm")), flush=True)
    return out


def speed(device: torch.device, steps: int) -> dict:
    out = {}
    for precision in ("fp32", "bf16"):
        run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "encoder_speed.py"), "--device",
                              str(device), "--grid", "32x128", "--modes", "train", "--steps", str(steps),
                              "--warmup", str(max(steps // 5, 1)), "--precision", precision],
                             cwd=ROOT, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        print(run.stdout.strip(), flush=True)
        ratio = re.search(r"32 x 128  train  minift / transformers +([\d.]+)", run.stdout)
        out[precision] = {"report": run.stdout.strip().splitlines() or run.stderr[-1000:],
                          "time_ratio": float(ratio.group(1)) if ratio else None}
    return out


def matmul_peak(n: int = 8192, repeats: int = 10) -> float:
    """Measured bf16 FLOP/s of an n³ matrix product (mean of `repeats` after 3 warm-ups)."""
    a, b = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def finetune(rows: int, device: torch.device) -> dict:
    """bf16 fine-tuning through the CLI entry point on `rows` SST-2 rows (one epoch), scored on 872 other rows
    (fewer in a smoke run: a quarter of `rows`)."""
    n_valid = min(872, max(rows // 4, 32))
    train_rows, valid_rows = split(read_sst2(), rows, n_valid, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, part in (("train", train_rows), ("valid", valid_rows)):
            write_tsv(tmp / f"{name}.tsv", part, pair=False)
        argv = ["--task", "classification", "--train", str(tmp / "train.tsv"), "--valid", str(tmp / "valid.tsv"),
                "--text-col", "text", "--label-col", "label", "--model", MODEL, "--out", str(tmp / "run"),
                "--epochs", "1", "--batch-size", "32", "--lr", "1e-4", "--max-length", "128", "--seed", "42",
                "--precision", "bf16", "--device", str(device), "--quiet"]
        start = time.time()
        results = train.train(train.parser().parse_args(argv))
        wall = time.time() - start
        log = [json.loads(line) for line in (tmp / "run" / "metrics.jsonl").read_text().splitlines()]
    model = Encoder.from_pretrained(MODEL)
    cfg = model.cfg
    n = sum(p.numel() for name, p in model.named_parameters() if not name.startswith("embeddings"))
    enc = Tokenizer.from_pretrained(MODEL)([t for t, _, _ in train_rows], max_length=128)
    T = float(enc["attention_mask"].sum(1).float().mean())  # tokens per sequence, specials included
    flops_per_token = 6 * n + 12 * cfg.num_layers * cfg.hidden_size * T
    tokens_per_s = log[-1]["tokens_per_s"]
    achieved = tokens_per_s * flops_per_token
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    measured = matmul_peak() if device.type == "cuda" else float("nan")
    out = {"rows": rows, "valid_rows": n_valid, "valid_accuracy": results["valid"]["accuracy"],
           "wall_s": round(wall, 1), "train_seconds": results["train_seconds"],
           "examples_per_s": log[-1]["examples_per_s"], "tokens_per_s": tokens_per_s,
           "non_embedding_params": n, "mean_tokens_per_sequence": round(T, 1),
           "flops_per_token": flops_per_token, "achieved_tflops": round(achieved / 1e12, 2),
           "peak_tflops_spec": peak and peak / 1e12, "mfu_vs_spec": peak and round(achieved / peak, 4),
           "measured_matmul_tflops": round(measured / 1e12, 1), "mfu_vs_measured": round(achieved / measured, 4)}
    print("bf16 fine-tuning: " + ", ".join(f"{k} {v}" for k, v in out.items()), flush=True)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=8000, help="SST-2 training rows for the bf16 fine-tuning")
    p.add_argument("--parts", default="parity,speed,finetune", help="any of parity, speed, finetune")
    p.add_argument("--no-pytest", action="store_true", help="parity: skip tests/test_encoder.py on the device")
    p.add_argument("--speed-steps", type=int, default=50, help="timed steps of encoder_speed.py")
    p.add_argument("--device", default="cuda", help="cuda; cpu only for a smoke run of this script")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "gpu_check.json"))
    a = p.parse_args(argv)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA GPU visible to torch; run this on a machine with one")
    report = {"gpu": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "torch": torch.__version__,
              "cuda": torch.version.cuda, "date": time.strftime("%Y-%m-%d %H:%M")}
    print(report, flush=True)
    parts = {"parity": lambda: parity(device, not a.no_pytest), "speed": lambda: speed(device, a.speed_steps),
             "finetune": lambda: finetune(a.rows, device)}
    for name in a.parts.split(","):
        try:
            report[name] = parts[name]()
        except Exception as e:  # one broken part must not hide the others' results
            report[name] = {"error": f"{type(e).__name__}: {e}"}
            print(f"{name} failed: {type(e).__name__}: {e}", flush=True)
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(report, indent=2, default=float) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

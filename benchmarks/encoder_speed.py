"""Forward + backward time of minift's encoder vs `transformers.BertModel` (SDPA attention), same weights.

A random MiniLM-sized BERT (hidden 384, 6 layers, 12 heads, intermediate 1536) is built by `transformers`, saved,
and loaded by minift, so both models hold identical weights. Both are timed in this one process, alternating
step by step so that machine noise hits both alike; the median of `--steps` steps after `--warmup` is reported,
in wall time and in this process's CPU time (the steadier of the two when other work shares the machine).

    python benchmarks/encoder_speed.py [--batch 32] [--seq 128] [--steps 15] [--device cpu] [--precision bf16]

`--precision bf16` runs both forward passes under `torch.autocast(dtype=torch.bfloat16)` (on a GPU; a CPU without
bf16 instructions emulates it slowly). On CUDA each step ends with `torch.cuda.synchronize()` before the clock stops.
"""
import argparse
import statistics
import tempfile
import time

import torch
from transformers import BertConfig, BertModel

from minift.encoder import Encoder


AUTOCAST = {"fp32": None, "bf16": torch.bfloat16}


def step_time(model, inputs, hf: bool, precision: str = "fp32") -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) for one forward + backward step."""
    device = inputs["input_ids"].device.type
    start, cpu = time.perf_counter(), time.process_time()
    with torch.autocast(device, dtype=AUTOCAST[precision], enabled=precision != "fp32"):
        out = model(**inputs).last_hidden_state if hf else model(**inputs)
    out.float().pow(2).mean().backward()
    if inputs["input_ids"].is_cuda:
        torch.cuda.synchronize()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - start, time.process_time() - cpu


def peak_memory_mb(model, inputs, hf: bool, precision: str = "fp32") -> float:
    """Peak bytes of tensors alive during one step (CUDA allocator, or the CPU profiler's memory events)."""
    if inputs["input_ids"].is_cuda:
        torch.cuda.reset_peak_memory_stats()
        step_time(model, inputs, hf, precision)
        return torch.cuda.max_memory_allocated() / 2**20
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step_time(model, inputs, hf, precision)
    current = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        current += event.cpu_memory_usage if not event.cpu_children else 0
        peak = max(peak, current)
    return peak / 2**20


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=sorted(AUTOCAST))
    args = ap.parse_args()

    torch.manual_seed(0)
    cfg = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
                     attn_implementation="sdpa")
    hf = BertModel(cfg)
    assert hf.config._attn_implementation == "sdpa", hf.config._attn_implementation
    with tempfile.TemporaryDirectory() as tmp:
        hf.save_pretrained(tmp)
        ours = Encoder.from_pretrained(tmp)
    hf, ours = hf.to(args.device).train(), ours.to(args.device).train()

    ids = torch.randint(1000, cfg.vocab_size, (args.batch, args.seq), device=args.device)
    mask = torch.ones_like(ids)
    mask[: args.batch // 2, args.seq * 3 // 4:] = 0  # half the batch padded, as in real batches
    inputs = {"input_ids": ids, "attention_mask": mask}

    # minift twice: per-token layers on the real tokens only (`pack = True`) and on the padded batch, as
    # transformers does (`pack = False`); its default (`pack = None`) packs on a CPU only.
    variants = {"minift-packed": True, "minift-padded": False}
    times = {name: [] for name in (*variants, "transformers")}
    for i in range(args.warmup + args.steps):
        for name in times:
            ours.pack = variants.get(name)
            t = step_time(hf if name == "transformers" else ours, inputs, hf=name == "transformers",
                          precision=args.precision)
            if i >= args.warmup:
                times[name].append(t)
    med = {name: statistics.median(t[0] for t in ts) for name, ts in times.items()}
    cpu = {name: statistics.median(t[1] for t in ts) for name, ts in times.items()}
    mem = {}
    for name in times:
        ours.pack = variants.get(name)
        mem[name] = peak_memory_mb(hf if name == "transformers" else ours, inputs, name == "transformers",
                                   args.precision)
    ours.pack = None
    default = "minift-packed" if args.device == "cpu" else "minift-padded"
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"device {args.device} ({name}), {args.precision}, batch {args.batch} x {args.seq} tokens, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"median of {args.steps} forward+backward steps")
    for name in med:
        print(f"  {name:14s} {med[name] * 1000:8.1f} ms/step   CPU {cpu[name] * 1000:8.1f} ms/step   "
              f"peak memory {mem[name]:8.1f} MiB")
    for name in variants:
        print(f"  time ratio {name} / transformers = {med[name] / med['transformers']:.3f} "
              f"(CPU time ratio {cpu[name] / cpu['transformers']:.3f})")
    print(f"  time ratio minift / transformers = {med[default] / med['transformers']:.3f} "
          f"(minift's default on {args.device} is {default}; the CPU time ratio is steadier when other work "
          "shares the machine)")


if __name__ == "__main__":
    main()

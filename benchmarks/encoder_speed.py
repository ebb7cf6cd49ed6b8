"""Speed and peak memory of minift's encoder vs `transformers.BertModel` (SDPA attention), same weights, a grid.

A random MiniLM-sized BERT (hidden 384, 6 layers, 12 heads, intermediate 1536, dropout 0.1) is built by
`transformers`, saved, and loaded by both, so both hold identical weights and dropouts. Each row of the grid is a
batch (B x T tokens, half the rows padded to 3/4 of T, as real batches are) and a mode:

    train   forward + backward in train mode (dropout on), loss = mean of the squared hidden states
    infer   forward only, eval mode, under torch.inference_mode()
    +ckpt   (T = 512, train) the same with gradient checkpointing: minift's `Encoder.gradient_checkpointing`,
            transformers' `gradient_checkpointing_enable(use_reentrant=False)`

Time: both models live in one process and are stepped alternately (minift, transformers, minift, ...), so that
noise from other work on the machine hits both alike; the median of the steps after a warmup is reported in wall
time and in this process's CPU time (steadier on a shared machine: it does not count time waiting for a core).

Peak memory: each (system, batch, mode) runs in a fresh subprocess that loads one model and takes one step. On a
CPU it is the process's resident-set high-water mark (Linux VmHWM, reset through /proc/self/clear_refs just before
the step) minus the resident set before it: what the step adds, as the OS counts it (so what an out-of-memory
kill counts), including memory torch's profiler does not see (oneDNN scratch space, the allocator's slack) and
without guessing how profiler events nest. One step in a fresh process, because a second step would reuse memory
that the C allocator kept after the first and so look smaller. On CUDA: max_memory_allocated - memory_allocated.

Model FLOPs count the useful work only: the real tokens' matrix products (2 FLOPs per multiply-add) and attention
over each row's real keys; forward + backward is 3x the forward. Utilisation is model FLOPs per CPU second
against a plain fp32 `torch.mm` (2048 x 2048) per CPU second, measured in this same process.

    python benchmarks/encoder_speed.py [--grid 32x32,32x128,32x512,8x512] [--modes train,infer] [--steps 10]
        [--threads 2] [--device cpu] [--precision bf16] [--no-memory] [--out benchmarks/results/encoder_speed_cpu.json]

On CUDA each step ends with `torch.cuda.synchronize()` before the clock stops.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import BertConfig, BertModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from minift.encoder import Encoder  # noqa: E402

AUTOCAST = {"fp32": None, "bf16": torch.bfloat16}
CFG = dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
SYSTEMS = ("minift", "transformers")


def load(system: str, folder: str, device: str):
    """minift's Encoder or transformers' BertModel (SDPA) from the same folder; `+ckpt` turns on checkpointing."""
    if system.startswith("minift"):
        model = Encoder.from_pretrained(folder)
    else:
        model = BertModel.from_pretrained(folder, attn_implementation="sdpa")
        assert model.config._attn_implementation == "sdpa", model.config._attn_implementation
    checkpointing(model, system.endswith("+ckpt"))
    return model.to(device)


def checkpointing(model, on: bool) -> None:
    """Switch gradient checkpointing on or off, in minift or in transformers."""
    if isinstance(model, Encoder):
        model.gradient_checkpointing = on
    elif on:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_disable()


def make_inputs(B: int, T: int, device: str) -> dict:
    g = torch.Generator().manual_seed(B * 1000 + T)
    ids = torch.randint(1000, 30000, (B, T), generator=g)
    mask = torch.ones_like(ids)
    mask[: B // 2, T * 3 // 4:] = 0  # half the batch padded, as in real batches
    return {"input_ids": ids.masked_fill(mask == 0, 0).to(device), "attention_mask": mask.to(device)}


def step(model, inputs, mode: str, precision: str) -> None:
    """One forward (+ backward in train mode) step."""
    hf = isinstance(model, BertModel)
    device = inputs["input_ids"].device.type
    model.train(mode == "train")
    grad = torch.enable_grad() if mode == "train" else torch.inference_mode()
    with grad, torch.autocast(device, dtype=AUTOCAST[precision], enabled=precision != "fp32"):
        out = model(**inputs)
        out = out.last_hidden_state if hf else out
        if mode == "train":
            out.float().pow(2).mean().backward()
    if device == "cuda":
        torch.cuda.synchronize()
    model.zero_grad(set_to_none=True)


def timed(model, inputs, mode, precision) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one step."""
    start, cpu = time.perf_counter(), time.process_time()
    step(model, inputs, mode, precision)
    return time.perf_counter() - start, time.process_time() - cpu


def model_flops(mask: torch.Tensor, mode: str) -> float:
    """Useful FLOPs of a step: per layer and real token 2(4H² + 2HI) for the projections and feed-forward, and per
    layer 4·n²·H for a row of n real tokens (Q Kᵀ and the weighted sum of V); backward = 2x forward."""
    H, I, L = CFG["hidden_size"], CFG["intermediate_size"], CFG["num_hidden_layers"]
    n = mask.sum(dim=1).double()
    forward = L * (float(n.sum()) * 2 * (4 * H * H + 2 * H * I) + float((n ** 2).sum()) * 4 * H)
    return forward * (3 if mode == "train" else 1)


def matmul_peak(device: str, n: int = 2048, reps: int = 7) -> dict:
    """FLOPs per second of a plain fp32 torch.mm, by wall time and by this process's CPU time (median)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    walls, cpus = [], []
    for i in range(reps + 2):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start, cpu = time.perf_counter(), time.process_time()
        torch.mm(a, b)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        if i >= 2:
            walls.append(time.perf_counter() - start)
            cpus.append(time.process_time() - cpu)
    flops = 2 * n ** 3
    return {"n": n, "gflops_wall": flops / statistics.median(walls) / 1e9,
            "gflops_cpu": flops / statistics.median(cpus) / 1e9}


def status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def memory_child(system, B, T, mode, folder, device, precision) -> dict:
    """In a fresh process: the peak memory one step adds (see the module docstring)."""
    model, inputs = load(system, folder, device), make_inputs(B, T, device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated() / 2**20
        step(model, inputs, mode, precision)
        return {"peak_mib": torch.cuda.max_memory_allocated() / 2**20 - before, "before_mib": before}
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current resident set
    before = status_mib("VmRSS")
    step(model, inputs, mode, precision)
    return {"peak_mib": status_mib("VmHWM") - before, "before_mib": before}


def measure_memory(system, B, T, mode, folder, args) -> float:
    cmd = [sys.executable, __file__, "--child", f"{system},{B},{T},{mode},{folder}", "--device", args.device,
           "--precision", args.precision, "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_mib"]


def time_row(models, B, T, mode, args) -> dict:
    """Median (wall, CPU) seconds per step of each model in `models`, stepped alternately."""
    inputs = make_inputs(B, T, args.device)
    steps = max(args.min_steps, args.steps * 128 // max(T, 128))  # fewer steps where a step takes seconds
    times = {name: [] for name in models}
    for i in range(args.warmup + steps):
        for name, model in models.items():
            checkpointing(model, name.endswith("+ckpt"))
            t = timed(model, inputs, mode, args.precision)
            if i >= args.warmup:
                times[name].append(t)
    return {name: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts), steps)
            for name, ts in times.items()}


def grid(args, folder, peak) -> list[dict]:
    models = {s: load(s, folder, args.device) for s in SYSTEMS}
    rows = []
    for B, T in args.grid:
        for mode in args.modes:
            systems = list(SYSTEMS)
            if T >= 512 and mode == "train":
                systems += [s + "+ckpt" for s in SYSTEMS]
            # one model object per library: checkpointing is switched on and off between steps
            variants = {s: models[s.split("+")[0]] for s in systems}
            times = time_row(variants, B, T, mode, args)
            flops = model_flops(make_inputs(B, T, "cpu")["attention_mask"], mode)
            for s in systems:
                wall, cpu, steps = times[s]
                mem = None if args.no_memory else measure_memory(s, B, T, mode, folder, args)
                rows.append({"batch": B, "seq": T, "mode": mode, "system": s, "steps": steps,
                             "wall_ms": wall * 1e3, "cpu_ms": cpu * 1e3, "peak_mib": mem,
                             "gflops_wall": flops / wall / 1e9, "utilisation_cpu": flops / cpu / 1e9 / peak["gflops_cpu"]})
                print(format_row(rows[-1]), flush=True)
    return rows


def format_row(r: dict) -> str:
    mem = "      -" if r["peak_mib"] is None else f"{r['peak_mib']:7.0f}"
    return (f"  {r['batch']:3d} x {r['seq']:3d}  {r['mode']:5s}  {r['system']:18s} {r['wall_ms']:9.1f} ms "
            f"{r['cpu_ms']:9.1f} ms CPU  {mem} MiB  {r['gflops_wall']:6.1f} GFLOP/s  "
            f"{100 * r['utilisation_cpu']:4.0f}% of mm")


def ratios(rows: list[dict]) -> list[dict]:
    """minift / transformers (and each with checkpointing / without) for time, CPU time and memory."""
    by = {(r["batch"], r["seq"], r["mode"], r["system"]): r for r in rows}
    out = []
    for (B, T, mode, s), r in by.items():
        base = {"minift": "transformers", "minift+ckpt": "minift", "transformers+ckpt": "transformers"}.get(s)
        if base is None or (B, T, mode, base) not in by:
            continue
        o = by[(B, T, mode, base)]
        mem = None if r["peak_mib"] is None else r["peak_mib"] / o["peak_mib"]
        out.append({"batch": B, "seq": T, "mode": mode, "ratio": f"{s} / {base}", "wall": r["wall_ms"] / o["wall_ms"],
                    "cpu": r["cpu_ms"] / o["cpu_ms"], "memory": mem})
    return out


def parse_grid(text: str) -> list[tuple[int, int]]:
    return [tuple(int(x) for x in item.split("x")) for item in text.split(",")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=parse_grid, default=parse_grid("32x32,32x128,32x512,8x512"),
                    help="batch x tokens, comma-separated")
    ap.add_argument("--modes", type=lambda s: s.split(","), default=["train", "infer"])
    ap.add_argument("--steps", type=int, default=10, help="timed steps at T <= 128 (fewer above, T = 512: 1/4)")
    ap.add_argument("--min-steps", type=int, default=5, help="but at least this many")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=sorted(AUTOCAST))
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--out", help="write the rows, ratios and machine to this JSON file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        system, B, T, mode, folder = args.child.split(",")
        print(json.dumps(memory_child(system, int(B), int(T), mode, folder, args.device, args.precision)))
        return

    load_before = os.getloadavg()
    torch.manual_seed(0)
    peak = matmul_peak(args.device)
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"device {args.device} ({name}), {args.precision}, torch {torch.__version__}, {args.threads} threads, "
          f"load average {load_before[0]:.2f}; fp32 torch.mm {peak['gflops_wall']:.1f} GFLOP/s "
          f"({peak['gflops_cpu']:.1f} per CPU second)")
    with tempfile.TemporaryDirectory() as folder:
        BertModel(BertConfig(**CFG, attn_implementation="sdpa")).save_pretrained(folder)
        rows = grid(args, folder, peak)
    print("ratios (time, CPU time, peak memory):")
    table = ratios(rows)
    for r in table:
        mem = "-" if r["memory"] is None else f"{r['memory']:.3f}"
        print(f"  {r['batch']:3d} x {r['seq']:3d}  {r['mode']:5s}  {r['ratio']:30s} {r['wall']:.3f}  "
              f"{r['cpu']:.3f}  {mem}")
    if args.out:
        run = {"argv": sys.argv[1:], "device": args.device, "device_name": name, "precision": args.precision,
               "threads": args.threads, "torch": torch.__version__, "matmul_peak": peak,
               "load_average_before": load_before, "load_average_after": os.getloadavg(),
               "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                        cwd=Path(__file__).parent).stdout.strip()}
        save(Path(args.out), run, rows)


def save(path: Path, run: dict, rows: list[dict]) -> None:
    """Merge this run's rows into the JSON file (a grid may be measured in parts); each row keeps its run."""
    old = json.loads(path.read_text())["rows"] if path.exists() else []
    key = lambda r: (r["batch"], r["seq"], r["mode"], r["system"])  # noqa: E731
    mine = {key(r) for r in rows}
    merged = [r for r in old if key(r) not in mine] + [{**r, "run": run} for r in rows]
    merged.sort(key=lambda r: (r["seq"], -r["batch"], r["mode"], r["system"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rows": merged, "ratios": ratios(merged)}, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Lesson 16: training for real, and on a CPU: accumulation, mixed precision, checkpoints and resume, Ctrl-C,
torchrun, and what makes CPU fine-tuning fast; then the questions people ask, answered from the course's results.

Run:  python tutorials/16_training_for_real.py          (seconds: a tiny random BERT on the bundled reviews)
      python tutorials/16_training_for_real.py --full   (times a short SST-2 fine-tune of all-MiniLM-L6-v2 at 1 and 2
                                                          threads, with and without --bucket, and torchrun with 2
                                                          processes against one; writes
                                                          tutorials/results/16_training_for_real.json)

Lessons 5 to 9 trained in a loop of a page. `python -m minift.train` runs the same loop with what a long run
needs: more examples per update than fit in memory (--accumulate), 16-bit arithmetic (--precision), checkpoints
to resume from after a crash or a Ctrl-C (--save-every, --resume), several processes (torchrun), and the speed
settings of a CPU (--bucket, threads, freezing). Each is shown here on a tiny random model (2 layers of width 32
over MiniLM's vocabulary, written to a temporary folder), so that whole training runs take a second; the speed
figures come from the committed measurements on the real model.

Read beside it: minift/step.py (update), minift/train.py (fit, checkpoint, LoopState), minift/precision.py (autocast,
grad_scaler), minift/resume.py (save, load), minift/faults.py (StopRequest), minift/distributed.py (shard, wrap),
minift/batching.py (length_bucketed_batches), minift/packing.py, and `python -m minift.train --help`.

What makes a CPU run fast, from the committed files (all on an AMD EPYC with 2 cores shared with other jobs,
torch 2.13.0+cpu; each figure is read back from its file and checked by step 6 below):
- Tokens are the cost. One training step of 32 sequences of MiniLM costs 0.98 CPU s at 32 tokens and 3.86 CPU s
  at 128 (benchmarks/results/encoder_speed_cpu.json, one thread, per-step medians).
- So pad less. On SST-2 in batches of 32, padding to a fixed 128 tokens makes 89.6 % of the tokens padding,
  padding each batch to its longest 66.8 %, and length bucketing (--bucket) 4.5 %; the encoder's CPU time for
  256 sentences: 10.19 s, 3.14 s and 1.25 s (tutorials/results/02_padding.json).
- Packing: on a CPU minift runs the per-token layers on the real tokens only (minift/packing.py): a 32 x 128
  training step takes 0.88 of transformers' CPU time (encoder_speed_cpu.json, ratios).
- Train less of the model. 40 steps on 1,000 SST-2 rows: the linear probe 5.1 CPU s, full fine-tuning 19.5
  (tutorials/results/08_what_to_train.json). LoRA on the query and value projections, 2,000 SST-2 rows, one epoch:
  accuracy 0.854 against full fine-tuning's 0.848, 123 s against 218 s of training, a 301,520-byte adapter
  against a 90,867,952-byte model (benchmarks/results/lora_sst2.json, lr 3e-3 and 1e-4).
- Predicting: `python -m minift.predict` runs 215.7 sentences per CPU second against the transformers
  pipeline's 89.6 (benchmarks/results/predict_speed_cpu.json, 10,000 lines, one thread).
- The whole model, SST-2 on 5,000 rows, one epoch, one thread: accuracy 0.888 in 2,118 s of training
  (benchmarks/results/sentence_tasks.json); on 20,000 rows, 2 threads, four seeds: 0.906 to 0.913
  (benchmarks/results/sst2_seeds_cpu.json).
This lesson's --full measurement (tutorials/results/16_training_for_real.json, the command above, same machine;
274 CPU s, 10 min 23 s of wall time, load average 10.7 when it started): one epoch of full fine-tuning on 640
SST-2 rows (20 updates of 32). One thread: 15.5 CPU s (51.3 s wall) with random batches, 16.2 CPU s (27.2 s) with
--bucket, though bucketing cut the tokens computed from 23,904 to 9,568 (8,327 real): on a CPU packing already
skips the padding, so bucketing saves padding work mainly where packing does not run (a GPU, or the figures of
lesson 2). Two threads on two cores that other jobs keep busy: 127.6 CPU s (326.3 s wall) and 68.8 CPU s
(120.8 s): threads that wait for each other on busy cores spin, so on a shared machine use fewer threads than
cores (OMP_NUM_THREADS=1 here). torchrun on the tiny model, 8 updates: 2 processes 17.5 s against 1 process
14.7 s (start-up dominates so small a job), final weights within 4.9e-08 of each other.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import torch
from safetensors.torch import load_file

from course import MODEL, ROOT, arguments, load, save
from minift import Encoder, Tokenizer, distributed, optim, precision, step, train
from minift.checkpoint import resolve
from minift.config import EncoderConfig
from minift.data import LabelMap, read_table
from minift.freeze import count_parameters
from minift.tasks.sentence import SentenceTask

args = arguments(__doc__).parse_args()
work = Path(tempfile.mkdtemp(prefix="minift-lesson16-"))
SENTIMENT = str(resources.files("minift") / "bundled" / "sentiment.csv")


def tiny_model(folder: Path, dropout: float) -> str:
    """A random 2-layer BERT of width 32 with all-MiniLM-L6-v2's tokenizer, written like a pretrained folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (resolve(MODEL) / name).is_file():
            shutil.copy(resolve(MODEL) / name, folder / name)
    torch.manual_seed(0)
    cfg = EncoderConfig(vocab_size=30522, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                        max_positions=128, type_vocab_size=2, hidden_dropout=dropout, attention_dropout=dropout,
                        raw={"model_type": "bert", "hidden_dropout_prob": dropout})
    Encoder(cfg).save_pretrained(folder)
    return str(folder)


tiny = tiny_model(work / "tiny", dropout=0.1)
tokenizer = Tokenizer.from_pretrained(tiny)
rows = read_table(SENTIMENT, "text", "label")

# 1. Accumulation. `--batch-size 2 --accumulate 4` makes one update from 4 micro-batches of 2 rows: what a batch of
#    8 would give, in the memory of 2. minift's update (step.update) makes that exact: each micro-batch's loss is
#    a *sum* (task.loss returns it with its count), the backward passes add their gradients up, and the total is
#    divided once by the count of the whole update. Averaging each micro-batch first and then the averages is not
#    the same when the micro-batches hold different counts (8 rows as 3 + 3 + 2, or any token-level task, where
#    each micro-batch has its own number of tokens). With SGD at lr 1, one update moves each weight by exactly
#    minus its gradient, so the gradients can be read off the weights. Dropout off: the splits must compute alike;
#    and float64, so that what is left of the difference is rounding at 1e-16, not float32's 1e-7.
task = SentenceTask("classification", tokenizer, {"text": "text", "label": "label"}, max_length=64,
                    labels=LabelMap(["negative", "positive"]))
features = task.featurize(rows[:8])


def gradient_of(splits: list[int], naive: bool = False) -> tuple[torch.Tensor, float]:
    """The gradient of one update over features[:8] cut into micro-batches of the given sizes (and its loss)."""
    torch.manual_seed(0)
    model = task.build_model(Encoder.from_pretrained(tiny).set_dropout(0.0, 0.0)).double().train()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    opt = optim.SGD(model.parameters(), lr=1.0)
    starts = [sum(splits[:i]) for i in range(len(splits))]
    micro = [next(task.batches(features[s:s + n], n)) for s, n in zip(starts, splits)]  # each padded to its own
    if naive:  # mean of each micro-batch, then the mean of those means
        loss = lambda m, b: (task.loss(m, b)[0] / len(b["labels"]) / len(splits), 1 / len(splits))
    else:
        loss = task.loss
    done = step.update(model, opt, precision.grad_scaler("fp32", torch.device("cpu")), micro, loss,
                        torch.device("cpu"), lr_scale=1.0)
    return before - torch.cat([p.detach().flatten() for p in model.parameters()]), done.loss


g8, loss8 = gradient_of([8])
g2222, loss2222 = gradient_of([2, 2, 2, 2])
g332, loss332 = gradient_of([3, 3, 2])
naive332, _ = gradient_of([3, 3, 2], naive=True)
err = lambda g: float((g - g8).abs().max() / g8.abs().max())
print(f"one batch of 8: loss {loss8:.6f}, gradient norm {float(g8.norm()):.4f}; relative difference of the gradient: "
      f"4 x 2 {err(g2222):.1e}, 3 + 3 + 2 {err(g332):.1e}, 3 + 3 + 2 averaged per micro-batch {err(naive332):.1e}")
assert abs(loss2222 - loss8) < 1e-6 and abs(loss332 - loss8) < 1e-6
assert err(g2222) < 1e-12 and err(g332) < 1e-12 and err(naive332) > 1e-3

# 2. Mixed precision (--precision bf16). Under torch.autocast the matrix products run in bfloat16: 8 bits of
#    exponent like float32 (the same range, so no loss scaling), 7 of mantissa instead of 23 (about 3 significant
#    digits). The weights stay float32, and minift's losses cast bf16 logits up to float32 before computing, so only
#    the forward pass is approximate. On the real model:
minilm = task.build_model(Encoder.from_pretrained(MODEL)).eval()
batch = next(task.batches(task.featurize(rows[:16]), 16))
with torch.no_grad():
    z32 = minilm(batch["input_ids"], batch["attention_mask"])  # (16, 2)
    with precision.autocast("bf16", torch.device("cpu")):
        z16 = minilm(batch["input_ids"], batch["attention_mask"])
        total, n = task.loss(minilm, batch)
print(f"bf16 autocast: logits {z16.dtype} (fp32 run: {z32.dtype}), largest difference "
      f"{float((z16.float() - z32).abs().max()):.4f} on logits up to {float(z32.abs().max()):.2f}; loss {total.dtype}; "
      f"weights {next(minilm.parameters()).dtype}; this CPU has bf16 instructions: {precision.cpu_has_native_bf16()}")
assert z16.dtype == torch.bfloat16 and total.dtype == torch.float32 and next(minilm.parameters()).dtype == torch.float32
assert 0 < float((z16.float() - z32).abs().max()) < 0.1
#    On a CPU without AVX512_BF16 or AMX, torch emulates bf16 and it is slower than fp32 (minift warns): on such a
#    machine bf16 is for checking a recipe before a GPU run, not for speed. fp16 (5 exponent bits) needs a
#    GradScaler against underflow, and minift allows it on CUDA only.

# 3. Checkpoints, Ctrl-C and --resume. Three runs of `python -m minift.train` on the tiny model (dropout on, so
#    the random state matters too), 6 updates of 16 rows each:
#      whole:   --save-every 2, never interrupted;
#      parts:   the same, but Ctrl-C arrives during update 4 (sent here from inside the loss, so it lands at the
#               same place every time). minift's handler only raises a flag; the loop finishes update 4, writes
#               OUT/checkpoints/step-4, and stops with KeyboardInterrupt naming the --resume to continue with;
#      resumed: the same flags and --resume OUT: weights, AdamW moments, random generators and the loop's place
#               in the epoch come back from step-4, and it trains updates 5 and 6.
#    Then step-6 of "whole" and of the resumed run must be equal bit for bit: model, optimizer and random state.
flags = ["--train", SENTIMENT, "--model", tiny, "--batch-size", "16", "--max-steps", "6", "--save-every", "2",
         "--lr", "1e-3", "--max-length", "64", "--seed", "7", "--quiet", "--device", "cpu"]
whole, parts = work / "whole", work / "parts"
train.main([*flags, "--out", str(whole)])
real_loss, calls = SentenceTask.loss, {"n": 0}


def ctrl_c_in_update_4(self, model, b):
    calls["n"] += 1
    if calls["n"] == 4:  # the 4th micro-batch: update 4 (--accumulate 1)
        signal.raise_signal(signal.SIGINT)  # what pressing Ctrl-C sends
    return real_loss(self, model, b)


SentenceTask.loss = ctrl_c_in_update_4
try:
    train.main([*flags, "--out", str(parts)])
    raise AssertionError("the run should have stopped")
except KeyboardInterrupt as stopped:
    print(f"Ctrl-C: KeyboardInterrupt({stopped})")
finally:
    SentenceTask.loss = real_loss
print("checkpoints after the interruption:", sorted(p.name for p in (parts / "checkpoints").iterdir()), "holding",
      sorted(p.name for p in (parts / "checkpoints" / "step-4").iterdir()))
assert (parts / "checkpoints" / "step-4").is_dir() and not (parts / "results.json").exists()
train.main([*flags, "--out", str(parts), "--resume", str(parts)])
compared = 0
for name in ("model.safetensors", "optimizer.safetensors", "rng.safetensors"):
    a, b = (load_file(d / "checkpoints" / "step-6" / name) for d in (whole, parts))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    compared += sum(v.numel() for v in a.values())
loops = [json.loads((d / "checkpoints" / "step-6" / "trainer_state.json").read_text())["loop"] for d in (whole, parts)]
assert loops[0] == loops[1]
print(f"resumed from step-4 and ran to step 6: model, AdamW state and random state bitwise equal to the "
      f"uninterrupted run's ({compared:,} numbers compared)")

# 4. torchrun: W processes, each with a copy of the model, each taking rows r, r + W, ... of every batch; DDP adds
#    their gradients up during the last backward of an update, and the loop divides by the count summed over all
#    of them, so W processes compute what one computes on the whole batch (minift/distributed.py). On a CPU the
#    processes talk through gloo; each should get its own cores (OMP_NUM_THREADS = cores / W). The command:
#        OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 -m minift.train --train data.csv --out run
#    --batch-size stays the global batch. Without torchrun every function in distributed.py is a no-op:
example = {"input_ids": torch.arange(6).reshape(3, 2)}
assert distributed.world_size() == 1 and distributed.shard(example) == (example, 1.0)
#    (--full launches it: 2 processes against 1 on the tiny model, and compares the weights; tests/test_distributed.py
#    does the same.)

# 5. What makes a CPU run fast. Tokens are the cost of every step (attention's part grows with their square), so:
#    --bucket (batches of similar lengths, little padding; on a CPU packing already skips most padding work, see
#    the --full figures), --max-length no longer than the data needs, a smaller model (MiniLM below: 6 layers of
#    width 384), and training less of it (--freeze, --lora). Threads: torch uses every core by default; on a
#    machine shared with other jobs, fewer threads than cores avoids waiting on busy ones. The figures quoted in the docstring, read back from their files:
R = ROOT / "benchmarks" / "results"


def row(rows_, **match):
    return next(r for r in rows_ if all(r[k] == v for k, v in match.items()))


speed = json.loads((R / "encoder_speed_cpu.json").read_text())
padding = load("02_padding")
what = load("08_what_to_train")
lora_runs = json.loads((R / "lora_sst2.json").read_text())["runs"]
predict = json.loads((R / "predict_speed_cpu.json").read_text())["throughput"]
sst2 = json.loads((R / "sentence_tasks.json").read_text())["runs"]["sst2/minift"]
seeds = json.loads((R / "sst2_seeds_cpu.json").read_text())["runs"]
quoted = [  # (the figure as the docstring writes it, the value in the file)
    ("0.98", row(speed["rows"], batch=32, seq=32, mode="train", system="minift")["cpu_ms"] / 1000),
    ("3.86", row(speed["rows"], batch=32, seq=128, mode="train", system="minift")["cpu_ms"] / 1000),
    ("0.88", row(speed["ratios"], batch=32, seq=128, mode="train", ratio="minift / transformers")["cpu"]),
    ("89.6", 100 * padding["batching"]["fixed max_length 128"]["padding_share"]),
    ("66.8", 100 * padding["batching"]["dynamic padding, random batches"]["padding_share"]),
    ("4.5", 100 * padding["batching"]["dynamic padding, length-bucketed"]["padding_share"]),
    ("10.19", padding["encoder_cpu_seconds_one_thread"]["fixed max_length 128"]),
    ("3.14", padding["encoder_cpu_seconds_one_thread"]["dynamic padding, random batches"]),
    ("1.25", padding["encoder_cpu_seconds_one_thread"]["dynamic padding, length-bucketed"]),
    ("5.1", what["methods"]["linear probe"]["cpu_seconds"]),
    ("19.5", what["methods"]["full fine-tuning"]["cpu_seconds"]),
    ("0.854", lora_runs["lora-qv/lr0.003"]["accuracy"]),
    ("0.848", lora_runs["full/lr0.0001"]["accuracy"]),
    ("123", lora_runs["lora-qv/lr0.003"]["train_seconds"]),
    ("218", lora_runs["full/lr0.0001"]["train_seconds"]),
    ("301,520", lora_runs["lora-qv/lr0.003"]["saved_bytes"]),
    ("90,867,952", lora_runs["full/lr0.0001"]["saved_bytes"]),
    ("215.7", predict["minift"]["sentences_per_cpu_s"]),
    ("89.6", predict["pipeline (batch 8)"]["sentences_per_cpu_s"]),
    ("0.888", sst2["metrics"]["accuracy"]),
    ("2,118", sst2["train_seconds"]),
    ("0.906", min(r["metrics"]["accuracy"] for k, r in seeds.items() if "/minift/" in k)),
    ("0.913", max(r["metrics"]["accuracy"] for k, r in seeds.items() if "/minift/" in k)),
]
for figure, value in quoted:  # rounded as written: "0.88" to 2 places, "301,520" to a whole number
    places = len(figure.split(".")[1]) if "." in figure else 0
    assert f"{value:,.{places}f}" == figure and figure in __doc__, (figure, value)
trainable, _ = count_parameters(minilm)
print(f"{len(quoted)} figures of the docstring match their files; all-MiniLM-L6-v2 with a 2-label head has "
      f"{trainable:,} weights, "
      f"{len(minilm.encoder.layers)} layers of width {minilm.encoder.cfg.hidden_size}")

# 6. The questions people ask, each answered by a lesson or a committed result.
#    Which model? A small sentence encoder first: all-MiniLM-L6-v2 (22.7 M weights, 6 layers) reaches 0.906-0.913 on
#      SST-2 from 20,000 rows in one epoch on 2 CPU cores (step 5); try a larger one only if that is not enough and
#      lesson 7 says the gain is real.
#    Which learning rate? 1e-4 to 3e-4 for the whole model, 1e-3 to 1e-2 for a head or adapters alone; lesson 6
#      sweeps it (06_lr_sweep.json: 0.756 at 1e-4 and 3e-4, 0.442 at 1e-6, 0.560 at 1e-2, after 30 steps), and
#      lesson 8 gives each method its own.
#    How much data? More than any regulariser: lesson 9's head on 100 / 1,000 / 10,000 SST-2 rows scores
#      0.694 / 0.774 / 0.844 (09_overfitting.json); a few hundred rows already fine-tune to a useful model.
#    How long on a CPU? Count tokens: about 1 CPU s per step of 32 sentences of 32 tokens, 4 at 128 tokens
#      (step 5); an epoch of 5,000 SST-2 sentences took 2,118 s on one thread (sentence_tasks.json).
#    Full fine-tuning or part of it? On 1,000 rows, lesson 8: frozen methods near 0.79, the rest near 0.83; LoRA
#      matches the whole model on 2,000 rows with a 300 KB adapter (lora_sst2.json); on 20,000 rows in one epoch
#      the layers' adapters stay 1.5-3 points under it, and with a rank-4 adapter on the word embeddings as well
#      (--lora-targets all,embeddings, 2% trainable) 0.2 points (lora_sst2_20k_cpu.json, four seeds). Freeze when
#      time, memory or storage per task matter; train everything when the last points do.
#    Imbalanced labels? Lesson 11: class weights, resampling, focal loss and the threshold; lesson 12 for
#      multi-label, where per-label thresholds are the cure for rare labels that never pass 0.5.
#    Overfitting? Watch the validation loss, keep the best evaluation (`--eval-every`, `--patience`), and add data
#      before regularisers (lesson 9).
#    Is my improvement real? Lesson 7: several seeds and the standard error of the difference, before believing it.
lr_sweep, curves = load("06_lr_sweep"), load("09_overfitting")
assert [round(lr_sweep["sweep"][k]["accuracy"], 3) for k in ("0.0001", "0.0003", "1e-06", "0.01")] == \
    [0.756, 0.756, 0.442, 0.56]
assert [round(curves["learning_curves"][n]["valid"]["accuracy"], 3) for n in ("100", "1000", "10000")] == \
    [0.694, 0.774, 0.844]


def time_epoch(features: list[dict], threads: int, bucket: bool) -> dict:
    """One epoch of full fine-tuning (MiniLM, AdamW lr 1e-4, batches of 32) through step.update, as the loop runs
    it: CPU and wall seconds of the updates alone, and the tokens computed (padding included) and real."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = task.build_model(Encoder.from_pretrained(MODEL)).train()
    opt = optim.AdamW(optim.param_groups(model, lr=1e-4, weight_decay=0.01))
    batches = list(task.batches(features, 32, seed=0, epoch=0, shuffle=True, bucket=bucket))
    scaler, cpu = precision.grad_scaler("fp32", torch.device("cpu")), torch.device("cpu")
    wall, cpu_s = time.perf_counter(), time.process_time()
    for b in batches:
        step.update(model, opt, scaler, [b], task.loss, cpu, lr_scale=1.0, max_grad_norm=1.0)
    return {"threads": threads, "bucket": bucket, "cpu_s": round(time.process_time() - cpu_s, 2),
            "wall_s": round(time.perf_counter() - wall, 2),
            "tokens_computed": sum(b["input_ids"].numel() for b in batches),
            "tokens_real": sum(int(b["attention_mask"].sum()) for b in batches)}


def torchrun(processes: int, out: Path) -> float:
    """`torchrun --nproc_per_node N -m minift.train` on the tiny model (dropout off); its wall seconds."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
           "-m", "minift.train", "--train", SENTIMENT, "--model", no_dropout, "--out", str(out), "--max-steps", "8",
           "--batch-size", "16", "--lr", "1e-3", "--max-length", "64", "--seed", "7", "--quiet", "--device", "cpu"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return round(time.perf_counter() - start, 1)


if args.full:
    sst = random.Random(0).sample(read_table(args.data_dir / "sst2" / "train.tsv", "sentence", "label"), 640)
    task.labels = LabelMap(["0", "1"])
    sst_features = task.featurize(sst)
    runs = [time_epoch(sst_features, threads, bucket) for threads in (1, 2) for bucket in (False, True)]
    for r in runs:
        print(f"  {r['threads']} thread(s), bucket {r['bucket']!s:5}: {r['cpu_s']:6.1f} CPU s, {r['wall_s']:6.1f} s "
              f"wall, {r['tokens_computed']:,} tokens computed for {r['tokens_real']:,} real")
    no_dropout = tiny_model(work / "tiny-nodrop", dropout=0.0)
    seconds = {n: torchrun(n, work / f"torchrun-{n}") for n in (1, 2)}
    w1, w2 = (load_file(work / f"torchrun-{n}" / "model.safetensors") for n in (1, 2))
    largest = max(float((w1[k] - w2[k]).abs().max()) for k in w1)
    print(f"torchrun, 8 updates on the tiny model: 1 process {seconds[1]} s, 2 processes {seconds[2]} s; "
          f"largest weight difference {largest:.1e}")
    assert largest < 1e-4
    save("16_training_for_real", {
        "load_average_before": list(os.getloadavg()),
        "epoch": {"data": "SST-2 train.tsv, 640 rows drawn with seed 0, max 64 tokens, batches of 32 (20 updates)",
                  "model": "all-MiniLM-L6-v2, full fine-tuning, AdamW lr 1e-4, fp32", "runs": runs},
        "torchrun": {"model": "tiny random BERT (2 layers, width 32), 8 updates of 16 bundled reviews",
                     "wall_s": seconds, "largest_weight_difference": largest}})
else:
    committed = load("16_training_for_real")
    if committed:
        epoch = committed["epoch"]["runs"]
        assert all(f"{r['cpu_s']:.1f} CPU s" in " ".join(__doc__.split()) for r in epoch)  # quoted as in the file
        print("the committed --full run: " + "; ".join(
            f"{r['threads']} thread(s) bucket {r['bucket']}: {r['cpu_s']} CPU s, {r['wall_s']} s wall"
            for r in committed["epoch"]["runs"]))
shutil.rmtree(work, ignore_errors=True)

# Exercises (worked solutions in tutorials/solutions/16_training_for_real.py)
# 1. Gradient accumulation in a token-level task: a loss averaged over tokens, two micro-batches of 3 and 30
#    tokens. Show that averaging the two micro-batch means weighs a token of the short one ten times as much as one
#    of the long one, and that minift's sum / count does not.
# 2. Resume is exact because the random state comes back. Show with torch alone that dropout masks after
#    restoring torch.get_rng_state() repeat, and differ without it.
# 3. bf16 keeps float32's range, not its precision: find the smallest positive x for which 1 + x differs from 1
#    in bfloat16, float16 and float32, and the largest finite number of each (torch.finfo), and say which one
#    needs a loss scale.

#!/usr/bin/env bash
# Every benchmark at full size on one CUDA GPU, in one command (a few minutes on an H100 / H200):
#
#     HF_HUB_CACHE=../shared/hf-cache HF_HUB_OFFLINE=1 bash benchmarks/gpu_all.sh [RESULTS_DIR] [SECONDS]
#
# 1. Alone, one after the other, so that their times mean something: benchmarks/gpu_check.py (parity on the GPU,
#    encoder speed vs transformers, bf16 fine-tuning throughput and MFU), then SST-2 minift vs transformers.Trainer.
# 2. Side by side on the same GPU (scores only: their wall times share the card): the other sentence tasks,
#    WNUT-17 and SQuAD, E2E generation, and a learning-rate sweep for both systems on SST-2 and STS-B.
# Each command has a time limit (SECONDS for the side-by-side ones, default 300) and writes its JSON and log to
# RESULTS_DIR (default benchmarks/results/gpu); one that fails or runs out of time leaves the others' results.
set -u
R=${1:-benchmarks/results/gpu}
LIMIT=${2:-300}
mkdir -p "$R"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$R/gpu.txt" 2>&1

timeout 200 python benchmarks/gpu_check.py --out "$R/gpu_check.json" > "$R/gpu_check.log" 2>&1
timeout 200 python benchmarks/sentence_tasks.py --datasets sst2 --systems minift,trainer \
    --out "$R/sentence_tasks.json" > "$R/sst2.log" 2>&1

side() {  # side NAME COMMAND...: run in the background with the time limit, output to NAME.log
    local name=$1; shift
    timeout "$LIMIT" "$@" > "$R/$name.log" 2>&1 &
}
for dataset in stsb trec goemotions; do
    side "$dataset" python benchmarks/sentence_tasks.py --datasets "$dataset" --threads 2 --out "$R/sentence_tasks.json"
done
side probe python benchmarks/sentence_tasks.py --datasets sst2 --systems probe --threads 2 \
    --out "$R/sentence_tasks.json"
side ner_qa python benchmarks/ner_qa.py --threads 3 --out "$R/ner_qa.json"
for lr in 5e-5 2e-4; do
    side "sweep_$lr" python benchmarks/sentence_tasks.py --datasets sst2,stsb --systems minift,trainer --threads 2 \
        --lr-minift "sst2=$lr,stsb=$lr" --lr-trainer "sst2=$lr,stsb=$lr" --out "$R/sweep_lr$lr.json"
done
if [ -f benchmarks/e2e.py ]; then
    side e2e python benchmarks/e2e.py --device cuda --precision bf16 --out "$R/e2e.json" ${E2E_ARGS:-}
fi
wait
grep -h "" "$R"/*.log | grep -v "^USDT" | tail -n 200 > "$R/summary.txt"
echo "results in $R"

#!/usr/bin/env bash
# Every benchmark at full size on one CUDA GPU, in one command (a few minutes on an H100 / H200):
#
#     HF_HUB_CACHE=../shared/hf-cache HF_HUB_OFFLINE=1 bash benchmarks/gpu_all.sh [RESULTS_DIR] [SECONDS]
#
# 1. Alone, one after the other, so that their times mean something: benchmarks/gpu_check.py (parity on the GPU,
#    encoder speed vs transformers, bf16 fine-tuning throughput and MFU), then SST-2 minift vs transformers.Trainer.
# 2. Side by side on the same GPU (scores only: their wall times share the card): the other sentence tasks,
#    WNUT-17 and SQuAD (each also with more epochs / another learning rate: the configuration to keep is the one
#    with the best validation score), E2E generation, and a learning-rate sweep for both systems on SST-2 and STS-B.
# Each command has a time limit (120 s each for the first two, SECONDS for the side-by-side ones, default 300) and
# writes its JSON and log to RESULTS_DIR (default benchmarks/results/gpu); one that fails or runs out of time leaves
# the others' results. E2E_ARGS adds flags to benchmarks/e2e.py.
set -u
R=${1:-benchmarks/results/gpu}
LIMIT=${2:-300}
mkdir -p "$R"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}  # some CUDA images have no `python`
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$R/gpu.txt" 2>&1

timeout 120 "$PY" benchmarks/gpu_check.py --out "$R/gpu_check.json" > "$R/gpu_check.log" 2>&1
timeout 120 "$PY" benchmarks/sentence_tasks.py --datasets sst2 --systems minift,trainer \
    --out "$R/sentence_tasks.json" > "$R/sst2.log" 2>&1

side() {  # side NAME COMMAND...: run in the background with the time limit, output to NAME.log
    local name=$1; shift
    timeout "$LIMIT" "$@" > "$R/$name.log" 2>&1 &
}
for dataset in stsb trec goemotions; do
    side "$dataset" "$PY" benchmarks/sentence_tasks.py --datasets "$dataset" --threads 2 --out "$R/sentence_tasks.json"
done
side probe "$PY" benchmarks/sentence_tasks.py --datasets sst2 --systems probe --threads 2 \
    --out "$R/sentence_tasks.json"
side wnut17 "$PY" benchmarks/ner_qa.py --tasks wnut17 --threads 2 --out "$R/ner_qa.json"
side wnut17_10ep "$PY" benchmarks/ner_qa.py --tasks wnut17 --epochs 10 --threads 2 --out "$R/ner_qa_wnut17_10ep.json"
side squad "$PY" benchmarks/ner_qa.py --tasks squad --threads 2 --out "$R/ner_qa_squad.json"
side squad_5ep "$PY" benchmarks/ner_qa.py --tasks squad --epochs 5 --threads 2 --out "$R/ner_qa_squad_5ep.json"
side squad_5ep_lr2e-4 "$PY" benchmarks/ner_qa.py --tasks squad --epochs 5 --lr 2e-4 --batch-size 32 --threads 2 \
    --out "$R/ner_qa_squad_5ep_lr2e-4.json"
for lr in 5e-5 2e-4; do
    for dataset in sst2 stsb; do
        side "sweep_${dataset}_$lr" "$PY" benchmarks/sentence_tasks.py --datasets $dataset --systems minift,trainer \
            --threads 2 --lr-minift "$dataset=$lr" --lr-trainer "$dataset=$lr" --out "$R/sweep_lr$lr.json"
    done
done
if [ -f benchmarks/e2e.py ]; then
    side e2e "$PY" benchmarks/e2e.py --device cuda --precision bf16 --out "$R/e2e.json" ${E2E_ARGS:-}
fi
wait
grep -h "" "$R"/*.log | grep -v "^USDT" | tail -n 200 > "$R/summary.txt"
echo "results in $R"

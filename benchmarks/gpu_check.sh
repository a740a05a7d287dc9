#!/usr/bin/env bash
# The GPU benchmarks in one short script (for a lent H100/H200 with PyTorch preinstalled).
# Usage (repo root): OUT=/some/dir bash benchmarks/gpu_check.sh
set -u
export PYTHONPATH="$PWD" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/avsbench-gpu}; mkdir -p "$OUT"
nvidia-smi -L; python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name(0))"
# ranking: V3C1-sized collection (1,082,657 shots; 512/2048/2048/2048), ours fp32/bf16 and the memmap->pinned->GPU floor
timeout "${RANK_TIMEOUT:-420}" python3 benchmarks/bench_rank.py --device cuda --data /tmp/v3c1-bench --out /tmp/v3c1-bench-runs 2>&1 | tee "$OUT/bench_rank_cuda.txt"
# training: 120,000 captions, video 512/2048/2048/2048, bow+w2v+clip, batch 256; fp32 (TF32) and bf16 autocast
timeout "${TRAIN_TIMEOUT:-150}" python3 benchmarks/bench_train.py --device cuda --threads 8 --steps 50 2>&1 | tee "$OUT/bench_train_cuda.txt"
timeout 90 python3 benchmarks/bench_train.py --device cuda --threads 8 --steps 50 --amp 2>&1 | tee "$OUT/bench_train_cuda_amp.txt"

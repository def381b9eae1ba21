#!/usr/bin/env bash
# Session 9, one call (prebuilt = main ec48386 + ROOFLINE_DECODE_CHUNKS + training attention defaults flipped).
# carry [".device/s9c", ".device/prebuilt/roofline", ".device/prebuilt/roofline_gpu_tests",
# ".device/prebuilt/roofline_gpu_attention_bench", ".device/tok/llama3", ".device/debs"]
#   1. GPU tests: paged attention (mixed split), decoder, fp8 KV, training attention and models (new defaults)
#   2. 8B serving 1000 + 1000, burst 512, fp8 KV, 432 seqs, budget 16384: mixed decode split on / off
#   3. decode attention micro bench and the 1B decode (B=64, B=1): the plan's chunks vs ROOFLINE_DECODE_CHUNKS=1
#   4. GPT-2 training e2e: new attention defaults vs old, alternating
set -u
mkdir -p /tmp/p; for d in .device/debs/*.deb; do dpkg -x $d /tmp/p; done
export LD_LIBRARY_PATH=/tmp/p/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
export ROOFLINE_SOURCE_DIR=$PWD
B=.device/prebuilt
END=${ABD_END:-580}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > $OUT/device.txt 2>&1
step() { echo "$1 at ${SECONDS}s $(date +%T)" >> $OUT/progress.txt; }
PHASES=${PHASES:-tests serve bench e2e}
want() { [[ " $PHASES " == *" $1 "* ]]; }
step tests
want tests && timeout 110 $B/roofline_gpu_tests --gtest_brief=1 \
  --gtest_filter='*PagedAttention*:GpuPaged.*:*GpuDecoder*:*KvFp8*:*TrainAttention*:GpuTrainModel*:GpuTrainKernels*' \
  > $OUT/tests.log 2>&1
echo "tests rc=$?" >> $OUT/tests.log
export ROOFLINE_SERVE_SHAPES=8b ROOFLINE_SERVE_PROMPT=1000 ROOFLINE_SERVE_OUTPUT=1000 ROOFLINE_SERVE_REQUESTS=512
RUNS=$(want serve && echo split_16384 nosplit_16384)
for run in $RUNS; do
  budget=${run#*_}; mode=${run%_*}
  left=$(( END - ${SERVE_RESERVE:-150} - SECONDS )); [[ $left -lt 90 ]] && { step "skip $run"; continue; }
  step "serve $run"
  export ROOFLINE_MIXED_DECODE_SPLIT=$([[ $mode == split ]] && echo 1 || echo 0)
  export ROOFLINE_SERVE_ARGS="--device cuda --max-num-seqs 432 --max-queue 4096 --kv-cache-dtype fp8 --max-batched-tokens $budget"
  timeout $left scripts/gpu serve > $OUT/serve_$run.txt 2>&1; echo "rc=$?" >> $OUT/serve_$run.txt
done
unset ROOFLINE_MIXED_DECODE_SPLIT
BCH=$(want bench && echo 0 1)
for ch in $BCH; do
  step "attention bench chunks=$ch"
  ROOFLINE_DECODE_CHUNKS=$ch timeout 60 $B/roofline_gpu_attention_bench --decode-only --quick --json $OUT/attn_chunks$ch.json \
    > $OUT/attn_chunks$ch.txt 2>&1
done
step "prefill bench (the shared wgmma loop)"
want bench && timeout 60 $B/roofline_gpu_attention_bench --prefill-only --quick --json $OUT/attn_prefill.json > $OUT/attn_prefill.txt 2>&1
for ch in $BCH; do
  [[ $(( END - SECONDS )) -lt 60 ]] && continue
  step "1b b64 chunks=$ch"
  ROOFLINE_DECODE_CHUNKS=$ch timeout 60 $B/roofline bench --preset llama-1b-v32k --device cuda --prompt 512 -n 32 -b 64 \
    > $OUT/b64_chunks$ch.txt 2>&1
  step "1b b1 chunks=$ch"
  ROOFLINE_DECODE_CHUNKS=$ch timeout 60 $B/roofline bench --preset llama-1b-v32k --device cuda --prompt 128 -n 64 -b 1 \
    > $OUT/b1_chunks$ch.txt 2>&1
done
step e2e
left=$(( END - SECONDS ))
want e2e && [[ $left -gt 80 ]] && timeout $left python3 .device/s9c/e2e.py $B/roofline $OUT $((left - 8)) > $OUT/e2e.log 2>&1
step done
{ cat $OUT/device.txt $OUT/progress.txt
  echo "== tests"; grep -E "^\[  (PASSED|FAILED) |^\[  FAILED|rc=" $OUT/tests.log | head -20
  grep -E -A4 "Failure$" $OUT/tests.log | grep -vE "^--$" | head -20
  for run in split_16384 nosplit_16384; do echo "== serve $run"; grep -E "output token throughput|TPOT|engine steps|steps with prompt|duration|rc=" $OUT/serve_$run.txt 2>/dev/null; done
  for ch in 0 1; do echo "== attention decode chunks=$ch"; grep -E "^ *decode" $OUT/attn_chunks$ch.txt | head -30; done
  echo "== prefill"; grep -E "^ *prefill" $OUT/attn_prefill.txt | head -20
  for ch in 0 1; do echo "== 1b b64 chunks=$ch"; grep -E "^decode|fraction" $OUT/b64_chunks$ch.txt; done
  for ch in 0 1; do echo "== 1b b1 chunks=$ch"; grep -E "^decode|fraction" $OUT/b1_chunks$ch.txt; done
  echo "== e2e"; grep -E "RESULT|skipping|made in" $OUT/e2e.log
} > $OUT/summary.txt 2>&1
cat $OUT/summary.txt

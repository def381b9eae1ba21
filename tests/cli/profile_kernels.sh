#!/usr/bin/env bash
# `roofline profile --kernels` where it cannot record (no GPU here, or a build without CUDA/CUPTI): a non-zero
# exit and one clear line saying why, before the command runs. On a machine with a GPU the records themselves
# are checked by the GPU tests (tests/gpu/gpu_cupti_test.cpp). Usage: profile_kernels.sh BIN SOURCE_DIR
set -uo pipefail
bin=$1
src=$2
model=$src/tests/fixtures/models/llama3-bf16
source "$(dirname "$0")/lib.sh"

check "profile --help lists --kernels" bash -c "'$bin' profile --help | grep -q -- '--kernels'"
if command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1; then
  echo "skip --kernels without a GPU (a GPU is present)"
else
  expect_error "--kernels without a GPU" "profile --kernels: " \
    "$bin" profile --kernels -- generate -m "$model" -p hi -n 2
  err=$("$bin" profile --kernels -- generate -m "$model" -p hi -n 2 2>&1 >/dev/null)
  check "--kernels says it needs a GPU or a CUDA build" bash -c "[[ \"\$1\" == *'no CUDA GPU'* || \"\$1\" == *'built without CUDA'* ]]" _ "$err"
  out=$("$bin" profile --kernels -- generate -m "$model" -p hi -n 2 2>/dev/null)
  check "--kernels fails before the command runs" test -z "$out"
fi
# The op profile is untouched by the flag's existence.
"$bin" profile --json "$tmp/p.json" -- logits -m "$model" --tokens 1,2,3 --json > /dev/null 2>&1
check "op profile still works" json "assert d['op_calls'] > 0 and d['exit_code'] == 0" < "$tmp/p.json"
echo "$failures failure(s)"
exit $((failures > 0))

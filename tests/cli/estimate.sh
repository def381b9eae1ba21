#!/usr/bin/env bash
# `roofline estimate` with a hardware file whose entry has a bf16 GEMM rate table (what `roofline calibrate
# --device cuda` stores): the text and JSON say which rate priced each matmul, the numbers follow the table,
# a bad table is refused, and `roofline report` says its estimate used the table. Usage: estimate.sh BIN SOURCE_DIR
set -uo pipefail
bin=$1
src=$2
model=$src/tests/fixtures/models/llama3-bf16
source "$(dirname "$0")/lib.sh"

# Rates by M alone: 200 TFLOP/s at 1024 rows, 800 at 4096 (so 400 at 2048, the geometric middle), any N and K.
python3 - "$tmp" <<'PY'
import json, sys
tmp = sys.argv[1]
base = {"name": "table-hw", "peak_bf16_flops_per_s": 989e12, "memory_bytes_per_s": 3.35e12}
rates = [[m, n, k, 200e12 if m == 1024 else 800e12] for m in (1024, 4096) for n in (512, 8192) for k in (512, 8192)]
json.dump(dict(base, gemm_bf16_rates=rates), open(f"{tmp}/table.json", "w"))
json.dump(base, open(f"{tmp}/peak.json", "w"))
json.dump(dict(base, gemm_bf16_rates=rates[:-1]), open(f"{tmp}/holey.json", "w"))
json.dump(dict(base, gemm_bf16_rates=[[1024, 512, 512.5, 1e12]]), open(f"{tmp}/fractional.json", "w"))
PY
est() { "$bin" estimate --preset llama-1b --workload prefill --batch 1 --seq 2048 "$@"; }

est --hw "$tmp/table.json" > "$tmp/table.txt" 2>&1
check "estimate with a table exits 0" test $? -eq 0
check "text says matmuls were priced by shape" grep -q "matmuls priced by shape: 8 measured bf16 GEMM rates" "$tmp/table.txt"
check "text shows each op's rate (q_proj at 2048 rows: 400T)" grep -qE "^  q_proj .* 400T +687 us " "$tmp/table.txt"
check "text shows the lm_head's single row (the GEMV) at the peak, not the table" grep -qE "^  lm_head .* 989T .* memory$" "$tmp/table.txt"
est --hw "$tmp/peak.json" > "$tmp/peak.txt" 2>&1
check "text without a table has no rate column" bash -c "! grep -q 'matmuls priced by shape' '$tmp/peak.txt' && ! grep -q 'FLOP/s  *time' '$tmp/peak.txt'"

est --hw "$tmp/table.json" --json > "$tmp/table.json.out"
est --hw "$tmp/peak.json" --json > "$tmp/peak.json.out"
check "json: per-op rate, the table used, slower than at the peak" python3 -c "
import json
t = json.load(open('$tmp/table.json.out')); p = json.load(open('$tmp/peak.json.out'))
assert t['matmul_pricing'] == 'shape_table' and p['matmul_pricing'] == 'peak', (t['matmul_pricing'], p['matmul_pricing'])
assert t['hardware']['gemm_bf16_rate_points'] == 8 and 'gemm_bf16_rates' not in t['hardware'], t['hardware']
ops = {o['name']: o for o in t['ops']}
q = ops['q_proj']
assert abs(q['effective_flops_per_s'] - 400e12) < 1e3 and q['shape_priced'] and q['gemms'] == [[2048, 2048, 2048, 1]], q
assert abs(q['time_s'] - 16 * 2 * 2048**3 / 400e12) < 1e-12, q
assert abs(ops['attention_scores']['effective_flops_per_s'] - 800e12) < 1e3, ops['attention_scores']
assert ops['rope']['effective_flops_per_s'] == 989e12 and 'gemms' not in ops['rope'], ops['rope']
assert all(o['effective_flops_per_s'] == 989e12 for o in p['ops']), 'peak everywhere without a table'
assert t['time_s'] > 1.2 * p['time_s'], (t['time_s'], p['time_s'])
assert abs(t['mfu_ceiling'] - t['model_flops'] / (t['time_s'] * 989e12)) < 1e-12, 'MFU against the peak'
"
expect_error "a table that is not a full grid" "no rate for M=4096 N=8192 K=8192" est --hw "$tmp/holey.json"
expect_error "a fractional K" "with M, N, K positive integers" est --hw "$tmp/fractional.json"
expect_error "a missing --calibration file" "File does not exist: $tmp/missing.json" est --hw box --calibration "$tmp/missing.json"

# The report's estimate prices its runs with the same table, and says so.
"$bin" report --baseline "-m $model" --candidate "-m $model --threads 1" -n 2 --runs 1 --min-speedup 0 \
  --quality-tokens 8 --hw "$tmp/table.json" --json "$tmp/report.json" > "$tmp/report.txt" 2>/dev/null
check "report text: estimate priced by GEMM shape" grep -q "^estimate (floor) .*matmuls priced by GEMM shape" "$tmp/report.txt"
check "report json: matmul_pricing" python3 -c "
import json; d = json.load(open('$tmp/report.json'))
assert d['baseline']['estimate']['matmul_pricing'] == 'shape_table', d['baseline']['estimate']"

echo "estimate cli: $failures failure(s)"
[[ $failures -eq 0 ]]

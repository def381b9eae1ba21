#!/usr/bin/env bash
# `roofline profile` and `roofline report` end to end on a fixture model: the table and JSON of a profile,
# a Chrome trace that parses, the report's JSON keys and decisions, and its HTML page rendered by headless
# Chromium (screenshot not blank, the four charts in the DOM). Usage: profile_report.sh BIN SOURCE_DIR
# Chromium comes from scripts/install-deps --test; ROOFLINE_SKIP_CHROMIUM=1 skips that part.
set -uo pipefail
bin=$1
src=$2
model=$src/tests/fixtures/models/llama3-bf16
other=$src/tests/fixtures/models/qwen3-bf16  # same vocabulary size, different weights
source "$(dirname "$0")/lib.sh"
py() {  # py CODE [ARGS...]: python with json and sys imported; ARGS in sys.argv[1:]
  local code=$1
  shift
  python3 -c "import json,sys; $code" "$@"
}

# ---- profile ----
"$bin" profile --json "$tmp/profile.json" --trace "$tmp/trace.json" --top 5 -- \
  generate -m "$model" -p "Hello world" -n 8 --temperature 0 --ignore-eos --json > "$tmp/out.txt" 2> "$tmp/err.txt"
check "profile exit 0" test $? -eq 0
check "profile leaves the command's stdout alone" py "d=json.load(open('$tmp/out.txt')); assert len(d['ids'])==8"
check "profile table" grep -q "total ms" "$tmp/err.txt"
check "profile verdict and lever" bash -c "grep -q '^verdict: ' '$tmp/err.txt' && grep -q '^lever: ' '$tmp/err.txt'"
check "profile json" py "
d=json.load(open('$tmp/profile.json'))
for k in ['hardware','roofs','span_seconds','ops','op_shapes','breakdown','verdict','command','exit_code']: assert k in d, k
ops={o['name']:o for o in d['ops']}
assert 'matmul' in ops and 'attention' in ops, list(ops)
m=ops['matmul']
assert m['calls']>0 and m['flops']>0 and m['bytes']>0 and m['seconds']>0 and m['bottleneck'] in ('compute','memory','overhead'), m
assert d['verdict']['bottleneck'] in ('compute','memory','overhead','host_pipeline','host_device_copy','collective','queueing')
assert d['verdict']['lever'] and d['roofs']['peak_flops_per_s']>0
assert abs(sum(c['share'] for c in d['breakdown'].values())-1)<1e-6
"
check "trace is Chrome trace JSON" py "
d=json.load(open('$tmp/trace.json'))
x=[e for e in d['traceEvents'] if e['ph']=='X']
assert x and all('ts' in e and 'dur' in e and 'flops' in e['args'] and 'bytes' in e['args'] for e in x)
assert any(e['name']=='matmul' for e in x)
"
check "trace events name their phase" py "
d=json.load(open('$tmp/trace.json'))
x=[e for e in d['traceEvents'] if e['ph']=='X' and e['cat']=='compute']
assert {e['args'].get('phase') for e in x} >= {'prefill','decode'}, {e['args'].get('phase') for e in x}
"
check "profile generate: prefill and decode sections" bash -c "grep -q '^-- prefill: ' '$tmp/err.txt' && grep -q '^-- decode: .* 7 steps, ' '$tmp/err.txt' && grep -q '^-- whole run' '$tmp/err.txt'"
# A decode benchmark: one prefill step per run (a warm-up and three) and one decode step per token.
"$bin" profile --json "$tmp/pb.json" --top 0 -- bench -m "$model" --device cpu --prompt 16 -n 6 -b 3 --threads 1 \
  > /dev/null 2> "$tmp/bench_err.txt"
check "profile bench exit 0" test $? -eq 0
check "profile bench: prefill and decode sections" bash -c \
  "grep -q '^-- prefill: .* 4 steps, ' '$tmp/bench_err.txt' && grep -q '^-- decode: .* 6 steps, .* ms of ops per step' '$tmp/bench_err.txt'"
check "profile bench json: phases add up to the run" py "
d=json.load(open('$tmp/pb.json'))
ph={p['name']:p for p in d['phases']}
assert set(ph)>={'prefill','decode'}, list(ph)
assert ph['prefill']['steps']==4 and ph['decode']['steps']==6, ph
assert sum(p['op_calls'] for p in d['phases'])==d['op_calls']
assert abs(sum(p['seconds'] for p in d['phases'])-d['busy_seconds'])<1e-9*max(1,d['busy_seconds'])
assert all(o['phase']=='all' for o in d['ops']+d['op_shapes'])
rows=d['op_phases']
assert rows and all(r['phase'] in ph for r in rows)
for name in ph: assert sum(r['calls'] for r in rows if r['phase']==name)==ph[name]['op_calls'], name
total={}
for r in rows: total[r['name']]=total.get(r['name'],0)+r['calls']
assert total=={o['name']:o['calls'] for o in d['ops']}, (total, d['ops'])
dec={r['name']:r for r in rows if r['phase']=='decode'}
assert dec['attention']['calls']==6*2 and dec['attention']['calls_per_step']==2, dec['attention']  # 2 layers
"
"$bin" profile --json "$tmp/p2.json" -- logits -m "$model" --tokens 1,2,3,4 --json > /dev/null 2>&1
check "profile logits" py "d=json.load(open('$tmp/p2.json')); assert d['op_calls']>0 and d['exit_code']==0"
"$bin" profile -- generate --help > "$tmp/help.txt" 2>&1
check "profile passes --help through" grep -q -- "--max-tokens" "$tmp/help.txt"
out=$("$bin" profile -- profile -- info -m "$model" 2>&1)
check "profile refuses itself" bash -c "[[ \"\$1\" == *'cannot be profiled'* ]]" _ "$out"
"$bin" profile -- generate -m "$tmp/missing" -p hi > /dev/null 2>&1
check "profile passes a failure through" test $? -ne 0

# ---- report ----
"$bin" report --baseline "-m $model --threads 1" --candidate "-m '$model' --threads 2" -n 6 --runs 2 \
  --min-speedup 0 --json "$tmp/report.json" --html "$tmp/report.html" > "$tmp/report.txt" 2> "$tmp/report.err"
check "report exit 0" test $? -eq 0
check "report text" bash -c "grep -q 'decision: ACCEPT' '$tmp/report.txt' && grep -q 'throughput' '$tmp/report.txt'"
check "report json: same model accepted" py "
d=json.load(open('$tmp/report.json'))
for s in ('baseline','candidate'):
  r=d[s]
  for k in ('tokens_per_s','latency_ms','peak_memory_bytes','profile','latencies_ms'): assert k in r, (s,k)
  assert r['tokens_per_s']>0 and r['latency_ms']['p50']>0 and r['latency_ms']['p95']>=r['latency_ms']['p50']
  assert r['peak_memory_bytes']>0 and len(r['latencies_ms'])==2*5
q=d['quality']
for k in ('ppl_baseline','ppl_candidate','kl','top1_agreement'): assert k in q, k
assert abs(q['ppl_baseline']-q['ppl_candidate'])<1e-3*q['ppl_baseline'] and q['kl']<1e-6 and q['top1_agreement']==1.0, q
assert d['decision']=='accept', d['reasons']
"
out=$("$bin" report --baseline "-m $model" --candidate "-m $other" -n 4 --runs 1 --min-speedup 0 --json 2>/dev/null)
check "report json on stdout: another model is rejected" py "
d=json.loads(sys.argv[1]); assert d['decision']=='reject', d['reasons']
assert d['quality']['kl']>0.01 and any('KL' in r or 'top-1' in r or 'perplexity' in r for r in d['reasons'])
" "$out"
out=$("$bin" report --baseline "-m $model" --candidate "-m $model" --workload prefill --runs 2 --json 2>/dev/null)
check "report prefill workload" py "d=json.loads(sys.argv[1]); assert d['decision'] in ('accept','review','reject') and d['baseline']['tokens_per_s']>0" "$out"

# The report's estimate of each run is `roofline estimate` of the same steps, with the storage the CPU engine
# used (the checkpoint's bf16 weights, f32 activations and KV cache), on the hardware --hw names.
echo '{"name": "test-hw", "peak_bf16_flops_per_s": 2e11, "memory_bytes_per_s": 1e10}' > "$tmp/hw.json"
"$bin" report --baseline "-m $model" --candidate "-m $model --threads 1" -n 6 --runs 1 --min-speedup 0 --hw "$tmp/hw.json" \
  --json "$tmp/report_est.json" > "$tmp/report_est.txt" 2>/dev/null
check "report text shows the estimate" bash -c "grep -q '^estimate (floor) .*(test-hw).*(file)' '$tmp/report_est.txt' && grep -q '^measured / estimate .*x' '$tmp/report_est.txt'"
# Without --hw a CPU run's floor uses the bandwidth its own process measures (a VM's varies from process to process).
check "report estimate on the cpu measures its bandwidth" py "
d=json.load(open('$tmp/report.json'))
for s in ('baseline','candidate'):
  e=d[s]['estimate']; assert e['hardware']=='cpu' and e['hardware_source'].endswith('bandwidth measured now'), e
  assert e['activations']=='f32' and e['kv_cache']=='f32' and e['measured_over_estimate']>0, e
"
P=$(python3 -c "import json; print(json.load(open('$tmp/report_est.json'))['baseline']['prompt_tokens'])")
est() { "$bin" estimate -m "$model" --hw "$tmp/hw.json" --dtype bf16 --activation-dtype f32 --kv-dtype f32 --batch 1 --json "$@"; }
est --workload prefill --seq "$P" > "$tmp/est_prefill.json"
for i in 0 1 2 3 4; do est --workload decode --seq 1 --context $((P + i)) > "$tmp/est_decode_$i.json"; done  # 5 steps
check "report estimate = estimate of its prefill + 5 decode steps" py "
d=json.load(open('$tmp/report_est.json')); p=json.load(open('$tmp/est_prefill.json'))
q={'time_s': sum(json.load(open(f'$tmp/est_decode_{i}.json'))['time_s'] for i in range(5))}
for side in ('baseline','candidate'):
  e=d[side]['estimate']
  assert (e['weights'],e['activations'],e['kv_cache'],e['hardware'],e['decode_steps'])==('bf16','f32','f32','test-hw',5), e
  assert abs(e['prefill_ms']-1e3*p['time_s'])<=1e-9*e['prefill_ms'], (e, p['time_s'])
  assert abs(e['decode_ms']-1e3*q['time_s'])<=1e-9*e['decode_ms'], (e, q['time_s'])
  assert abs(e['total_ms']-e['prefill_ms']-e['decode_ms'])<=1e-9*e['total_ms'], e
  assert e['measured_ms']>0 and abs(e['measured_over_estimate']-e['measured_ms']/e['total_ms'])<1e-9, e
"
# --calibration: the file `roofline calibrate --out` wrote, whose entry --hw names (a name no built-in table has).
echo '{"cal-box": {"peak_bf16_flops_per_s": 3e11, "memory_bytes_per_s": 2e10, "source": "calibrated"}}' > "$tmp/cal.json"
"$bin" report --baseline "-m $model" --candidate "-m $model" -n 3 --runs 1 --min-speedup 0 --quality-tokens 16 \
  --hw cal-box --calibration "$tmp/cal.json" --json "$tmp/report_cal.json" > /dev/null 2>&1
check "report --calibration prices the run on the named entry" py "
d=json.load(open('$tmp/report_cal.json')); e=d['baseline']['estimate']
assert e['hardware']=='cal-box' and e['hardware_source']=='calibrated', e
assert d['baseline']['profile']['roofs']['peak_flops_per_s']==3e11, d['baseline']['profile']['roofs']
"
"$bin" profile --hw cal-box --calibration "$tmp/cal.json" --json "$tmp/profile_cal.json" -- \
  generate -m "$model" -p "Hello" -n 2 --temperature 0 > /dev/null 2>&1
check "profile --calibration takes the roofs of the named entry" py "
d=json.load(open('$tmp/profile_cal.json')); r=d['roofs']
assert r['peak_flops_per_s']==3e11 and r['memory_bytes_per_s']==2e10 and d['hardware'].startswith('cal-box'), (d['hardware'], r)
"
out=$("$bin" report --baseline "-m $model" --candidate "-m $model" --hw cal-box --calibration "$tmp/missing.json" 2>&1)
check "report --calibration of a missing file is refused, naming it" bash -c "[[ \$1 -ne 0 && \"\$2\" == *missing.json* ]]" _ $? "$out"
out=$("$bin" report --baseline "-m $model --bogus" --candidate "-m $model" 2>&1)
check "report bad ARGS name the side" bash -c "[[ \"\$1\" == *'--baseline'* ]]" _ "$out"

# ---- the HTML page in headless Chromium ----
check "html self-contained" bash -c "grep -q \"id='roofline-plot'\" '$tmp/report.html' && ! grep -qE '<link|src=' '$tmp/report.html'"
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [[ -n "${ROOFLINE_SKIP_CHROMIUM:-}" ]]; then
  echo "skip headless Chromium (ROOFLINE_SKIP_CHROMIUM set)"
elif [[ -z "$browser" ]]; then
  echo "FAIL headless Chromium: not installed (scripts/install-deps --test installs it; ROOFLINE_SKIP_CHROMIUM=1 skips)"
  failures=$((failures + 1))
else
  flags=(--headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars --user-data-dir="$tmp/chromium")
  timeout 60 "$browser" "${flags[@]}" --window-size=1200,1000 --screenshot="$tmp/report.png" "file://$tmp/report.html" \
    > "$tmp/chromium.log" 2>&1
  check "chromium screenshot written" test -s "$tmp/report.png"
  stats=$(python3 "$src/tests/cli/profile_report_png.py" "$tmp/report.png" 16 0.02)
  check "screenshot is not blank ($stats)" test $? -eq 0
  timeout 60 "$browser" "${flags[@]}" --dump-dom "file://$tmp/report.html" > "$tmp/dom.html" 2>> "$tmp/chromium.log"
  check "charts in the rendered DOM" py "
dom=open('$tmp/dom.html').read()
for needle in ['id=\"latency-cdf\"','id=\"throughput-bars\"','id=\"op-breakdown\"','id=\"roofline-plot\"','class=\"op-point\"','class=\"cdf\"','roof-compute']:
  assert needle in dom, needle
"
fi

echo "$failures failure(s)"
exit $((failures > 0))

#!/usr/bin/env bash
# roofline bench serve end to end on the CPU with a fixture model:
#  1. one command: the benchmark starts `roofline serve` itself, runs a burst then Poisson arrivals
#     (--sweep inf,20), writes JSON and the SVG plot, and stops the server cleanly;
#  2. against a server started here (--url, --api-key): Poisson arrivals under a concurrency cap.
# Checks that every request completed, throughput is positive, percentiles are ordered, outputs reached
# their length (ignore_eos), KV samples were taken, and the plot exists.
# Usage: bench_serve.sh BIN SOURCE_DIR
set -uo pipefail
bin=$1
src=$2
model=$src/tests/fixtures/models/qwen3-f32
tmp=$(mktemp -d)
pid=
cleanup() {
  [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
failures=0
check() {  # check NAME CONDITION...
  local name=$1
  shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; failures=$((failures + 1)); fi
}
json() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); $2" "$1"; }

# Sanity of every run in a result file: all sent requests completed, outputs of the asked length,
# tok/s > 0, p50 <= p95 <= p99 for each latency, KV samples present.
sane='
for run in d["runs"]:
    r = run["requests"]
    assert r["completed"] == r["sent"] == len(run["records"]) and r["failed"] == 0, r
    assert run["output_throughput"] > 0 and run["total_token_throughput"] > run["output_throughput"], run
    assert run["request_throughput"] > 0
    for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        s = run[key]
        assert 0 <= s["min"] <= s["p50"] <= s["p95"] <= s["p99"] <= s["max"], (key, s)
    assert run["ttft_ms"]["p50"] <= run["e2e_ms"]["p50"]
    for rec in run["records"]:
        assert rec["status"] == 200 and rec["error"] is None, rec
        assert rec["output_tokens"] == rec["max_tokens"] == 16, rec
        assert rec["finish_reason"] == "length", rec
        assert 0 <= rec["ttft_s"] <= rec["e2e_s"] and rec["tpot_s"] > 0, rec
    k = run["kv"]
    assert len(k["samples"]) >= 1 and all(s["kv_blocks_total"] > 0 for s in k["samples"]), k
    assert 0 <= k["mean_used_fraction"] <= k["peak_used_fraction"] <= 1, k
    assert 0 <= k["waste_fraction"] < 1 and all(s["kv_slots_wasted"] <= s["kv_slots_held"] for s in k["samples"]), k
'

# 1. The benchmark starts the server: a burst of 8, then Poisson at 20 req/s.
"$bin" bench serve -m "$model" --serve-args "--threads 1 --max-num-seqs 8" --sweep "inf,20" --requests 8 \
  --prompt-len uniform:8:32 --output-len 16 --json "$tmp/sweep.json" --plot "$tmp/sweep.svg" \
  --server-log "$tmp/child.log" >"$tmp/sweep.out" 2>"$tmp/sweep.err"
rc=$?
check "started server: exit 0" test $rc -eq 0
[[ $rc -eq 0 ]] || { cat "$tmp/sweep.err"; tail -20 "$tmp/child.log"; }
check "started server: runs sane" json "$tmp/sweep.json" "$sane"
check "started server: burst then Poisson" json "$tmp/sweep.json" \
  'c = [r["config"] for r in d["runs"]]; assert c[0]["burst"] and c[1]["rate"] == 20 and not c[1]["burst"], c'
check "started server: prompt lengths" json "$tmp/sweep.json" \
  'assert all(8 <= rec["prompt_tokens"] <= 32 for run in d["runs"] for rec in run["records"])'
check "started server: Poisson arrivals spread out" json "$tmp/sweep.json" \
  's = sorted(rec["scheduled_s"] for rec in d["runs"][1]["records"]); assert s[0] > 0 and s[-1] > s[0], s'
check "started server: drained and exited 0" json "$tmp/sweep.json" 'assert d["server"]["exit_code"] == 0 and d["server"]["started_by_bench"]'
check "started server: stopped cleanly" grep -q "roofline serve: stopped$" "$tmp/child.log"
check "plot written" bash -c "grep -q '</svg>' '$tmp/sweep.svg' && grep -q 'output throughput (tok/s)' '$tmp/sweep.svg' && grep -q 'TPOT (ms)' '$tmp/sweep.svg'"
check "sweep table printed" grep -q "TPOT p95" "$tmp/sweep.out"

# 2. Against a running server with an API key: Poisson at 10 req/s, at most 2 in flight.
key=bench-key-$RANDOM
"$bin" serve -m "$model" --port 0 --threads 1 --api-key "$key" >"$tmp/server.log" 2>&1 &
pid=$!
port=
for _ in $(seq 200); do
  port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$tmp/server.log")
  [[ -n $port ]] && break
  sleep 0.1
done
check "server listening" test -n "$port"
"$bin" bench serve --url "http://127.0.0.1:$port" --api-key "$key" -m "$model" --rate 10 --requests 6 \
  --concurrency 2 --prompt-len normal:24:4 --output-len 16 --seed 3 --json "$tmp/url.json" >"$tmp/url.out" 2>&1
rc=$?
check "--url: exit 0" test $rc -eq 0
[[ $rc -eq 0 ]] || cat "$tmp/url.out"
check "--url: runs sane" json "$tmp/url.json" "$sane"
check "--url: not started by the bench" json "$tmp/url.json" 'assert not d["server"]["started_by_bench"] and d["server"]["model"] == "qwen3-f32"'
check "--url: concurrency cap" json "$tmp/url.json" 'assert d["runs"][0]["kv"]["max_running"] <= 2 + 1, d["runs"][0]["kv"]'
# A wrong key is an error of the benchmark (it cannot even list the model), not a run of 401s.
"$bin" bench serve --url "http://127.0.0.1:$port" --api-key wrong -m "$model" --burst 1 >"$tmp/bad.out" 2>&1
rc=$?
check "--url: wrong key fails fast" bash -c "[[ $rc -ne 0 ]] && grep -q 'API key' '$tmp/bad.out'"
kill -TERM "$pid"
wait "$pid"
pid=

# 3. The static-batching baseline on the same burst: every request completes, never more than a batch runs,
#    and its up-front reservation shows as KV waste that paged continuous batching does not have.
for mode in static continuous; do
  "$bin" bench serve -m "$model" --serve-args "--threads 1 --max-num-seqs 4 --block-size 4 --batching $mode" --burst 16 \
    --requests 16 --prompt-len 8 --output-len uniform:16:240 --seed 5 --metrics-interval 0.005 --json "$tmp/$mode.json" \
    >"$tmp/$mode.out" 2>&1
  rc=$?
  check "--batching $mode: exit 0" test $rc -eq 0
  [[ $rc -eq 0 ]] || cat "$tmp/$mode.out"
  check "--batching $mode: all complete, at most 4 run" json "$tmp/$mode.json" \
    'r = d["runs"][0]; assert r["requests"]["completed"] == 16 and r["kv"]["max_running"] <= 4, r["kv"]'
  check "--batching $mode: engine phases sampled" json "$tmp/$mode.json" \
    'e = d["runs"][0]["engine"]; assert e["steps"] > 0 and e["model_s"] > 0 and e["schedule_s"] >= 0, e'
done
waste() { json "$tmp/$1.json" 'print(d["runs"][0]["kv"]["waste_fraction"])'; }
check "paged KV wastes only block tails" python3 -c "assert $(waste continuous) < 0.25"
check "static batching wastes its reservation" python3 -c "assert $(waste static) > 2 * $(waste continuous)"
check "waste reported" grep -q "KV slots wasted" "$tmp/static.out"

# Flag errors are one line and exit 1 before any server starts.
"$bin" bench serve -m "$model" --prompt-len gamma:1:2 >"$tmp/err.out" 2>&1
rc=$?
check "bad distribution" bash -c "[[ $rc -ne 0 ]] && grep -q \"unknown distribution 'gamma'\" '$tmp/err.out'"
"$bin" bench serve --url http://127.0.0.1:9 --burst 1 >"$tmp/err.out" 2>&1
rc=$?
check "random prompts need a tokenizer" bash -c "[[ $rc -ne 0 ]] && grep -q 'tokenizer' '$tmp/err.out'"

if ((failures)); then
  echo "$failures check(s) failed"
  exit 1
fi

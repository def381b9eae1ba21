#!/usr/bin/env bash
# The training commands' contract: `data prepare`, `train` (from scratch, --config, --init + --data-tokens,
# --resume, checkpoints that `generate` loads, kill -9 during saves), `score`, and one-line errors.
# Usage: train.sh BIN SOURCE_DIR
set -uo pipefail
bin=$1
src=$2
fx=$src/tests/fixtures/train
source "$(dirname "$0")/lib.sh"
ref() { python3 -c "import json; d=json.load(open('$fx/$1/reference.json')); $2"; }
losses() { python3 -c "import json; print([json.loads(l)['loss'] for l in open('$1') if '\"loss\"' in l])"; }

for c in train score "data prepare"; do
  check "help $c" bash -c "'$bin' $c --help | grep -q -- '--'"
done

# data prepare
for i in $(seq 1 80); do echo "And the model said, let there be text number $i; and there was text."; done > "$tmp/corpus.txt"
out=$("$bin" data prepare --tokenizer "$fx/llama" --input "$tmp/corpus.txt" --output "$tmp/data" --val-fraction 0.1)
check "data prepare summary" bash -c "grep -q 'train tokens' <<<'$out'"
check "data manifest" json "assert d['token_dtype']=='u16' and d['train_tokens']>0 and d['val_tokens']>0" <"$tmp/data/manifest.json"
check "data tokenizer copy" test -f "$tmp/data/tokenizer/tokenizer.json"

# train from scratch (llama, gpt2): log, SVG, a model directory generate loads
common=(--layers 2 --hidden 32 --heads 4 --seq 16 --batch 2 --steps 4 --lr 3e-3 --warmup 1 --threads 2 --quiet)
"$bin" train --arch llama --kv-heads 2 --ffn 64 --tokenizer "$fx/llama" --data "$tmp/data" "${common[@]}" \
  --schedule cosine --optimizer adamw --save-every 2 --out "$tmp/llama" --log-json "$tmp/llama.jsonl" --device cpu --seed 3 >"$tmp/llama.out"
check "train llama exit" test $? -eq 0
check "train log keys" python3 -c "
import json; rows=[json.loads(l) for l in open('$tmp/llama.jsonl')]; steps=[r for r in rows if 'loss' in r]
assert [r['step'] for r in steps]==[1,2,3,4]; assert all(k in steps[0] for k in ['step','loss','lr','tokens_per_s'])"
check "train svg" grep -q "<svg" "$tmp/llama.svg"
check "checkpoint files" test -f "$tmp/llama/config.json" -a -f "$tmp/llama/model.safetensors" -a -f "$tmp/llama/tokenizer.json" -a -f "$tmp/llama/trainer_state/state.json"
check "checkpoint config" json "assert d['architectures']==['LlamaForCausalLM'] and d['model_type']=='llama' and d['num_key_value_heads']==2" <"$tmp/llama/config.json"
out=$("$bin" generate -m "$tmp/llama" -p "And the model" -n 4 --temperature 0 --json)
check "generate from checkpoint" json "assert len(d['ids'])>=1" <<<"$out"
"$bin" train --arch gpt2 --data "$tmp/data" "${common[@]}" --out "$tmp/gpt2" >/dev/null
check "train gpt2 exit" test $? -eq 0
check "gpt2 checkpoint config" json "assert d['architectures']==['GPT2LMHeadModel'] and d['n_layer']==2" <"$tmp/gpt2/config.json"
out=$("$bin" generate -m "$tmp/gpt2" --tokens 5,6,7 -n 3 --temperature 0 --ignore-eos --json)
check "generate from gpt2 checkpoint" json "assert len(d['ids'])==3" <<<"$out"

# --config (TOML and JSON) with command-line overrides
cat > "$tmp/run.toml" <<TOML
[model]
arch = "llama"
layers = 1
hidden = 32
heads = 2
[train]
seq = 16
batch = 2
steps = 3
lr = 1e-3
schedule = "wsd"
TOML
"$bin" train --config "$tmp/run.toml" --data "$tmp/data" --steps 2 --log-json "$tmp/toml.jsonl" --quiet >/dev/null
check "toml config + override" python3 -c "import json; rows=[json.loads(l) for l in open('$tmp/toml.jsonl') if '\"loss\"' in l]; assert len(rows)==2"
echo '{"arch": "gpt2", "layers": 1, "hidden": 32, "heads": 2, "seq": 16, "batch": 2, "steps": 2, "lr": 0.001}' > "$tmp/run.json"
"$bin" train --config "$tmp/run.json" --data "$tmp/data" --out "$tmp/fromjson" --quiet >/dev/null
check "json config" json "assert d['architectures']==['GPT2LMHeadModel']" <"$tmp/fromjson/config.json"

# The overfit-one-batch form against PyTorch's plain-SGD losses (f32, loss before each update)
for m in gpt2 llama qwen3; do
  toks=$(ref $m "print(','.join(map(str,d['sgd']['tokens'])))")
  lr=$(ref $m "print(d['sgd']['lr'])")
  "$bin" train --init "$fx/$m" --data-tokens "$toks" --steps 5 --optimizer sgd --lr "$lr" --log-json "$tmp/sgd_$m.jsonl" --device cpu --quiet >/dev/null
  check "overfit $m matches pytorch" python3 -c "
import json
got=[json.loads(l)['loss'] for l in open('$tmp/sgd_$m.jsonl')]
want=json.load(open('$fx/$m/reference.json'))['sgd']['losses']
assert len(got)==5 and all(abs(a-b)<1e-4 for a,b in zip(got,want)), (got,want)"
done

# score
toks=$(ref qwen3 "print(','.join(map(str,d['score']['tokens'])))")
out=$("$bin" score -m "$fx/qwen3" --tokens "$toks" --json)
check "score tokens json" json "
r=json.load(open('$fx/qwen3/reference.json'))['score']
assert set(d)=={'loss','ppl','tokens'} and d['tokens']==len(r['tokens'])-1 and abs(d['loss']-r['loss'])<1e-5" <<<"$out"
out=$("$bin" score -m "$tmp/llama" -f "$tmp/corpus.txt" --json)
check "score file json" json "import math; assert d['tokens']>100 and abs(math.exp(d['loss'])-d['ppl'])<1e-6*d['ppl']" <<<"$out"
check "score text" bash -c "'$bin' score -m '$fx/gpt2' --tokens 5,6,7,8 | grep -q ppl"

# --resume continues bit-exactly: N steps straight == N/2, interrupted, then resumed
args=(--init "$fx/qwen2" --data "$tmp/data" --seq 16 --batch 2 --grad-accum 2 --steps 6 --lr 2e-3 --warmup 2 --threads 2 --quiet)
"$bin" train "${args[@]}" --out "$tmp/straight" --log-json "$tmp/straight.jsonl" >/dev/null
"$bin" train "${args[@]}" --out "$tmp/resumed" --log-json "$tmp/resumed.jsonl" --stop-at 3 >/dev/null
"$bin" train "${args[@]}" --out "$tmp/resumed" --log-json "$tmp/resumed.jsonl" --resume >/dev/null
check "resume identical losses" test "$(losses "$tmp/straight.jsonl")" = "$(losses "$tmp/resumed.jsonl")"
check "resume identical weights" cmp -s "$tmp/straight/model.safetensors" "$tmp/resumed/model.safetensors"

# kill -9 during saves never leaves a broken checkpoint
"$bin" train --arch llama --layers 2 --hidden 64 --heads 4 --tokenizer "$fx/llama" --data "$tmp/data" --seq 16 --batch 2 \
  --steps 2 --lr 1e-3 --out "$tmp/killed" --quiet >/dev/null
for i in 1 2 3 4; do
  "$bin" train --arch llama --layers 2 --hidden 64 --heads 4 --tokenizer "$fx/llama" --data "$tmp/data" --seq 16 --batch 2 \
    --steps 100000 --save-every 1 --lr 1e-3 --out "$tmp/killed" --quiet >/dev/null 2>&1 &
  pid=$!
  sleep "0.$((3 + i * 2))"
  kill -9 $pid 2>/dev/null
  wait $pid 2>/dev/null
  check "checkpoint whole after kill -9 ($i)" bash -c "'$bin' score -m '$tmp/killed' --tokens 5,6,7,8 --json >/dev/null && test -f '$tmp/killed/trainer_state/state.json'"
done

# estimate --workload train on a CPU counts the CPU trainer's buffers (train/cpu_memory_plan.h): f32 weights,
# gradients, decay mask and moments, f32 activations (one layer's set with --checkpointing), no CUDA context
for ck in "" --checkpointing; do
  out=$("$bin" estimate --preset gpt2-124m --hw cpu --workload train --batch 4 --seq 256 --threads 1 $ck --json)
  check "estimate cpu train memory ${ck:-(all layers saved)}" json "
m=d['memory_bytes']; p=d['model']['parameters']
assert m['weights']==4*p and m['gradients']==4*p and m['optimizer']==12*p and m['context']==0, m
assert m['activations']==(91299840 if '$ck' else 611065856) and m['workspace']>77824584, m  # + the GEMM's panels
assert m['total']==sum(m[k] for k in ['weights','kv_cache','activations','gradients','optimizer','workspace','context']), m" <<<"$out"
done
# --threads: the per-thread scratch of that many threads (default: one per hardware thread)
for n in 1 4; do
  "$bin" estimate --preset gpt2-124m --hw cpu --workload train --batch 4 --seq 256 --threads $n --json >"$tmp/est$n.json"
done
check "estimate cpu train --threads" python3 -c "
import json; a=json.load(open('$tmp/est1.json')); b=json.load(open('$tmp/est4.json'))
assert a['workload']['threads']==1 and b['workload']['threads']==4, (a['workload'], b['workload'])
ma, mb = a['memory_bytes'], b['memory_bytes']
assert mb['workspace']>ma['workspace'] and mb['activations']==ma['activations'], (ma, mb)"
expect_error "estimate --threads on a GPU" "--threads" "$bin" estimate --preset gpt2-124m --hw h100 --workload train --batch 4 --seq 256 --threads 4
out=$("$bin" estimate --preset gpt2-124m --hw h100 --workload train --batch 4 --seq 256 --json)
check "estimate gpu train memory" json "m=d['memory_bytes']; assert m['weights']==2*d['model']['parameters'] and m['context']>0, m" <<<"$out"

# Errors: non-zero exit and one line that says what
# No GPU on the CI machine: a build with CUDA says no GPU is visible, one without says it has no CUDA training.
expect_error "cuda unavailable" "--device cuda: " "$bin" train --init "$fx/llama" --data-tokens 1,2,3 --steps 1 --device cuda
expect_error "no data" "--data" "$bin" train --arch llama --layers 1 --hidden 32 --heads 2 --tokenizer "$fx/llama" --steps 1 --quiet
expect_error "bad arch" "--arch" "$bin" train --arch bert --layers 1 --hidden 32 --heads 2 --data "$tmp/data" --steps 1 --quiet
expect_error "bad optimizer" "optimizer" "$bin" train --init "$fx/llama" --data-tokens 1,2,3 --steps 1 --optimizer adam
expect_error "bad schedule" "schedule" "$bin" train --init "$fx/llama" --data-tokens 1,2,3 --steps 1 --schedule step
expect_error "resume without checkpoint" "resume" "$bin" train --init "$fx/llama" --data "$tmp/data" --out "$tmp/none" --resume --steps 2
expect_error "missing data dir" "--data" "$bin" train --init "$fx/llama" --data "$tmp/nodata" --steps 1
expect_error "token outside vocab" "vocabulary" "$bin" train --init "$fx/llama" --data-tokens 1,99999 --steps 1
expect_error "bad token list" "--data-tokens" "$bin" train --init "$fx/llama" --data-tokens 1,x --steps 1
expect_error "kv heads" "--kv-heads" "$bin" train --arch llama --layers 1 --hidden 32 --heads 4 --kv-heads 3 --data "$tmp/data" --steps 1
expect_error "bad gemm algorithms" "--gemm-algorithms" "$bin" train --init "$fx/llama" --data-tokens 1,2,3 --steps 1 --gemm-algorithms fastest
echo '{"gemm_algorithms": 3}' >"$tmp/bad_state.json"
expect_error "gemm algorithms file without choices" "no kept GEMM choices" "$bin" train --init "$fx/llama" --data-tokens 1,2,3 --steps 1 --gemm-algorithms "$tmp/bad_state.json"
expect_error "unknown config key" "unknown key" "$bin" train --config <(echo 'colour = "red"') --data "$tmp/data"
expect_error "score no input" "-f" "$bin" score -m "$fx/llama"
expect_error "score bad model" "config.json" "$bin" score -m "$tmp/none" --tokens 1,2
expect_error "prepare missing input" "not found" "$bin" data prepare --tokenizer "$fx/llama" --input "$tmp/none.txt" --output "$tmp/d2"
expect_error "prepare bad fraction" "val-fraction" "$bin" data prepare --tokenizer "$fx/llama" --input "$tmp/corpus.txt" --output "$tmp/d3" --val-fraction 1.5

echo "train cli: $failures failure(s)"
[[ $failures -eq 0 ]]

#!/usr/bin/env bash
# The CLI contract that tests and tools depend on: exact output forms, --help everywhere, and one-line
# errors with a non-zero exit for bad input. Usage: cli_contract.sh BIN SOURCE_DIR
set -uo pipefail
bin=$1
src=$2
model=$src/tests/fixtures/models/qwen3-bf16
gpt2=$src/tests/fixtures/models/gpt2-f32
source "$(dirname "$0")/lib.sh"

# --help on every command
for c in generate logits tokenize detokenize chat info bench; do
  check "help $c" bash -c "'$bin' $c --help | grep -q -- '--'"
done
check "help root" bash -c "'$bin' --help | grep -q generate"

# generate --json: prompt_ids (with BOS for a text prompt), ids (generated only), text
out=$("$bin" generate -m "$model" -p "Hello world" -n 5 --temperature 0 --json)
check "generate json keys" json "assert set(['prompt_ids','ids','text']) <= set(d); assert len(d['ids'])<=5" <<<"$out"
check "generate json BOS" json "assert d['prompt_ids'][0]==0, d['prompt_ids']" <<<"$out"
out=$("$bin" generate -m "$gpt2" --tokens 5,6,7 -n 4 --temperature 0 --ignore-eos --json)
check "generate tokens" json "assert d['prompt_ids']==[5,6,7] and len(d['ids'])==4" <<<"$out"
a=$("$bin" generate -m "$model" -p "abc" -n 8 --temperature 1.0 --top-k 50 --seed 42 --ignore-eos --json)
b=$("$bin" generate -m "$model" -p "abc" -n 8 --temperature 1.0 --top-k 50 --seed 42 --ignore-eos --json)
check "same seed same output" test "$(json "print(d['ids'])" <<<"$a")" = "$(json "print(d['ids'])" <<<"$b")"

# logits --json: shape [T, V] and every row V long
out=$("$bin" logits -m "$model" --tokens 1,2,3,4 --json)
check "logits shape" json "assert d['shape']==[4,384]; assert len(d['logits'])==4 and all(len(r)==384 for r in d['logits'])" <<<"$out"

# tokenize / detokenize round trip, --special adds BOS
out=$("$bin" tokenize -m "$model" -p "Hello world" --json)
ids=$(json "print(','.join(map(str,d['ids'])))" <<<"$out")
check "tokenize json" test -n "$ids"
check "detokenize exact" test "$("$bin" detokenize -m "$model" --ids "$ids")" = "Hello world"
out=$("$bin" tokenize -m "$model" -p "Hello world" --special --json)
check "tokenize special BOS" json "assert d['ids'][0]==0" <<<"$out"
printf 'line one\n  two\n' > "$tmp/in.txt"
out=$("$bin" tokenize --tokenizer "$model/tokenizer.json" -f "$tmp/in.txt" --json)
ids=$(json "print(','.join(map(str,d['ids'])))" <<<"$out")
"$bin" detokenize --tokenizer "$model/tokenizer.json" --ids "$ids" > "$tmp/out.txt"
check "detokenize file round trip" cmp -s "$tmp/in.txt" "$tmp/out.txt"

# info and chat
check "info" bash -c "'$bin' info -m '$model' | grep -q Qwen3ForCausalLM"
check "info json" bash -c "'$bin' info -m '$model' --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"parameters\"]>0'"
check "chat via pipe" bash -c "printf 'hi\n/exit\n' | '$bin' chat -m '$model' -n 4 --seed 1 >/dev/null"

# Errors: non-zero exit and one line that says what and where
expect_error "missing dir" "not a model directory" "$bin" generate -m "$tmp/nope" -p hi
mkdir -p "$tmp/badjson" && echo '{"architectures": [' > "$tmp/badjson/config.json"
expect_error "bad config json" "config.json" "$bin" info -m "$tmp/badjson"
mkdir -p "$tmp/unknown" && echo '{"architectures": ["BertModel"]}' > "$tmp/unknown/config.json"
expect_error "unknown architecture" "LlamaForCausalLM" "$bin" info -m "$tmp/unknown"
mkdir -p "$tmp/trunc" && cp "$model/config.json" "$tmp/trunc/"
head -c 3000 "$model/model.safetensors" > "$tmp/trunc/model.safetensors"
expect_error "truncated safetensors" "model.safetensors" "$bin" generate -m "$tmp/trunc" --tokens 1,2
expect_error "bad token list" "--tokens" "$bin" logits -m "$model" --tokens 1,x,3 --json
expect_error "token outside vocab" "vocabulary" "$bin" logits -m "$model" --tokens 1,99999 --json
expect_error "bad temperature" "temperature" "$bin" generate -m "$model" -p hi --temperature -1
expect_error "bad top-p" "top_p" "$bin" generate -m "$model" -p hi --top-p 1.5
expect_error "no prompt" "prompt" "$bin" generate -m "$model"
expect_error "prompt too long" "context" "$bin" generate -m "$gpt2" --tokens "$(python3 -c "print(','.join(['5']*200))")" -n 1

echo "cli contract: $failures failure(s)"
[[ $failures -eq 0 ]]

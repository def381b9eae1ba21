#!/usr/bin/env bash
# roofline serve end to end: starts the server on a free loopback port with a fixture model, runs
# tests/server/openai_client_test.mjs (the official `openai` npm client: API shapes and errors, a soak of
# concurrent streams with disconnects, then a SIGTERM drain), and checks the server exits 0 after draining.
# Usage: server_openai.sh BIN SOURCE_DIR. Needs node and `openai` in .cache/npm (scripts/fetch-test-data).
set -uo pipefail
bin=$1
src=$2
model=$src/tests/fixtures/models/qwen3-f32
modules=${ROOFLINE_NPM_CACHE:-$src/.cache/npm}/node_modules
key=test-key-$RANDOM
tmp=$(mktemp -d)
pid=
cleanup() {
  [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
  echo "FAIL $*"
  [[ -f $tmp/server.log ]] && sed 's/^/  server: /' "$tmp/server.log" | tail -20
  exit 1
}
command -v node >/dev/null || fail "node is not installed (scripts/install-deps --test)"
[[ -f $modules/openai/package.json ]] || fail "the openai npm package is missing from $modules: run scripts/fetch-test-data"

# --port 0: the kernel picks a free port and the server prints it. One compute thread: the machine running
# the tests may have two cores. The queue is smaller than the soak, so that some requests meet a 429.
"$bin" serve -m "$model" --port 0 --threads 1 --api-key "$key" --max-num-seqs 32 --max-queue 128 \
  --http-threads 400 --request-timeout 60 >"$tmp/server.log" 2>&1 &
pid=$!
port=
for _ in $(seq 200); do
  port=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$tmp/server.log")
  [[ -n $port ]] && break
  kill -0 "$pid" 2>/dev/null || fail "the server exited before listening"
  sleep 0.1
done
[[ -n $port ]] || fail "the server did not print its port within 20 s"
node -e "fetch('http://127.0.0.1:$port/health').then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))" ||
  fail "/health does not answer"
echo "ok   server listening on 127.0.0.1:$port"

ROOFLINE_BASE_URL=http://127.0.0.1:$port ROOFLINE_API_KEY=$key ROOFLINE_MODEL=qwen3-f32 ROOFLINE_SERVER_PID=$pid \
  ROOFLINE_NPM_MODULES=$modules timeout 150 node "$src/tests/server/openai_client_test.mjs" api soak drain
node_rc=$?

# The drain phase sent SIGTERM: the server must finish and exit 0 by itself.
for _ in $(seq 300); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
  fail "the server is still running 30 s after SIGTERM"
fi
wait "$pid"
server_rc=$?
pid=
(( node_rc == 0 )) || fail "the OpenAI client tests failed (exit $node_rc)"
(( server_rc == 0 )) || fail "the server exited with $server_rc after SIGTERM"
grep -q "roofline serve: stopped$" "$tmp/server.log" || fail "the server did not report a clean drain"
echo "ok   SIGTERM: drained and exited 0"

# Shared by the CLI test scripts (sourced, not run): a temp dir removed on exit, a failure count, and the
# checks every script uses. Each check prints "ok   NAME" or "FAIL NAME ..." and counts failures.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
check() {  # check NAME CONDITION...
  local name=$1
  shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; failures=$((failures + 1)); fi
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); $1"; }
# A command that must fail: non-zero exit and at most two lines on stderr containing PATTERN.
expect_error() {  # expect_error NAME PATTERN CMD...
  local name=$1 pattern=$2
  shift 2
  local err
  err=$("$@" 2>&1 >/dev/null)
  local rc=$?
  if [[ $rc -ne 0 && $(printf '%s\n' "$err" | wc -l) -le 2 && "$err" == *$pattern* ]]; then
    echo "ok   error $name"
  else
    echo "FAIL error $name (rc=$rc): $err"
    failures=$((failures + 1))
  fi
}

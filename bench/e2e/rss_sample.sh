#!/usr/bin/env bash
# rss_sample.sh CMD ARGS...: runs the command, samples its anonymous and file-backed resident memory
# (/proc/PID/status RssAnon, RssFile, in kB) every 5 ms, and prints the first, smallest and largest RssAnon.
# Peak RSS (time -v) hides a process's own growth behind its start-up peak of mapped library pages; the
# growth of RssAnon over a small baseline run is what a memory plan predicts (docs/performance.md, session 7:
# `roofline train` against plan_cpu_training).
set -u
"$@" > /dev/null 2>&1 &
pid=$!
samples=()
while kill -0 $pid 2>/dev/null; do
  s=$(awk '/^RssAnon/ {print $2}' /proc/$pid/status 2>/dev/null) && [[ -n $s ]] && samples+=("$s")
  sleep 0.005
done
wait $pid
rc=$?
[[ ${#samples[@]} -gt 0 ]] || { echo "no samples (rc=$rc)"; exit 1; }
printf '%s\n' "${samples[@]}" | awk -v rc=$rc 'NR == 1 {first = $1; lo = $1; hi = $1} {if ($1 < lo) lo = $1; if ($1 > hi) hi = $1}
  END {printf "samples %d  RssAnon kB: first %d, min %d, max %d  (rc=%d)\n", NR, first, lo, hi, rc}'
exit $rc

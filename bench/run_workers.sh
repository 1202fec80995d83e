#!/usr/bin/env bash
# Issue 14's figures, in one run: `llmrelay serve --workers 2` (started here, pinned to the
# gateway core with its supervisor) beside one process, the reference passthrough and the
# direct call; then how the calls spread over the two workers (each worker's CPU time), and
# 1,000 connections opened at once against the two workers (bench/burst.py).
#   bench/run_workers.sh [--reps 2 --duration 8]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="${LLMRELAY_BENCH_HARNESS:-$REPO/../shared/bench}"
cd "$REPO"
UPSTREAM_PORT="${UPSTREAM_PORT:-8941}"
W2_PORT="${W2_PORT:-8942}"
WORK="$(mktemp -d /tmp/llmrelay-workers-XXXXXX)"
sed -e "s#{upstream_url}#http://127.0.0.1:$UPSTREAM_PORT#g" -e "s#{upstream_key}#sk-upstream-bench#g" \
    -e "s#{key}#sk-bench-key#g" -e "s#{workdir}#$WORK#g" -e "s#{port}#$W2_PORT#g" \
    bench/llmrelay.yaml.tmpl | sed "s#llmrelay-usage.db#w2-usage.db#" > "$WORK/w2.yaml"
taskset -c 1 "$REPO/.venv/bin/llmrelay" serve --config "$WORK/w2.yaml" --host 127.0.0.1 \
  --port "$W2_PORT" --workers 2 > "$WORK/w2.log" 2>&1 &
W2=$!
trap 'kill $W2 2>/dev/null || true' EXIT
cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat"; }
"$HARNESS/run.sh" \
  --upstream-port "$UPSTREAM_PORT" \
  --gateway-name llmrelay-workers-2 \
  --gateway-url "http://127.0.0.1:$W2_PORT" --gateway-pid "$W2" \
  --targets-file "$REPO/bench/workers.toml" \
  --workdir "$WORK/harness" \
  --reference \
  "$@"
echo "CPU time (clock ticks) of the supervisor and each worker over the whole run:"
echo "  supervisor $W2: $(cpu_of "$W2")"
for w in $(cat /proc/"$W2"/task/*/children); do echo "  worker $w: $(cpu_of "$w")"; done
echo "1,000 connections at once against the two workers (the upstream is gone: 502s are answers):"
"$REPO/.venv/bin/python" "$REPO/bench/burst.py" "http://127.0.0.1:$W2_PORT" sk-bench-key anthropic/claude-3-5 1000

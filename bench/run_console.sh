#!/usr/bin/env bash
# Issue 15's request-path figure: llmrelay with the console on and a browser polling its
# overview every 5 s (bench/console_poller.py, Debian's chromium on the load core) during the
# load, beside llmrelay as benchmarked elsewhere (console off: no admin key), the reference
# passthrough and the direct call, in one run.
#   bench/run_console.sh [--reps 2 --duration 8]
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="${LLMRELAY_BENCH_HARNESS:-$REPO/../shared/bench}"
cd "$REPO"
UPSTREAM_PORT="${UPSTREAM_PORT:-8951}"
CONSOLE_PORT="${CONSOLE_PORT:-8952}"
ADMIN_KEY="sk-admin-bench-0123456789abcdef"
WORK="$(mktemp -d /tmp/llmrelay-console-XXXXXX)"
{
  sed -e "s#{upstream_url}#http://127.0.0.1:$UPSTREAM_PORT#g" -e "s#{upstream_key}#sk-upstream-bench#g" \
      -e "s#{key}#sk-bench-key#g" -e "s#{workdir}#$WORK#g" -e "s#{port}#$CONSOLE_PORT#g" \
      bench/llmrelay.yaml.tmpl | sed "s#llmrelay-usage.db#console-usage.db#"
  printf 'admin:\n  key: "%s"\n' "$ADMIN_KEY"
} > "$WORK/console.yaml"
taskset -c 1 "$REPO/.venv/bin/llmrelay" serve --config "$WORK/console.yaml" --host 127.0.0.1 \
  --port "$CONSOLE_PORT" > "$WORK/console.log" 2>&1 &
GW=$!
POLLER=""
trap 'kill $GW ${POLLER:-} 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$CONSOLE_PORT/health" >/dev/null && break; sleep 0.1; done
taskset -c 0 "$REPO/.venv/bin/python" "$REPO/bench/console_poller.py" \
  "http://127.0.0.1:$CONSOLE_PORT" "$ADMIN_KEY" 5 > "$WORK/poller.log" 2>&1 &
POLLER=$!
"$HARNESS/run.sh" \
  --upstream-port "$UPSTREAM_PORT" \
  --gateway-name llmrelay-console-polled \
  --gateway-url "http://127.0.0.1:$CONSOLE_PORT" --gateway-pid "$GW" \
  --targets-file "$REPO/bench/llmrelay.toml" \
  --workdir "$WORK/harness" \
  --reference \
  "$@"
echo "overview loads during the run (ms): $(grep -c overview "$WORK/poller.log") loads;" \
  "$(awk '/overview/ {print $2}' "$WORK/poller.log" | sort -n | awk '{a[NR]=$1} END {print "p50", a[int(NR/2)+1], "max", a[NR]}')"

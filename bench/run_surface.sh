#!/usr/bin/env bash
# Issue 13's request-path figures, in one run: the first-chunk gate that waits for content
# (llmrelay-routed) against the gate before it (llmrelay-routed-pregate, LLMRELAY_PREGATE: a
# checkout of 04fc4cc), the account/model passthrough (llmrelay), the native passthrough
# /proxy/{account}/... (llmrelay-proxy: a gateway started here, pinned to the gateway core,
# reached at /proxy/anthropic), the reference passthrough and the direct call.
#   LLMRELAY_PREGATE=/path/to/checkout-of-04fc4cc bench/run_surface.sh [--reps 2 --duration 8]
# LLMRELAY_BENCH_TARGETS=FILE replaces bench/surface.toml (e.g. bench/surface-proxy.toml: only the
# account/model passthrough beside llmrelay-proxy, for more rounds of the two).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="${LLMRELAY_BENCH_HARNESS:-$REPO/../shared/bench}"
: "${LLMRELAY_PREGATE:?set LLMRELAY_PREGATE to a checkout of 04fc4cc}"
export LLMRELAY_PREGATE
cd "$REPO"
UPSTREAM_PORT="${UPSTREAM_PORT:-8931}"
PROXY_PORT="${PROXY_PORT:-8932}"
WORK="$(mktemp -d /tmp/llmrelay-surface-XXXXXX)"
sed -e "s#{upstream_url}#http://127.0.0.1:$UPSTREAM_PORT#g" -e "s#{upstream_key}#sk-upstream-bench#g" \
    -e "s#{key}#sk-bench-key#g" -e "s#{workdir}#$WORK#g" -e "s#{port}#$PROXY_PORT#g" \
    bench/llmrelay.yaml.tmpl | sed "s#llmrelay-usage.db#proxy-usage.db#" > "$WORK/proxy.yaml"
taskset -c 1 "$REPO/.venv/bin/llmrelay" serve --config "$WORK/proxy.yaml" --host 127.0.0.1 \
  --port "$PROXY_PORT" > "$WORK/proxy.log" 2>&1 &
PROXY=$!
trap 'kill $PROXY 2>/dev/null || true' EXIT
"$HARNESS/run.sh" \
  --upstream-port "$UPSTREAM_PORT" \
  --gateway-name llmrelay-proxy \
  --gateway-url "http://127.0.0.1:$PROXY_PORT/proxy/anthropic" --gateway-pid "$PROXY" \
  --targets-file "${LLMRELAY_BENCH_TARGETS:-$REPO/bench/surface.toml}" \
  --workdir "$WORK/harness" \
  --reference \
  "$@"

#!/usr/bin/env bash
# What observability costs on the request path, and the request path before and after the
# call pipeline, the bounds and the error boundary (issues 11 and 12), in one run: direct,
# the reference passthrough, LiteLLM, llmrelay as shipped (metrics on), llmrelay before
# (cd35843), and llmrelay with metrics off, with tracing on (exporting over OTLP/HTTP to a
# local sink at sampling 1.0) and with every body captured. Extra arguments go to the harness.
#   LLMRELAY_BEFORE=/path/to/checkout-of-cd35843-with-.venv bench/run_observability.sh
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="${LLMRELAY_BENCH_HARNESS:-$REPO/../shared/bench}"
: "${LLMRELAY_BEFORE:?set LLMRELAY_BEFORE to a checkout of cd35843 with its own .venv}"
export LLMRELAY_BEFORE
cd "$REPO"
# llmrelay-no-bounds: this commit with issue 11's per-call bounds taken out
# (bench/variants/no-bounds.patch: the call's deadline timer, the header timer, the bounded
# body read and the row's sanitising), to show what they cost; run from a scratch copy.
NO_BOUNDS="$(mktemp -d /tmp/llmrelay-no-bounds-XXXXXX)"
git -C "$REPO" archive HEAD llmrelay | tar -x -C "$NO_BOUNDS"
patch -s -d "$NO_BOUNDS" -p1 < "$REPO/bench/variants/no-bounds.patch"
export LLMRELAY_NO_BOUNDS="$NO_BOUNDS"
# The local collector stands beside the load generator, away from the gateway's core.
taskset -c 0 "$REPO/.venv/bin/python" "$REPO/bench/otlp_sink.py" --port 4318 &
SINK=$!
trap 'kill $SINK 2>/dev/null || true; rm -rf "$NO_BOUNDS"' EXIT
"$HARNESS/run.sh" \
  --gateway-name llmrelay \
  --gateway-cmd "$REPO/.venv/bin/llmrelay serve --config {config} --host 127.0.0.1 --port {port}" \
  --gateway-config-template "$REPO/bench/llmrelay.yaml.tmpl" \
  --targets-file "$REPO/bench/observability.toml" \
  --reference --litellm \
  --workloads messages,messages-stream \
  --concurrency 1,32 --stream-concurrency 1,32 \
  "$@"

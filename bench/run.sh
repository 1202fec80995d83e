#!/usr/bin/env bash
# Gateway overhead benchmark for llmrelay: direct call vs llmrelay vs the bare aiohttp reference
# passthrough vs LiteLLM, side by side, using the shared harness (../shared/bench).
# Run from anywhere; extra arguments go to the harness: bench/run.sh --reps 5 --duration 8
#   bench/run.sh --routing [harness args]   routing on: llmrelay-routed (a virtual model with
#                                            two targets, first-chunk gate) instead of the
#                                            translated target and LiteLLM, next to the passthrough
# Logs, filled-in configs, the usage DB and results.json go to the harness --workdir
# (default: a new /tmp/llmrelay-bench-* folder), never into the repo.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="${LLMRELAY_BENCH_HARNESS:-$REPO/../shared/bench}"
targets="$REPO/bench/translated.toml"
others=(--litellm)
if [[ "${1:-}" == "--routing" ]]; then
  shift
  targets="$REPO/bench/routed.toml"
  others=()
fi
cd "$REPO"
exec "$HARNESS/run.sh" \
  --gateway-name llmrelay \
  --gateway-cmd "$REPO/.venv/bin/llmrelay serve --config {config} --host 127.0.0.1 --port {port}" \
  --gateway-config-template "$REPO/bench/llmrelay.yaml.tmpl" \
  --targets-file "$targets" \
  --reference ${others[@]+"${others[@]}"} \
  --workloads messages,messages-stream,chat,chat-stream \
  --concurrency 1,32 --stream-concurrency 1,32 \
  "$@"

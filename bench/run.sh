#!/usr/bin/env bash
# Gateway overhead benchmark for llmrelay: direct call vs llmrelay vs the bare aiohttp reference
# passthrough vs LiteLLM, side by side, using the shared harness (../shared/bench).
# Run from anywhere; extra arguments go to the harness: bench/run.sh --reps 5 --duration 8
# Logs, filled-in configs, the usage DB and results.json go to the harness --workdir
# (default: a new /tmp/llmrelay-bench-* folder), never into the repo.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="${LLMRELAY_BENCH_HARNESS:-$REPO/../shared/bench}"
cd "$REPO"
exec "$HARNESS/run.sh" \
  --gateway-name llmrelay \
  --gateway-cmd "$REPO/.venv/bin/llmrelay serve --config {config} --host 127.0.0.1 --port {port}" \
  --gateway-config-template "$REPO/bench/llmrelay.yaml.tmpl" \
  --targets-file "$REPO/bench/translated.toml" \
  --reference --litellm \
  --workloads messages,messages-stream,chat,chat-stream \
  --concurrency 1,32 --stream-concurrency 1,32 \
  "$@"

#!/usr/bin/env bash
# Bedrock-stream overhead: llmrelay's Anthropic passthrough and its Bedrock provider (SigV4,
# event-stream decode, SSE re-encode) side by side in one harness run, with the reference
# passthrough. The Bedrock upstream (bench/bedrock_upstream.py) runs on the load core, beside
# the harness's own upstream. Extra arguments go to the harness.
#   bench/run_bedrock.sh --reps 3 --duration 8
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="${LLMRELAY_BENCH_HARNESS:-$REPO/../shared/bench}"
BENCH_PY="${BENCH_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/llmrelay-bench/venv}/bin/python"
cd "$REPO"
work="$(mktemp -d /tmp/llmrelay-bedrock-XXXXXX)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
LLMRELAY_BENCH_HARNESS="$HARNESS" PYTHONDONTWRITEBYTECODE=1 taskset -c 0 \
  "$BENCH_PY" bench/bedrock_upstream.py --port "$port" > "$work/bedrock-upstream.log" 2>&1 &
up=$!
trap 'kill $up 2>/dev/null || true' EXIT
sed "s#BEDROCK_URL#http://127.0.0.1:$port#" bench/llmrelay-bedrock.yaml.tmpl > "$work/llmrelay-bedrock.yaml.tmpl"
cat > "$work/bedrock.toml" <<TOML
[[gateway]]
name = "llmrelay-bedrock"
cmd = "$REPO/.venv/bin/llmrelay serve --config {config} --host 127.0.0.1 --port {port}"
config_template = "llmrelay-bedrock.yaml.tmpl"
key = "sk-bench-key"
messages_model = "bedrock/claude-3-5"
TOML
sleep 1
"$HARNESS/run.sh" \
  --gateway-name llmrelay \
  --gateway-cmd "$REPO/.venv/bin/llmrelay serve --config {config} --host 127.0.0.1 --port {port}" \
  --gateway-config-template "$REPO/bench/llmrelay.yaml.tmpl" \
  --targets-file "$work/bedrock.toml" \
  --reference --workloads messages,messages-stream --concurrency 1,32 --stream-concurrency 1,32 \
  "$@"

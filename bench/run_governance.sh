#!/usr/bin/env bash
# Governance and routing on the hot path (issues 6, 7): plain llmrelay vs llmrelay with rate limits and a
# budget on SQLite + in-process counters, and on PostgreSQL + Redis, next to a direct call, the
# harness's bare reference passthrough and LiteLLM, and llmrelay with a virtual model (executor +
# first-chunk gate), in one run (bench/governance.toml).
# Needs PostgreSQL on 127.0.0.1:5432 (database test) and Redis on 127.0.0.1:6379.
# Extra arguments go to the harness: bench/run_governance.sh --reps 3 --duration 8
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HARNESS="${LLMRELAY_BENCH_HARNESS:-$REPO/../shared/bench}"
cd "$REPO"
psql -q -h 127.0.0.1 -U postgres -d test -c "CREATE SCHEMA IF NOT EXISTS llmrelay_bench" >/dev/null
redis-cli -h 127.0.0.1 --scan --pattern 'llmrelay-bench:*' | xargs -r redis-cli -h 127.0.0.1 del >/dev/null
# Migrate the bench schema once (as an operator would with `llmrelay db upgrade`).
UPGRADE_CFG="$(mktemp --suffix .yaml)"
cat > "$UPGRADE_CFG" <<'YAML'
auth: {keys: [{name: bench, key: sk-bench-key}]}
providers: {mock: {type: mock, models: {echo: echo}}}
database: "postgresql://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dllmrelay_bench"
YAML
"$REPO/.venv/bin/llmrelay" db upgrade --config "$UPGRADE_CFG" >/dev/null
rm -f "$UPGRADE_CFG"
exec "$HARNESS/run.sh" \
  --gateway-name llmrelay \
  --gateway-cmd "$REPO/.venv/bin/llmrelay serve --config {config} --host 127.0.0.1 --port {port}" \
  --gateway-config-template "$REPO/bench/llmrelay.yaml.tmpl" \
  --targets-file "${LLMRELAY_BENCH_TARGETS:-$REPO/bench/governance.toml}" \
  --reference --litellm \
  --workloads messages,messages-stream \
  --concurrency 1,32 --stream-concurrency 1,32 \
  "$@"

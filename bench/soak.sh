#!/usr/bin/env bash
# Soak test (issue 11): 15 minutes of mixed load on a real `llmrelay serve` (Messages and Chat
# Completions, JSON and streams, passthrough, translated, routed, bad requests, clients that go
# away mid-stream, official-SDK checks), with the gateway's RSS, fds, CLOSE_WAIT sockets, calls
# and usage rows sampled every 10 s. Not part of `make test`. See bench/README.md ("Soak").
#   bench/soak.sh                                   # 15 min, 32 connections
#   bench/soak.sh --minutes 0.5 --sample-every 5    # a 30 s trial
#   bench/soak.sh --help                            # every option, the checks, exit statuses
# Runs bench/soak.py with the venv's Python: $LLMRELAY_VENV, default the repo's .venv (made by
# `make test`, which also installs the anthropic and openai SDKs the checks use).
# $LLMRELAY_BENCH_HARNESS points at another copy of the shared harness (default ../shared/bench).
# Logs, the filled-in config, the usage DB and results.json go to --workdir (default: a new
# /tmp/llmrelay-soak-* folder), never into the repo.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LLMRELAY_VENV="${LLMRELAY_VENV:-$REPO/.venv}"
export LLMRELAY_BENCH_HARNESS="${LLMRELAY_BENCH_HARNESS:-$REPO/../shared/bench}"
if [[ ! -x "$LLMRELAY_VENV/bin/python" ]]; then
  echo "error: no Python at $LLMRELAY_VENV/bin/python: run make test (or set LLMRELAY_VENV)" >&2
  exit 2
fi
if [[ ! -f "$LLMRELAY_BENCH_HARNESS/upstream.py" ]]; then
  echo "error: the shared harness is not at $LLMRELAY_BENCH_HARNESS (set LLMRELAY_BENCH_HARNESS)" >&2
  exit 2
fi
exec "$LLMRELAY_VENV/bin/python" "$REPO/bench/soak.py" "$@"

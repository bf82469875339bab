#!/usr/bin/env bash
# Server under load, release build: `tapir replay --speed 0 --loop` of a busy capture with 50
# HTTP clients (/stats, /flows?limit=100, /alerts in turn) and 20 WebSocket clients on
# loopback. Prints requests/s and latencies per endpoint, the replay's packets/s with and
# without the load, WebSocket message sizes and peak RSS. TAPIR_LOAD_SECS sets the duration
# (default 30).
set -euo pipefail
cd "$(dirname "$0")/.."
TAPIR_LOAD_SECS=${TAPIR_LOAD_SECS:-30} cargo test --release --locked --test server_load -- --nocapture 2>&1 \
    | grep -E '^(load|replay|hub| +/)'

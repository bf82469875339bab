#!/usr/bin/env bash
# The product in one command: installs what the build needs (libpcap, the GeoIP database),
# builds tapir and runs `tapir demo`: synthetic traffic with recurring attacks of every kind,
# served on http://127.0.0.1:8000 (no root, no network interface). Ctrl-C stops it.
# Extra arguments go to `tapir demo` (e.g. --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
TAPIR_SKIP_CROSS=1 TAPIR_SKIP_CITY_DB=1 ./scripts/install-deps.sh
cargo build --release --locked
exec ./target/release/tapir demo "$@"

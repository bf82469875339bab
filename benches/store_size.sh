#!/usr/bin/env bash
# Bytes of storage per flow, tapir's store against nfcapd (LZO, the yardstick the history issue
# names), measured in the same run: `tapir analyze` stores a capture (--db-path) and exports
# it over IPFIX to nfcapd -z on loopback. Prints flows, uniflow records nfcapd stored, and the
# bytes per flow of each.
# Usage: benches/store_size.sh CAPTURE [TAPIR_BINARY]
set -euo pipefail
capture=$1
tapir=${2:-target/release/tapir}
work=$(mktemp -d)
trap 'kill "$nf" 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
mkdir -p "$work/nfcapd"
nfcapd -b 127.0.0.1 -p "$port" -z -w "$work/nfcapd" >/dev/null 2>&1 &
nf=$!
sleep 0.5
printf '[export.ipfix]\ncollectors = ["127.0.0.1:%s"]\n' "$port" > "$work/tapir.toml"
"$tapir" analyze --config "$work/tapir.toml" --db-path "$work/db" --json "$capture" > "$work/summary.json"
sleep 1
kill -TERM "$nf"; wait "$nf" 2>/dev/null || true
"$tapir" db stats --db-path "$work/db" > "$work/stats.json"
nf_bytes=$(find "$work/nfcapd" -name 'nfcapd.*' -printf '%s\n' | awk '{s+=$1} END {print s}')
nf_records=$(for f in "$work"/nfcapd/nfcapd.*; do nfdump -r "$f" -q -o csv 2>/dev/null | grep -c '^[0-9]' || true; done | awk '{s+=$1} END {print s}')
python3 - "$work/stats.json" "$nf_bytes" "$nf_records" <<'PY'
import json, sys
stats = json.load(open(sys.argv[1]))
nf_bytes, nf_records = int(sys.argv[2]), int(sys.argv[3])
flows = stats["flows"]["records"]
print(f"tapir: {flows} flows, {stats['flows']['bytes'] / flows:.1f} bytes of block per flow, "
      f"{stats['size_on_disk'] / flows:.1f} bytes of database file per flow (everything stored)")
print(f"nfcapd -z (LZO): {nf_records} uniflow records, {nf_bytes} bytes: "
      f"{nf_bytes / max(nf_records, 1):.1f} per record, {nf_bytes / max(flows, 1):.1f} per tapir flow")
PY

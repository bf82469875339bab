#!/usr/bin/env bash
# Live alert latency: hping3 sends 40 bounded SYN floods (150 SYNs each, to 40 ports) across a
# veth pair between two namespaces made here (10.78.0.1 -> 10.78.0.2, nothing leaves them),
# while `tapir analyze --iface` watches. Each flood opens one syn_flood alert; tapir reports
# the time from capture starting the batch that held the crossing packet to the alert being
# opened (median, p99, max). Needs root and hping3.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
work=${TMPDIR:-/tmp}/tapir-latency
mkdir -p "$work"
. benches/veth_pair.sh
veth_pair lcap0 10.78.0.2/24 lsnd0 10.78.0.1/24

ip netns exec "$cap" ./target/release/tapir analyze --json --iface lcap0 --duration 20 \
    > "$work/tapir.out" 2> "$work/tapir.err" &
pid=$!
sleep 1.5
for port in $(seq 20001 20040); do
    # 150 SYNs at 1 ms intervals: over the published 100-in-10-s threshold in 0.1 s.
    ip netns exec "$snd" hping3 -q -S -p "$port" -c 150 -i u1000 10.78.0.2 >/dev/null 2>&1 || true
done
wait $pid || true
python3 -c "
import json; d=json.load(open('$work/tapir.out'))
floods=[a for a in d['alerts'] if a['alert_type']=='syn_flood']
print('packets', d['packets'], '; syn_flood alerts', len(floods), '; batches dropped', d['batches_dropped'])
print('alert latency', d['alert_latency'])"

#!/usr/bin/env bash
# Live capture rate: tcpreplay --topspeed of 300,000 minimum-size frames across a veth pair
# between two namespaces made here (10.77.0.1 -> 10.77.0.2, nothing leaves them), captured by
# tcpdump and by `tapir analyze --iface`. Prints libpcap's received/dropped for both. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
n=${FRAMES:-300000}
work=${TMPDIR:-/tmp}/tapir-live
mkdir -p "$work"
./target/release/tapir gen --scenario smalludp --packets "$n" --seed 9 --out "$work/small.pcap"
. benches/veth_pair.sh
veth_pair bcap0 10.77.0.2/24 bsnd0 10.77.0.1/24

run() {  # $1 = label, rest = capture command (run in the capture namespace)
    local label=$1; shift
    ip netns exec "$cap" "$@" > "$work/$label.out" 2> "$work/$label.err" &
    local pid=$!
    sleep 1.5
    ip netns exec "$snd" tcpreplay -q --topspeed -i bsnd0 "$work/small.pcap" 2>&1 | grep -E "Actual|Rated" | sed "s/^/  tcpreplay: /"
    wait $pid || true
}
echo "== tcpdump"
run tcpdump timeout -s INT 8 tcpdump -i bcap0 -B 32768 -w /dev/null "udp and dst port 9"
grep -E "captured|received|dropped" "$work/tcpdump.err" | sed 's/^/  /'
echo "== tapir"
run tapir ./target/release/tapir analyze --json --iface bcap0 --duration 8 --bpf "udp and dst port 9"
python3 -c "
import json; d=json.load(open('$work/tapir.out'))
print('  tapir packets', d['packets'], 'of $n; libpcap', d['libpcap'], '; batches dropped', d['batches_dropped'], '; peak RSS %.1f MB' % (d['peak_rss_bytes']/1e6))"

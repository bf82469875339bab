#!/usr/bin/env bash
# Docker-free aarch64 build: Debian's cross gcc and arm64 libpcap, then the binary runs under
# qemu-user on real captures and must print the same summary as the x86 build.
set -euo pipefail
cd "$(dirname "$0")/.."

target=aarch64-unknown-linux-gnu
LIBPCAP_LIBDIR=/usr/lib/aarch64-linux-gnu LIBPCAP_VER="$(dpkg-query -W -f='${Version}' libpcap-dev:arm64 | cut -d- -f1)" \
    cargo build --release --locked --target "$target"
cargo build --release --locked

arm=target/$target/release/tapir
x86=target/release/tapir
file "$arm" 2>/dev/null | grep -q aarch64 || { echo "error: $arm is not an aarch64 binary" >&2; exit 1; }

status=0
for capture in portscan/nmap_tcp_syn_scan.pcap sll/pcpp_sll.pcap dns_normal/pcpp_DnsPackets.pcap; do
    path=../shared/pcaps/$capture
    a=$(qemu-aarch64 "$arm" analyze --json "$path" | python3 -c "import json,sys; d=json.load(sys.stdin); [d.pop(k) for k in ('elapsed_s','packets_per_sec','peak_rss_bytes','alert_latency')]; print(json.dumps(d, sort_keys=True))")
    b=$("$x86" analyze --json "$path" | python3 -c "import json,sys; d=json.load(sys.stdin); [d.pop(k) for k in ('elapsed_s','packets_per_sec','peak_rss_bytes','alert_latency')]; print(json.dumps(d, sort_keys=True))")
    if [ "$a" = "$b" ]; then
        echo "aarch64 == x86_64 on $capture"
    else
        echo "error: aarch64 and x86_64 summaries differ on $capture" >&2
        diff <(echo "$a" | python3 -m json.tool) <(echo "$b" | python3 -m json.tool) >&2 || true
        status=1
    fi
done
exit $status

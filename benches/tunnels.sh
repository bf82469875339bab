#!/usr/bin/env bash
# Throughput and peak memory of `tapir analyze` on the benchmark captures plain and wrapped
# in a tunnel (VXLAN as VPC Traffic Mirroring delivers it, ERSPAN II as a switch does):
# whole process, warm page cache, median of 5 runs taken in turns. Figures, not a test.
#
#   benches/tunnels.sh                   # ./target/release/tapir
#   TAPIR=/path/to/tapir benches/tunnels.sh   # another build (an older commit, say)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v mergecap >/dev/null || { echo "needs mergecap (wireshark-common)"; exit 1; }
tapir=${TAPIR:-./target/release/tapir}
[ -n "${TAPIR:-}" ] || cargo build --release --locked -q

. benches/inputs.sh
for kind in vxlan erspan; do
    [ -f "$work/bench_x10_$kind.pcap" ] || python3 benches/wrap_tunnel.py "$kind" "$bench" "$work/bench_x10_$kind.pcap"
done

inputs=("$bench" "$flood" "$work/bench_x10_vxlan.pcap" "$work/bench_x10_erspan.pcap")
declare -A times rss
for round in 1 2 3 4 5; do
    for f in "${inputs[@]}"; do
        /usr/bin/time -f "%e %M" -o "$work/time.out" "$tapir" analyze --json "$f" >/dev/null 2>&1
        out=$(tail -1 "$work/time.out")
        times[$f]="${times[$f]:-} ${out% *}"
        rss[$f]="${rss[$f]:-} ${out#* }"
    done
done
printf "%-32s %10s %12s %12s\n" input packets packets/s "peak RSS MB"
for f in "${inputs[@]}"; do
    packets=$("$tapir" analyze --json "$f" | python3 -c "import json,sys; print(json.load(sys.stdin)['packets'])")
    python3 - "$f" "$packets" "${times[$f]}" "${rss[$f]}" <<'PY'
import os, statistics, sys
name, packets, times, rss = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(), sys.argv[4].split()
t = statistics.median(float(x) for x in times)
print(f"{os.path.basename(name):32s} {packets:10d} {packets / max(t, 1e-3):12.0f} {max(int(x) for x in rss) / 1024:12.1f}")
PY
done

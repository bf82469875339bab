#!/usr/bin/env bash
# Throughput and peak memory of `tapir analyze` (every detector on, and the core pipeline
# alone as `tapir-core`) against tcpdump and softflowd on the same files (whole processes,
# warm page cache, best of 3). Figures, not a pass/fail test.
#
#   benches/throughput.sh            # the two benchmark inputs of the core issue
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
need=()
for t in mergecap:wireshark-common softflowd:softflowd tcpdump:tcpdump /usr/bin/time:time; do
    command -v "${t%%:*}" >/dev/null || need+=("${t##*:}")
done
[ ${#need[@]} -eq 0 ] || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
cargo build --release --locked -q

. benches/inputs.sh

# best-of-3 wall time (s) and max RSS (KB) of a command
measure() {
    local best=999999 rss=0
    for _ in 1 2 3; do
        local out
        /usr/bin/time -f "%e %M" -o "$work/time.out" "$@" >/dev/null 2>&1 || true
        out=$(tail -1 "$work/time.out")
        local t=${out% *} m=${out#* }
        best=$(python3 -c "print(min($best, $t))")
        rss=$(( m > rss ? m : rss ))
    done
    echo "$best $rss"
}

# The core pipeline alone: every detector switched off.
core=$work/core-only.toml
for rule in port_scan brute_force syn_flood dns_tunneling traffic_spike; do
    printf '[detectors.%s]\nenabled = false\n' "$rule"
done > "$core"

printf "%-28s %-10s %10s %12s %12s\n" input tool seconds packets/s "peak RSS MB"
for f in "$bench1" "$bench" "$flood"; do
    packets=$(./target/release/tapir analyze --json "$f" | python3 -c "import json,sys; print(json.load(sys.stdin)['packets'])")
    for tool in tapir tapir-core tcpdump softflowd; do
        case $tool in
            tapir) r=$(measure ./target/release/tapir analyze --json "$f") ;;
            tapir-core) r=$(measure ./target/release/tapir analyze --json --config "$core" "$f") ;;
            tcpdump) r=$(measure tcpdump -r "$f" -w /dev/null) ;;
            softflowd) r=$(measure softflowd -r "$f" -d) ;;
        esac
        t=${r% *}; m=${r#* }
        printf "%-28s %-10s %10.3f %12.0f %12.1f\n" "$(basename "$f")" "$tool" "$t" "$(python3 -c "print($packets/max($t,1e-3))")" "$(python3 -c "print($m/1024)")"
    done
done

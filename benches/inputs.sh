# Sourced by the benchmarks: the two benchmark inputs of the core issue, made once in
# $TMPDIR/tapir-bench from the shared captures. Sets work, pcaps, bench (the mixed capture
# ×10), flood (the spoofed SYN flood ×20) and bench1 (the mixed capture once).
work=${TMPDIR:-/tmp}/tapir-bench
mkdir -p "$work"
pcaps=../shared/pcaps
bench=$work/bench_x10.pcap
flood=$work/synflood_x20.pcap
bench1=$work/bench_x1.pcap
[ -f "$bench" ] || mergecap -a -F pcap -w "$bench" $(for _ in $(seq 10); do echo $pcaps/derived/bench_concat_mixed_ethernet.pcap; done)
[ -f "$bench1" ] || cp $pcaps/derived/bench_concat_mixed_ethernet.pcap "$bench1"
[ -f "$flood" ] || mergecap -a -F pcap -w "$flood" $(for _ in $(seq 20); do echo $pcaps/synflood/stopddos_synflood_spoofed.pcap; done)

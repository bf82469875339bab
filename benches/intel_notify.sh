#!/usr/bin/env bash
# Threat lists and notifications: `tapir analyze` throughput and peak RSS on the two
# benchmark inputs with a one-million-entry list loaded against none (median of 5), the
# list's load time, and the latency of webhook notifications to a receiver on loopback.
# Figures, not a pass/fail test.
#
#   benches/intel_notify.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v mergecap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wireshark-common >/dev/null
cargo build --release --locked -q

. benches/inputs.sh
mkdir -p "$work/intel"

# A million entries in the proportions of real feeds: 60 % IPv4 addresses, 10 % IPv4
# networks, 10 % IPv6 networks, 20 % domains, in the reserved or documentation ranges so
# that nothing matches.
list=$work/intel/million.txt
[ -f "$list" ] || python3 - "$list" <<'EOF'
import random, sys
random.seed(25)
with open(sys.argv[1], "w") as f:
    for i in range(1_000_000):
        k = i % 10
        if k < 6:
            f.write("240.%d.%d.%d\n" % (random.randrange(256), random.randrange(256), random.randrange(256)))
        elif k == 6:
            n = 0xF0000000 + i * 16
            f.write("%d.%d.%d.%d/28\n" % (n >> 24, n >> 16 & 255, n >> 8 & 255, n & 255))
        elif k == 7:
            f.write("2001:db8:%x:%x::/64\n" % (random.randrange(65536), random.randrange(65536)))
        else:
            f.write("h%016x.example%d.test\n" % (random.getrandbits(64), i % 97))
EOF
with=$work/intel/with.toml
printf '[intel]\ndir = "%s"\n[[intel.list]]\nname = "million"\npath = "million.txt"\n' "$work/intel" > "$with"
none=$work/intel/none.toml
: > "$none"

# median of 5: packets/s, peak RSS (MB)
measure() {
    local config=$1 file=$2
    for _ in 1 2 3 4 5; do
        ./target/release/tapir analyze --json --config "$config" "$file" |
            python3 -c "import json,sys; d=json.load(sys.stdin); print(d['packets_per_sec'], d['peak_rss_bytes']/1e6)"
    done | sort -n | sed -n 3p
}

printf "%-20s %-6s %14s %12s\n" input list packets/s "peak RSS MB"
for f in "$bench" "$flood"; do
    for c in none with; do
        cfg=$none; [ $c = with ] && cfg=$with
        r=$(measure "$cfg" "$f")
        printf "%-20s %-6s %14.0f %12.1f\n" "$(basename "$f")" $c ${r% *} ${r#* }
    done
done

# Load time: the list alone, on a one-packet capture, against no list.
one=$work/intel/one.pcap
[ -f "$one" ] || editcap -r $pcaps/portscan/nmap_tcp_syn_scan.pcap "$one" 1 2>/dev/null
for c in none with; do
    cfg=$none; [ $c = with ] && cfg=$with
    t=$( { /usr/bin/time -f "%e %M" ./target/release/tapir analyze --json --config "$cfg" "$one" >/dev/null; } 2>&1 | tail -1)
    echo "load ($c list): ${t% *} s, peak RSS $(( ${t#* } / 1024 )) MB"
done

# Notification latency: from queueing (the alert's arrival at the notify actor) to the
# receiver's answer, for each alert of the Mr. X scan sent to a webhook on loopback.
port_file=$work/intel/port
python3 -u - "$port_file" <<'EOF' &
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_address[1]))
s.serve_forever()
EOF
receiver=$!
trap 'kill $receiver 2>/dev/null' EXIT
for _ in $(seq 50); do [ -s "$port_file" ] && break; sleep 0.1; done
hook=$work/intel/hook.toml
printf '[[notify]]\nname = "hook"\nkind = "webhook"\nurl = "http://127.0.0.1:%s/hook"\nmin_severity = "low"\nrate_per_minute = 1000\n' "$(cat "$port_file")" > "$hook"
for _ in 1 2 3 4 5; do
    ./target/release/tapir analyze --json --config "$hook" $pcaps/portscan/nfpuzzle4_mr_x_scan.pcap |
        python3 -c "import json,sys; c=json.load(sys.stdin)['notify'][0]['counters']; print('notification latency over %d messages: median %s us, max %s us' % (c['sent'], c['latency_median_us'], c['latency_max_us']))"
done

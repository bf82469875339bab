#!/usr/bin/env bash
# Builds both Debian packages and checks them the way an installation would use them:
# contents and metadata; the unit verifies and its exposure is at most 2.0; the amd64 package,
# unpacked into a throw-away root, runs the way the unit runs it (as an unprivileged user
# with the installed config, here in replay mode) and answers /healthz, writing only to its
# state directory; the arm64 binary from its package, under qemu, analyses captures exactly as
# the amd64 one does. Run by scripts/test.sh after the cross build.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/package-deb.sh amd64 arm64
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
work=$(mktemp -d)
chmod 0755 "$work"
pcaps=$(cd ../shared/pcaps && pwd)
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
fail() { echo "error: $*" >&2; exit 1; }

for arch in amd64 arm64; do
    deb=target/deb/tapir_${version}_${arch}.deb
    info=$(dpkg-deb --info "$deb")
    grep -q "Architecture: $arch" <<<"$info" || fail "$deb: wrong architecture"
    grep -q "conffiles" <<<"$info" || fail "$deb: no conffiles"
    contents=$(dpkg-deb --contents "$deb" | awk '{print $6}')
    for f in ./usr/bin/tapir ./lib/systemd/system/tapir.service ./etc/tapir/tapir.toml \
             ./usr/share/tapir/geoip/dbip-country.mmdb ./usr/share/doc/tapir/README.md \
             ./usr/share/doc/tapir/copyright; do
        grep -qx "$f" <<<"$contents" || fail "$deb lacks $f"
    done
    mkdir -p "$work/$arch"
    dpkg-deb -x "$deb" "$work/$arch"
    echo "$deb: $(du -k "$deb" | cut -f1) kB, binary $(stat -c %s "$work/$arch/usr/bin/tapir") bytes stripped"
done
root=$work/amd64

# The unit: verify (with ExecStart pointing at the unpacked binary) and its exposure.
sed "s|/usr/bin/tapir|$root/usr/bin/tapir|" "$root/lib/systemd/system/tapir.service" > "$work/tapir.service"
systemd-analyze verify "$work/tapir.service"
exposure=$(systemd-analyze security --offline=true "$work/tapir.service" 2>/dev/null \
    | sed -n 's/.*Overall exposure level for tapir.service: \([0-9.]*\).*/\1/p')
echo "unit exposure: $exposure"
python3 -c "import sys; sys.exit(0 if float('$exposure') <= 2.0 else 1)" || fail "exposure $exposure > 2.0"

# Run the installed binary as the unit would: an unprivileged user, the installed config, a
# state directory of its own (here replaying a capture instead of capturing).
state=$work/state
install -d -o nobody -g nogroup -m 0750 "$state"
touch "$work/marker"
sleep 1
(cd "$state" && exec setpriv --reuid=nobody --regid=nogroup --clear-groups \
    env STATE_DIRECTORY="$state" TMPDIR="$state" \
    "$root/usr/bin/tapir" replay "$pcaps/portscan/nmap_tcp_syn_scan.pcap" --loop \
    --config "$root/etc/tapir/tapir.toml" --host 127.0.0.1 --port 0 > "$work/out" 2> "$work/err") &
server=$!
for _ in $(seq 50); do grep -q http:// "$work/out" 2>/dev/null && break; sleep 0.2; done
url=$(grep -o 'http://[0-9.:]*' "$work/out") || { cat "$work/err" >&2; fail "the installed binary did not serve"; }
health=$(curl -fsS "$url/healthz") && grep -q '"ok"' <<<"$health" || fail "/healthz did not answer"
page=$(curl -fsS "$url/") && grep -q '<title>tapir' <<<"$page" || fail "the dashboard is not served"
code=$(curl -s -o /dev/null -w '%{http_code}' "$url/stats")
[ "$code" = 401 ] || fail "/stats answered $code without a login (expected 401)"
[ "$(stat -c %a "$state/auth.json")" = 600 ] || fail "the credentials file is not private"
grep -q "One-time password" "$work/err" || fail "no one-time admin password was printed"
sleep 2
kill -TERM "$server"; wait "$server" || true
[ -d "$state/db" ] || fail "no database in the state directory"
written=$(find "$root" "$work" -newer "$work/marker" -not -path "$state*" -not -path "$work/out" \
    -not -path "$work/err" -not -path "$work" | head)
[ -z "$written" ] || fail "wrote outside its state directory: $written"
echo "installed amd64 package: served as nobody, wrote only to its state directory"

# The arm64 binary from its package analyses captures as the amd64 one does.
for capture in portscan/nmap_tcp_syn_scan.pcap dns_normal/pcpp_DnsPackets.pcap; do
    strip_timing='import json,sys; d=json.load(sys.stdin); [d.pop(k) for k in ("elapsed_s","packets_per_sec","peak_rss_bytes","alert_latency")]; print(json.dumps(d, sort_keys=True))'
    a=$(qemu-aarch64 "$work/arm64/usr/bin/tapir" analyze --json "../shared/pcaps/$capture" | python3 -c "$strip_timing")
    b=$("$root/usr/bin/tapir" analyze --json "../shared/pcaps/$capture" | python3 -c "$strip_timing")
    [ "$a" = "$b" ] || fail "arm64 and amd64 packages differ on $capture"
    echo "arm64 package == amd64 package on $capture"
done
echo "packages checked"

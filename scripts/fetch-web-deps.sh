#!/usr/bin/env bash
# Fetches the dashboard's map data into web/vendor/ (not committed), pinned by checksum:
#   countries-110m.json  world-atlas 2.0.2 (npm, ISC; shapes from Natural Earth, public domain)
#   iso3166.json         ISO 3166-1 alpha-2 → numeric code and name, from Debian's iso-codes,
#                        to join GeoIP's country codes with the map's numeric ids.
# Idempotent. The binary embeds web/ at build time; without these files the map says so.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=web/vendor
mkdir -p "$dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ATLAS_VERSION=2.0.2
ATLAS_SHA256=032e7765f2ce00edaeafec23ff22bc3b77e42987c257da944cc585b452c05b97

if [ ! -s "$dir/countries-110m.json" ]; then
    curl -fsSL --retry 3 -o "$tmp/atlas.tgz" \
        "https://registry.npmjs.org/world-atlas/-/world-atlas-$ATLAS_VERSION.tgz"
    echo "$ATLAS_SHA256  $tmp/atlas.tgz" | sha256sum -c --quiet
    tar -xzf "$tmp/atlas.tgz" -C "$tmp" package/countries-110m.json package/LICENSE
    mv "$tmp/package/LICENSE" "$dir/WORLD-ATLAS-LICENSE"
    mv "$tmp/package/countries-110m.json" "$dir/countries-110m.json"
fi

if [ ! -s "$dir/iso3166.json" ]; then
    python3 - /usr/share/iso-codes/json/iso_3166-1.json "$dir/iso3166.json" <<'PY'
import json, sys
src = json.load(open(sys.argv[1]))["3166-1"]
out = {c["alpha_2"]: [c["numeric"], c.get("common_name", c["name"])] for c in src}
json.dump(out, open(sys.argv[2], "w"), separators=(",", ":"), ensure_ascii=False)
PY
fi

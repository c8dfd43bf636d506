#!/usr/bin/env bash
# Copy the front-end libraries installed from the npm registry next to the map page (no CDN at run time).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=server/web/static/vendor
if [ ! -d node_modules/leaflet/dist ]; then
  npm install --silent --no-audit --no-fund --legacy-peer-deps >/dev/null
fi
mkdir -p "$dest/leaflet"
cp -r node_modules/leaflet/dist/leaflet.js node_modules/leaflet/dist/leaflet.css node_modules/leaflet/dist/images "$dest/leaflet/"

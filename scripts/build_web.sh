#!/usr/bin/env bash
# Copy the front-end libraries installed from the npm registry next to the web app (no CDN at run time):
# Leaflet (live map), Chart.js (planner charts; its UMD build defines the global `Chart`) and Swagger UI (/docs).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=server/web/static/vendor
if [ ! -f node_modules/leaflet/dist/leaflet.js ] || [ ! -f node_modules/chart.js/dist/chart.umd.js ]; then
  npm install --silent --no-audit --no-fund --legacy-peer-deps >/dev/null
fi
mkdir -p "$dest/leaflet" "$dest/chart.js"
cp -r node_modules/leaflet/dist/leaflet.js node_modules/leaflet/dist/leaflet.css node_modules/leaflet/dist/images "$dest/leaflet/"
# chart.umd.js is the minified UMD bundle in Chart.js 4 (chart.umd.min.js is the same code since 4.5).
cp node_modules/chart.js/dist/chart.umd.js "$dest/chart.js/"
cp node_modules/chart.js/LICENSE.md "$dest/chart.js/" 2>/dev/null || true
# Swagger UI for /docs (served from here, never from a CDN).
if [ ! -f node_modules/swagger-ui-dist/swagger-ui-bundle.js ]; then
  npm install --silent --no-audit --no-fund --legacy-peer-deps >/dev/null
fi
mkdir -p "$dest/swagger-ui"
cp node_modules/swagger-ui-dist/swagger-ui-bundle.js node_modules/swagger-ui-dist/swagger-ui.css "$dest/swagger-ui/"
cp node_modules/swagger-ui-dist/LICENSE "$dest/swagger-ui/" 2>/dev/null || true

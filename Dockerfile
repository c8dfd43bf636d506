# Two images from one file: `--target server` (no torch) and `--target edge` (Ultralytics, OpenVINO).
FROM python:3.11-slim AS base
ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY citywatch ./citywatch
COPY contract ./contract
COPY edge ./edge
COPY server ./server
COPY config ./config

# The map page's front-end libraries come from the npm registry at build time (no CDN at run time).
FROM node:20-slim AS web
WORKDIR /web
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --legacy-peer-deps

FROM base AS server
COPY --from=web /web/node_modules/leaflet/dist/leaflet.js /web/node_modules/leaflet/dist/leaflet.css ./server/web/static/vendor/leaflet/
COPY --from=web /web/node_modules/leaflet/dist/images ./server/web/static/vendor/leaflet/images
RUN pip install '.[server]'
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --retries=5 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["citywatch", "server", "run"]

FROM base AS edge
RUN apt-get update && apt-get install -y --no-install-recommends libglib2.0-0 libgl1 && rm -rf /var/lib/apt/lists/* \
 && pip install --index-url https://download.pytorch.org/whl/cpu torch torchvision \
 && pip install '.[edge]'
ENV YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false YOLO_CONFIG_DIR=/tmp/ultralytics
EXPOSE 9108
HEALTHCHECK --interval=15s --timeout=5s --retries=5 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:9108/healthz').status != 200)"
CMD ["citywatch", "edge", "run", "--site", "/app/config/quynhon.yaml"]

#!/usr/bin/env bash
# A real TimescaleDB for the tests and benchmarks (called by scripts/bootstrap.sh; idempotent).
#
# 1. Builds TimescaleDB from the vendored source archive (../shared/vendor-src, see SOURCES.md there)
#    against PostgreSQL 15 and installs it into PostgreSQL 15's lib and extension directories, when
#    that version is not installed yet. A second run builds nothing.
# 2. Creates and starts a second PostgreSQL 15 cluster, "citywatch_ts" on 127.0.0.1:$CITYWATCH_TS_PORT
#    (default 5433, trust auth for local connections), with `shared_preload_libraries = 'timescaledb'`.
#    The machine's default cluster (5432) is left as it is, so the tests cover both backends.
#
# Set CITYWATCH_SKIP_TIMESCALE=1 to skip both (the TimescaleDB test tier then skips with the reason).
set -euo pipefail
cd "$(dirname "$0")/.."

TS_VERSION=2.28.3
TS_SHA256=ec2f7de0ba53a473c01e0a57e09053898c6b1f7487228caff0f1d31c8cb2dedb
PG_VERSION=15
TS_PORT=${CITYWATCH_TS_PORT:-5433}
CLUSTER=citywatch_ts
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
log() { printf '[timescaledb] %s\n' "$*" >&2; }

if [ "${CITYWATCH_SKIP_TIMESCALE:-0}" = 1 ]; then
  log "skipped (CITYWATCH_SKIP_TIMESCALE=1)"
  exit 0
fi

PG_BIN=/usr/lib/postgresql/$PG_VERSION/bin
PG_CONFIG=$PG_BIN/pg_config
[ -x "$PG_CONFIG" ] || PG_CONFIG=/usr/bin/pg_config
libdir=$("$PG_CONFIG" --pkglibdir)
sharedir=$("$PG_CONFIG" --sharedir)

# --- build and install (cached: skipped when this version's library is installed) ---------------
if [ ! -f "$libdir/timescaledb-$TS_VERSION.so" ] || [ ! -f "$sharedir/extension/timescaledb--$TS_VERSION.sql" ]; then
  need=()
  [ -d "/usr/include/postgresql/$PG_VERSION/server" ] || need+=("postgresql-server-dev-$PG_VERSION")
  command -v cmake >/dev/null 2>&1 || need+=(cmake)
  command -v gcc >/dev/null 2>&1 || need+=(gcc)
  command -v make >/dev/null 2>&1 || need+=(make)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  archive=""
  for dir in "${CITYWATCH_VENDOR_SRC:-}" ../shared/vendor-src /work/shared/vendor-src; do
    if [ -n "$dir" ] && [ -f "$dir/timescaledb-$TS_VERSION.tar.gz" ]; then
      archive="$dir/timescaledb-$TS_VERSION.tar.gz"
      break
    fi
  done
  if [ -z "$archive" ]; then
    log "timescaledb-$TS_VERSION.tar.gz not found (set CITYWATCH_VENDOR_SRC to its folder)"
    exit 1
  fi
  echo "$TS_SHA256  $archive" | sha256sum -c --quiet - || { log "checksum mismatch: $archive"; exit 1; }
  build=$(mktemp -d /tmp/citywatch-timescaledb.XXXXXX)
  log "building TimescaleDB $TS_VERSION in $build (a few minutes)"
  tar -xzf "$archive" -C "$build"
  src=$(find "$build" -mindepth 1 -maxdepth 1 -type d | head -1)
  (
    cd "$src"
    ./bootstrap -DREGRESS_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF -DTAP_CHECKS=OFF \
      -DPG_CONFIG="$PG_CONFIG" -DCMAKE_BUILD_TYPE=Release >"$build/configure.log" 2>&1 \
      || { tail -30 "$build/configure.log" >&2; exit 1; }
    nice make -C build -j"$(nproc)" >"$build/make.log" 2>&1 || { tail -30 "$build/make.log" >&2; exit 1; }
    $SUDO make -C build install >"$build/install.log" 2>&1 || { tail -30 "$build/install.log" >&2; exit 1; }
  )
  rm -rf "$build"
  log "installed TimescaleDB $TS_VERSION into $libdir"
fi

# --- the tests' own cluster with TimescaleDB preloaded --------------------------------------------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! pg_lsclusters -h 2>/dev/null | awk '{print $1, $2}' | grep -qx "$PG_VERSION $CLUSTER"; then
  log "creating PostgreSQL $PG_VERSION cluster $CLUSTER on 127.0.0.1:$TS_PORT"
  $SUDO pg_createcluster "$PG_VERSION" "$CLUSTER" -p "$TS_PORT" -- \
    --auth-local=trust --auth-host=trust >/dev/null
  conf=/etc/postgresql/$PG_VERSION/$CLUSTER/conf.d/citywatch.conf
  $SUDO tee "$conf" >/dev/null <<EOF
# Written by citywatch scripts/timescaledb.sh: the tests' and benchmarks' TimescaleDB cluster.
listen_addresses = '127.0.0.1'
shared_preload_libraries = 'timescaledb'
timescaledb.telemetry_level = off
max_connections = 200
max_worker_processes = 24
timescaledb.max_background_workers = 8
EOF
fi
if ! port_open "$TS_PORT"; then
  log "starting cluster $CLUSTER on 127.0.0.1:$TS_PORT"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$PG_VERSION" "$CLUSTER" start
  for _ in $(seq 1 30); do port_open "$TS_PORT" && break; sleep 1; done
fi
log "ready: postgresql://postgres@127.0.0.1:$TS_PORT/postgres (TimescaleDB $TS_VERSION preloaded)"

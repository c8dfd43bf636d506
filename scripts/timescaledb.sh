#!/usr/bin/env bash
# A real TimescaleDB for the tests and benchmarks (called by scripts/bootstrap.sh; idempotent).
#
# Nothing of the machine's own PostgreSQL changes: TimescaleDB goes into a private, relocated copy of
# PostgreSQL 15 under $CITYWATCH_TS_HOME (default /var/lib/citywatch-timescale; PostgreSQL finds its
# share and lib directories relative to its binaries), so the default cluster on 5432 does not even see
# the extension. From that copy, two clusters owned by the tests:
#   - 127.0.0.1:$CITYWATCH_TS_PORT (default 5433) with shared_preload_libraries = 'timescaledb';
#   - 127.0.0.1:$CITYWATCH_TS_NOPRELOAD_PORT (default 5434) with the extension installed but not
#     preloaded: the common operator mistake, which the server must survive (tests/server/test_migrate).
#
# 1. Copies PostgreSQL 15 (binaries, lib, share, server headers) into the private prefix, once.
# 2. Builds TimescaleDB from the vendored source archive (../shared/vendor-src, see SOURCES.md there)
#    against that copy and installs it there, when that version is not installed yet (cached: a
#    second run builds nothing).
# 3. Creates (initdb) and starts both clusters when they are not running.
#
# Set CITYWATCH_SKIP_TIMESCALE=1 to skip it all (the TimescaleDB test tier then skips, or fails in CI).
set -euo pipefail
cd "$(dirname "$0")/.."

TS_VERSION=2.28.3
TS_SHA256=ec2f7de0ba53a473c01e0a57e09053898c6b1f7487228caff0f1d31c8cb2dedb
PG_VERSION=15
HOME_DIR=${CITYWATCH_TS_HOME:-/var/lib/citywatch-timescale}
TS_PORT=${CITYWATCH_TS_PORT:-5433}
NOPRELOAD_PORT=${CITYWATCH_TS_NOPRELOAD_PORT:-5434}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
log() { printf '[timescaledb] %s\n' "$*" >&2; }
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ "${CITYWATCH_SKIP_TIMESCALE:-0}" = 1 ]; then
  log "skipped (CITYWATCH_SKIP_TIMESCALE=1)"
  exit 0
fi

PREFIX=$HOME_DIR/pg$PG_VERSION
BIN=$PREFIX/usr/lib/postgresql/$PG_VERSION/bin
LIB=$PREFIX/usr/lib/postgresql/$PG_VERSION/lib
SHARE=$PREFIX/usr/share/postgresql/$PG_VERSION

# --- 1. the private copy of PostgreSQL 15 (with the server headers the build needs) ---------------
need=()
[ -x "/usr/lib/postgresql/$PG_VERSION/bin/postgres" ] || need+=("postgresql-$PG_VERSION")
[ -d "/usr/include/postgresql/$PG_VERSION/server" ] || need+=("postgresql-server-dev-$PG_VERSION")
if [ ! -f "$LIB/timescaledb-$TS_VERSION.so" ]; then
  command -v cmake >/dev/null 2>&1 || need+=(cmake)
  command -v gcc >/dev/null 2>&1 || need+=(gcc)
  command -v make >/dev/null 2>&1 || need+=(make)
fi
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -x "$BIN/postgres" ]; then
  log "copying PostgreSQL $PG_VERSION into $PREFIX"
  $SUDO mkdir -p "$PREFIX/usr/lib/postgresql" "$PREFIX/usr/share/postgresql" "$PREFIX/usr/include"
  $SUDO cp -a "/usr/lib/postgresql/$PG_VERSION" "$PREFIX/usr/lib/postgresql/"
  $SUDO cp -a "/usr/share/postgresql/$PG_VERSION" "$PREFIX/usr/share/postgresql/"
  $SUDO cp -a /usr/include/postgresql "$PREFIX/usr/include/"
fi

# --- 2. build and install TimescaleDB into the copy (cached) ---------------------------------------
if [ ! -f "$LIB/timescaledb-$TS_VERSION.so" ] || [ ! -f "$SHARE/extension/timescaledb--$TS_VERSION.sql" ]; then
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
      -DPG_CONFIG="$BIN/pg_config" -DCMAKE_BUILD_TYPE=Release >"$build/configure.log" 2>&1 \
      || { tail -30 "$build/configure.log" >&2; exit 1; }
    nice make -C build -j"$(nproc)" >"$build/make.log" 2>&1 || { tail -30 "$build/make.log" >&2; exit 1; }
    $SUDO make -C build install >"$build/install.log" 2>&1 || { tail -30 "$build/install.log" >&2; exit 1; }
  )
  rm -rf "$build"
  log "installed TimescaleDB $TS_VERSION into $PREFIX"
fi

# --- 3. the tests' clusters ------------------------------------------------------------------------
cluster() {  # name port preload
  local data=$HOME_DIR/$1 port=$2 preload=$3
  if [ ! -f "$data/PG_VERSION" ]; then
    log "creating cluster $1 on 127.0.0.1:$port (preload timescaledb: $preload)"
    $SUDO mkdir -p "$data"
    $SUDO chown postgres:postgres "$data"
    $SUDO chmod 700 "$data"
    as_pg "$BIN/initdb" -D "$data" -U postgres --auth=trust -E UTF8 >/dev/null
    {
      echo "# Written by citywatch scripts/timescaledb.sh: a test cluster."
      echo "port = $port"
      echo "listen_addresses = '127.0.0.1'"
      echo "unix_socket_directories = '$data'"
      echo "max_connections = 200"
      if [ "$preload" = yes ]; then
        echo "shared_preload_libraries = 'timescaledb'"
        echo "timescaledb.telemetry_level = off"
        echo "max_worker_processes = 24"
        echo "timescaledb.max_background_workers = 8"
      fi
    } | as_pg tee -a "$data/postgresql.conf" >/dev/null
  fi
  if ! port_open "$port"; then
    log "starting cluster $1 on 127.0.0.1:$port"
    as_pg "$BIN/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >/dev/null
  fi
}
cluster ts "$TS_PORT" yes
cluster nopreload "$NOPRELOAD_PORT" no
log "ready: postgresql://postgres@127.0.0.1:$TS_PORT/postgres (TimescaleDB $TS_VERSION preloaded)," \
  "postgresql://postgres@127.0.0.1:$NOPRELOAD_PORT/postgres (installed, not preloaded)"

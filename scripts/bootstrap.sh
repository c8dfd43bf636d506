#!/usr/bin/env bash
# All set-up on a fresh Debian machine: Python environment, system services (Mosquitto, PostgreSQL,
# Chromium, TimescaleDB and its test cluster), started if not running. Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
log() { printf '[bootstrap] %s\n' "$*" >&2; }

# --- system packages ---------------------------------------------------------------------------
need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto mosquitto-clients)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
if [ "${CITYWATCH_SKIP_BROWSER:-0}" != 1 ]; then
  [ -x /usr/bin/chromium ] || need+=(chromium chromium-driver)
fi
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# --- services ----------------------------------------------------------------------------------
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! port_open 1883; then
  log "starting mosquitto on 127.0.0.1:1883"
  MOSQ=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  $SUDO "$MOSQ" -d -c /etc/mosquitto/mosquitto.conf
fi
if ! port_open 5432; then
  log "starting PostgreSQL on 127.0.0.1:5432"
  ver=$(ls /etc/postgresql | sort -n | tail -1)
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start
  # A cluster we installed uses peer/md5 auth: give postgres the password the defaults use.
  $SUDO -u postgres psql -qc "ALTER USER postgres PASSWORD 'postgres'" >/dev/null 2>&1 || \
    su postgres -c "psql -qc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
fi
for _ in $(seq 1 30); do port_open 5432 && port_open 1883 && break; sleep 1; done

# --- TimescaleDB: built from ../shared/vendor-src once, and the tests' own cluster on 5433 -------
scripts/timescaledb.sh

# --- Python environment ------------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
if ! .venv/bin/python -c "import torchvision" >/dev/null 2>&1; then
  # Only these pairs import together here (see DEVELOPERS.md / README): pin them explicitly.
  if [ "$(uname -m)" = x86_64 ]; then
    log "installing torch 2.14.1 + torchvision 0.29.1"
    .venv/bin/pip install -q torch==2.14.1 torchvision==0.29.1
  else
    log "installing torch 2.9.1 + torchvision 0.24.1"
    .venv/bin/pip install -q torch==2.9.1 torchvision==0.24.1
  fi
fi
stamp=.venv/.citywatch-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  log "installing citywatch[edge,server,dev]"
  .venv/bin/pip install -q -e '.[edge,server,dev]'
  # Ultralytics pulls the GUI OpenCV wheel; keep only the headless one so cv2 is unambiguous.
  if .venv/bin/pip show -q opencv-python >/dev/null 2>&1; then
    .venv/bin/pip uninstall -q -y opencv-python
    .venv/bin/pip install -q --force-reinstall --no-deps "$(.venv/bin/pip freeze | grep -i '^opencv-python-headless')"
  fi
  touch "$stamp"
fi
if [ -f package.json ] && command -v npm >/dev/null 2>&1; then
  if [ ! -d node_modules ] || [ package.json -nt node_modules ]; then
    log "installing npm packages"
    npm install --silent --no-audit --no-fund --legacy-peer-deps >/dev/null
    touch node_modules
  fi
  scripts/build_web.sh
fi
log "ready"

#!/usr/bin/env bash
# The whole test suite: set-up, lint, type check, tests. `.ci/run` calls this through `make test`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false YOLO_CONFIG_DIR="${YOLO_CONFIG_DIR:-$PWD/.cache/ultralytics}"
mkdir -p "$YOLO_CONFIG_DIR" .artifacts
echo "== ruff"; .venv/bin/ruff check .
echo "== ruff format"; .venv/bin/ruff format --check . >/dev/null || { .venv/bin/ruff format --diff . | head -50; exit 1; }
echo "== mypy --strict"; .venv/bin/mypy
echo "== schemas"; .venv/bin/citywatch contract schemas --check
echo "== pytest"
# pytest exits 5 when no test ran, which fails this script as it should.
.venv/bin/pytest --junitxml=.artifacts/junit.xml "$@"

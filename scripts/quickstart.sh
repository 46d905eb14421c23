#!/usr/bin/env bash
# Installs defect-genome and runs examples/w-quickstart.yaml on the embedded default (SQLite, in-process).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/defect-genome run examples/w-quickstart.yaml "$@"

#!/usr/bin/env bash
# Installs defect-genome, runs examples/w-quickstart.yaml on the embedded default (SQLite, in-process) and
# writes the labelled cells to quickstart-export/ (train.cfg, train.pckl.gzip, train.extxyz).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/defect-genome run examples/w-quickstart.yaml --export quickstart-export "$@"

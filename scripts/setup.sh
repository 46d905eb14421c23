#!/usr/bin/env bash
# Creates .venv with Python 3.11 and installs the project with its pinned dependencies, GPAW included.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), "defect-genome needs Python 3.11"' 
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Reinstall only when pyproject.toml changed since the last install.
stamp=.venv/.defect-genome-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[test]"
  touch "$stamp"
fi
# The dashboard's charting library and structure viewer, from the npm registry (checked sha512; no CDN at run time).
bash scripts/vendor_js.sh
# GPAW builds from source against Debian's libxc/OpenBLAS/FFTW (idempotent, ~75 s the first time).
bash scripts/install_gpaw.sh "$PWD/.venv"

#!/usr/bin/env bash
# Installs what the tests need (PostgreSQL and Redis via apt if absent, the project in .venv) and runs them.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m slow`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
bash scripts/setup.sh
bash scripts/browser.sh  # chromium for the dashboard test
# Lint and type-check first ([tool.ruff] and [tool.mypy] in pyproject.toml); set -e stops here on a finding.
.venv/bin/ruff check .
.venv/bin/mypy
export DG_TEST_POSTGRES_URL=${DG_TEST_POSTGRES_URL:-postgresql://postgres:postgres@127.0.0.1:5432/postgres}
export DG_TEST_REDIS_URL=${DG_TEST_REDIS_URL:-redis://127.0.0.1:6379/9}
exec .venv/bin/python -m pytest "$@"

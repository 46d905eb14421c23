#!/usr/bin/env bash
# The browser of the dashboard's end-to-end test: Debian's chromium (driven by Playwright from PyPI through
# executable_path; `playwright install` is not used). Installs it with apt when absent.
set -euo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v chromium >/dev/null 2>&1; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
chromium --version

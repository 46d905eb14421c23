#!/usr/bin/env bash
# Vendors the dashboard's JavaScript into app/static/vendor/ from the npm registry (no CDN at run time):
#   uPlot 1.6.32 (MIT, charts) and 3Dmol.js 2.5.5 (BSD-3-Clause, the structure viewer).
# Each tarball is checked against the registry's sha512 integrity before anything is extracted.
# Idempotent: does nothing when the pinned versions are already in place.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=app/static/vendor
stamp=$dest/VERSIONS
want="uplot@1.6.32 3dmol@2.5.5"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then exit 0; fi
mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
"$PY" - "$work" "$dest" <<'PYEOF'
import base64, hashlib, io, sys, tarfile, urllib.request
from pathlib import Path

work, dest = Path(sys.argv[1]), Path(sys.argv[2])
PACKAGES = {  # name, version, sha512 integrity (npm view NAME@VERSION dist.integrity), files to keep
    "uplot": ("1.6.32", "KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==",
              {"package/dist/uPlot.iife.min.js": "uPlot.iife.min.js", "package/dist/uPlot.min.css": "uPlot.min.css",
               "package/LICENSE": "uPlot.LICENSE"}),
    "3dmol": ("2.5.5", "kqNHouGqq3YfW58174tdERvm0XYTmP0tavQKOqIw1ouc2OJ7epkXEFrtEkVXV0clBZT2Ze2xHRC/qxX0u0qCdw==",
              {"package/build/3Dmol-min.js": "3Dmol-min.js",
               "package/build/3Dmol-min.js.LICENSE.txt": "3Dmol-min.js.LICENSE.txt"}),
}
for name, (version, integrity, files) in PACKAGES.items():
    url = f"https://registry.npmjs.org/{name}/-/{name}-{version}.tgz"
    payload = urllib.request.urlopen(url, timeout=120).read()
    digest = base64.b64encode(hashlib.sha512(payload).digest()).decode()
    if digest != integrity:
        sys.exit(f"{url}: sha512 {digest} is not the registry's {integrity}")
    with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as tar:
        for member, target in files.items():
            (dest / target).write_bytes(tar.extractfile(member).read())
    print(f"vendored {name} {version}")
PYEOF
echo "$want" > "$stamp"

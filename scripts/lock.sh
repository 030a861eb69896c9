#!/usr/bin/env bash
# Regenerate requirements-lock.txt (every package, exact versions) from requirements.txt.
# pip resolves requirements.txt without installing anything, preferring the versions installed in
# .venv (the tested ones), so the lock holds exactly the dependency closure of requirements.txt:
# a package installed in .venv by hand (and not required) does not leak into it.
# The CPU wheel's local tag (+cpu) is dropped so the same pin takes PyPI's CUDA build elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
.venv/bin/python -m pip freeze --exclude-editable 2>/dev/null | grep -v -i '^smoothing-companion' > "$tmp/installed.txt"
.venv/bin/python -m pip install --dry-run --ignore-installed --quiet --report "$tmp/report.json" \
  -r requirements.txt -c "$tmp/installed.txt" 2>&1 | { grep -v -E "^WARNING: Location '.*' is ignored" || true; }
{ echo "# Full pinned environment (python 3.11). Regenerate with scripts/lock.sh; direct deps: requirements.txt"
  .venv/bin/python - "$tmp/report.json" <<'EOF'
import json, re, sys
pins = {i["metadata"]["name"]: i["metadata"]["version"] for i in json.load(open(sys.argv[1]))["install"]}
for name in sorted(pins, key=str.lower):
    if name.lower() not in ("pip", "setuptools", "wheel"):
        print(f"{name}=={re.sub(r'[+]cpu$', '', pins[name])}")
EOF
} > "$tmp/lock.txt"
mv "$tmp/lock.txt" requirements-lock.txt

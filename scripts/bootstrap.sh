#!/usr/bin/env bash
# Creates .venv and installs the pinned requirements, once per change of the requirements files.
# Installs Debian packages the project needs (git, bash are expected; chromium only when asked).
# Installs the Node tools the tests run (tools/: asl-validator), once per change of their lock.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

need_apt=()
command -v git >/dev/null 2>&1 || need_apt+=(git)
if [ "${ROADIE_NEED_BROWSER:-0}" = "1" ] && [ ! -x /usr/bin/chromium ]; then
  need_apt+=(chromium chromium-driver)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = "0" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "bootstrap: please install: ${need_apt[*]}" >&2; exit 1
  fi
fi

# Node tools (tools/package.json, pinned by tools/package-lock.json): the tests run them, so a
# missing npm is an error, never a skipped check.
node_stamp=tools/node_modules/.package-lock.sha
node_want=$(cat tools/package.json tools/package-lock.json | sha256sum | cut -d' ' -f1)
if [ ! -f "$node_stamp" ] || [ "$(cat "$node_stamp")" != "$node_want" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "bootstrap: npm is required (Node.js 18 or newer) for tools/ (asl-validator, which" \
      "the tests run); install Node.js with npm and run again" >&2
    exit 1
  fi
  npm ci --prefix tools --no-audit --no-fund --loglevel=error \
    || { echo "bootstrap: npm ci --prefix tools failed" >&2; exit 1; }
  echo "$node_want" > "$node_stamp"
fi

stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# chalice 1.34 drives pip to vendor the Lambda dependencies and supports pip < 26.3
.venv/bin/pip install --disable-pip-version-check -q "pip==26.2.1" 2>&1 | grep -v "is ignored" || true
.venv/bin/pip install --disable-pip-version-check -q -r requirements-dev.txt 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import chalice, moto, pynamodb, aws_lambda_powertools" \
  || { echo "bootstrap: install failed" >&2; exit 1; }
echo "$want" > "$stamp"

#!/usr/bin/env bash
# Creates .venv and installs the pinned requirements, once per change of the requirements files.
# Installs Debian packages the project needs (git, bash are expected; chromium only when asked).
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

stamp=.venv/.requirements.sha
want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install --disable-pip-version-check -q --upgrade pip 2>&1 | grep -v "is ignored" || true
.venv/bin/pip install --disable-pip-version-check -q -r requirements-dev.txt 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import chalice, moto, pynamodb, aws_lambda_powertools" \
  || { echo "bootstrap: install failed" >&2; exit 1; }
echo "$want" > "$stamp"

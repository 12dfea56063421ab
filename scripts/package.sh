#!/usr/bin/env bash
# Builds the AWS deployment: the merge template from the Python definitions, `chalice package`
# merged with it, then cfn-lint on the result. Usage: scripts/package.sh [OUT_DIR] (default out).
# ROADIE_STAGE picks the Chalice stage (default dev); AWS_DEFAULT_REGION defaults to us-east-1.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-out}
stage=${ROADIE_STAGE:-dev}
venv=${VENV:-.venv}
export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
export ROADIE_STATE_DIR=${ROADIE_STATE_DIR:-$PWD/.roadie}
mkdir -p "$out"
"$venv/bin/python" -m infra.template --stage "$stage" "$out/merge-template.json"
"$venv/bin/chalice" package --stage "$stage" --merge-template "$out/merge-template.json" "$out/"
# warnings are printed but do not fail the build; errors do
"$venv/bin/cfn-lint" --non-zero-exit-code error "$out/sam.json"
echo "package: $out/sam.json and $out/deployment.zip are ready (stage $stage)"

#!/usr/bin/env bash
# `make deploy STAGE=prod BUCKET=<artifact bucket> CONFIG=<pipeline.toml> [REGION=..]
#  [PARAMETERS="AlarmTopicArn=arn:... PollSeconds=5"]`: build and lint the package (infra.package),
# upload the code and the template to S3 (`aws cloudformation package`: templates over 51,200
# bytes must go through S3), then create or update the stack `roadie-<stage>` and print its
# Outputs (API, webhook and dashboard URLs). Uses the AWS credentials of the shell.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:-} bucket=${2:-} config=${3:-} region=${4:-us-east-1}
venv=${VENV:-.venv}
die() { echo "deploy: $*" >&2; exit 2; }
[[ $stage =~ ^[a-z][a-z0-9]{0,15}$ ]] || die "STAGE must be a short lower-case name (got '$stage')"
[[ -n $bucket ]] || die "BUCKET=<an S3 bucket in $region for the artifacts> is required"
[[ -n $config && -f $config ]] || die "CONFIG=<your pipeline config> is required (got '$config')"
if [[ $config -ef infra/pipeline.example.toml && ${ROADIE_ALLOW_EXAMPLE_CONFIG:-0} != 1 ]]; then
  die "CONFIG is the example config; give your own (or set ROADIE_ALLOW_EXAMPLE_CONFIG=1)"
fi
out=out/$stage
stack=roadie-$stage
"$venv/bin/python" -m infra.package --stage "$stage" --config "$config" --out "$out"
aws=("$venv/bin/aws" --region "$region")
"${aws[@]}" cloudformation package --use-json \
  --template-file "$out/sam.json" --output-template-file "$out/packaged.json" \
  --s3-bucket "$bucket" --s3-prefix "roadie/$stage"
overrides=()
read -r -a overrides <<< "${PARAMETERS:-}"
"${aws[@]}" cloudformation deploy \
  --template-file "$out/packaged.json" --stack-name "$stack" \
  --s3-bucket "$bucket" --s3-prefix "roadie/$stage" \
  --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
  --no-fail-on-empty-changeset \
  ${overrides[@]:+--parameter-overrides "${overrides[@]}"}
"${aws[@]}" cloudformation describe-stacks --stack-name "$stack" \
  --query "Stacks[0].Outputs[].[OutputKey,OutputValue]" --output text

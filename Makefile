# Roadie's front door (the local stack contract): every target installs what it needs by itself.
.DEFAULT_GOAL := help
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONDONTWRITEBYTECODE := 1

STAGE ?= dev
CONFIG ?= infra/pipeline.example.toml
REGION ?= $(or $(AWS_REGION),$(AWS_DEFAULT_REGION),us-east-1)

.PHONY: help venv demo serve test lint typecheck unit functional bench package deploy clean

help:
	@echo "make demo   - run the main job: deploys of the sample app (v1, v2, the worse v3 rolled back)"
	@echo "             (on a fresh state of its own, \$${ROADIE_STATE_DIR:-.roadie}/demo)"
	@echo "make serve  - keep the embedded stack + HTTP API up on 127.0.0.1:\$${ROADIE_PORT:-8000}"
	@echo "             (state kept in \$${ROADIE_STATE_DIR:-.roadie} across restarts; ROADIE_FRESH=1 or make clean starts empty)"
	@echo "make test   - every test, lint and type check"
	@echo "make bench  - benchmarks (print ratios; see bench/README.md)"
	@echo "make package [STAGE=dev] [CONFIG=infra/pipeline.example.toml]"
	@echo "             - the AWS artifact in out/: sam.json + deployment.zip, linted"
	@echo "make deploy STAGE=prod BUCKET=<artifact bucket> CONFIG=<your pipeline.toml>"
	@echo "             - package, upload to S3 and create/update the CloudFormation stack"

venv:
	@./scripts/bootstrap.sh

demo: venv
	$(PY) -m devstack demo

serve: venv
	$(PY) -m devstack serve

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy

test: venv lint typecheck
	$(PY) -m infra.package --stage dev --config infra/pipeline.example.toml --out out
	$(VENV)/bin/pytest -n 2 --dist loadfile

package: venv
	$(PY) -m infra.package --stage $(STAGE) --config $(CONFIG) --out out

deploy: venv
	./scripts/deploy.sh "$(STAGE)" "$(BUCKET)" "$(CONFIG)" "$(REGION)"

bench: venv
	$(PY) -m bench

clean:
	rm -rf .roadie out .cache

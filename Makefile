# labelwise developer tasks. `make help` lists them. Everything a target needs is set up by it:
# on a fresh machine with python3 (>= 3.11), make and access to PyPI, `make serve` and `make test` work.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# --- project venv (Python >= 3.11; prefer 3.11, the version mypy/ruff target) -------------------
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
VENV_PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.labelwise-installed
# Exact, hashed pins of runtime + [dev] + [build] (Python 3.11, linux), used by `make venv` and CI.
LOCK := requirements.lock
# pip-tools and pip-audit in their own venv (`make lock`, `make audit`), never in the project's.
LOCK_VENV := .tools/lock
LOCK_STAMP := $(LOCK_VENV)/.installed

# --- built models (Settings.model_dir locally; cached by recipe inputs) ------------------------
MODEL_DIR ?= $(or $(LABELWISE_MODEL_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/labelwise/models)

# --- AWS SAM CLI in its own venv, so its pins never constrain the project ------------------------
SAM_CLI_VERSION ?= 1.170.0
SAM_VENV := .tools/sam
SAM := $(SAM_VENV)/bin/sam
SAM_STAMP := $(SAM_VENV)/.installed-$(SAM_CLI_VERSION)
# python3.12 (the Lambda runtime's version): pyenv's if present, else any python3.12, else python3.
SAM_PYTHON ?= $(shell for p in "$$HOME/.pyenv/versions/3.12.1/bin/python3.12" \
	"$$(pyenv which python3.12 2>/dev/null)" "$$(command -v python3.12 2>/dev/null)"; do \
	[ -n "$$p" ] && [ -x "$$p" ] && { echo "$$p"; exit 0; }; done; command -v python3)
SAM_ENV := PATH="$(dir $(SAM_PYTHON)):$$PATH" SAM_CLI_TELEMETRY=0
AWS_REGION ?= us-east-1

# Build outputs hold third-party code; ruff skips them through .gitignore only inside a git checkout.
RUFF_EXCLUDE := --extend-exclude .aws-sam,.tools,build,dist

# --- tests ---------------------------------------------------------------------------------------
# Workers for pytest-xdist ("0" = run in-process). See docs/deploy.md "CI" for the measurement.
PYTEST_WORKERS ?= 2
PYTEST_ARGS ?=
PYTEST = $(VENV_PY) -m pytest $(if $(filter-out 0,$(PYTEST_WORKERS)),-n $(PYTEST_WORKERS)) $(PYTEST_ARGS)
# pytest exits 5 when a directory holds no tests yet: not a failure for a per-directory target.
define run_pytest
	rc=0; $(PYTEST) $(1) || rc=$$?; \
	if [ $$rc = 5 ]; then echo "make: no tests collected in $(1)"; rc=0; fi; exit $$rc
endef

.PHONY: help venv model serve test test-unit test-integration test-e2e lint format openapi bench eval eval-smoke \
	sam-tool validate sam-build clean distclean fuzz lock lock-tool audit

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' \
	  $(MAKEFILE_LIST)

# ------------------------------------------------------------------------------------------------
$(VENV_STAMP): pyproject.toml $(LOCK)
	@[ -n "$(PYTHON)" ] || { echo "make: python3 not found" >&2; exit 2; }
	@"$(PYTHON)" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { \
	  echo "make: labelwise needs Python >= 3.11 ($(PYTHON) is $$("$(PYTHON)" -V 2>&1)); set PYTHON=..." >&2; \
	  exit 2; }
	[ -x "$(VENV_PY)" ] || "$(PYTHON)" -m venv "$(VENV)"
	"$(VENV_PY)" -m pip install --quiet --disable-pip-version-check --upgrade pip
	"$(VENV_PY)" -m pip install --quiet --disable-pip-version-check --require-hashes -r "$(LOCK)"
	"$(VENV_PY)" -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch "$@"

venv: $(VENV_STAMP) ## Create .venv (Python >= 3.11): requirements.lock, then labelwise (re-runs when either changes)

model: venv ## Build the int8 ONNX models into MODEL_DIR (cached by recipe inputs)
	"$(VENV_PY)" -m labelwise.modelbuild --out "$(MODEL_DIR)"

serve: venv model ## Run the local API server (labelwise serve; SERVE_ARGS=... to pass options)
	"$(VENV)/bin/labelwise" serve $(SERVE_ARGS)

# ------------------------------------------------------------------------------------------------
test: venv model sam-build ## Everything: unit, integration (template, layer size) and e2e tests
	$(PYTEST) tests/unit tests/integration tests/e2e tests/fuzz

test-unit: venv ## Unit tests (in-memory fakes; model-marked tests skip when the model is not built)
	@$(call run_pytest,tests/unit)

test-integration: venv ## Integration tests (template, moto; layer size after `make sam-build`)
	@$(call run_pytest,tests/integration)

test-e2e: venv model ## End-to-end tests (local server/handlers with the real int8 model)
	@$(call run_pytest,tests/e2e)

lint: venv ## ruff check, ruff format --check, mypy
	"$(VENV)/bin/ruff" check $(RUFF_EXCLUDE) .
	"$(VENV)/bin/ruff" format --check $(RUFF_EXCLUDE) .
	"$(VENV)/bin/mypy"
	"$(VENV)/bin/mypy" functions/classify
	"$(VENV)/bin/mypy" functions/train

format: venv ## ruff format and ruff check --fix
	"$(VENV)/bin/ruff" format $(RUFF_EXCLUDE) .
	"$(VENV)/bin/ruff" check --fix $(RUFF_EXCLUDE) .

openapi: venv ## Regenerate the committed OpenAPI document
	"$(VENV_PY)" -m labelwise.api.openapi --write

# Requests schemathesis sends in `make fuzz` (tests/fuzz runs a few hundred inside `make test`).
FUZZ_EXAMPLES ?= 5100
fuzz: venv model ## schemathesis vs docs/openapi.json on the local server (FUZZ_EXAMPLES=5100: 5,120 requests; report: fuzz-report.json)
	"$(VENV_PY)" scripts/fuzz.py --examples "$(FUZZ_EXAMPLES)" --report fuzz-report.json

bench: venv model ## Speed benchmarks: text engines vs baselines (own .venv-bench), images, endpoint, uploads
	"$(VENV_PY)" scripts/bench.py
	"$(VENV_PY)" scripts/bench_images.py
	"$(VENV_PY)" scripts/bench_endpoint.py
	"$(VENV_PY)" scripts/bench_uploads.py

# `make eval` reports on the test group only (docs/evaluation.md "Dataset groups"); choices are made
# with `--group dev` runs of the same scripts, never with these.
eval: venv model ## Report accuracy on the test group: few-shot curves vs baselines, wording panel, images (docs/*.md)
	"$(VENV_PY)" scripts/eval_fewshot.py --group test --json results/fewshot-test.json --plot docs/img/fewshot_curves.png
	"$(VENV_PY)" scripts/tune_zeroshot.py --group test --methods shipped --out results/zeroshot-wording-test.json
	"$(VENV_PY)" scripts/eval_images.py

eval-smoke: venv model ## The few-shot evaluation, small (one development set, k = 4 and 16, 2 seeds; in `make test`)
	"$(VENV_PY)" scripts/eval_fewshot.py --group dev --quick --max-texts 400

# ------------------------------------------------------------------------------------------------
$(LOCK_STAMP):
	[ -x "$(LOCK_VENV)/bin/python" ] || "$(PYTHON)" -m venv "$(LOCK_VENV)"
	"$(LOCK_VENV)/bin/python" -m pip install --quiet --disable-pip-version-check "pip-tools>=7.4" "pip-audit>=2.7"
	touch "$@"

lock-tool: $(LOCK_STAMP) ## Install pip-tools and pip-audit into .tools/lock (own venv)

lock: lock-tool ## Re-resolve requirements.lock from pyproject.toml (pip-compile --generate-hashes; minutes)
	"$(LOCK_VENV)/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras --extra dev \
	  --no-emit-index-url --no-emit-find-links --output-file "$(LOCK)" pyproject.toml
	@# labelwise[build] inside [dev] makes pip-compile pin the project itself: drop that entry.
	"$(LOCK_VENV)/bin/python" -c 'import re, sys; p = sys.argv[1]; s = open(p).read(); \
	  s = re.sub(r"# WARNING: pip install will require[^\n]*\n# Consider[^\n]*\nlabelwise @ [^\n]*\n(    #[^\n]*\n)*", "", s); \
	  open(p, "w").write(s)' "$(LOCK)"

audit: lock-tool ## pip-audit requirements.lock (PyPI advisory DB; --strict: fails when a package cannot be audited)
	"$(LOCK_VENV)/bin/pip-audit" -r "$(LOCK)" --require-hashes --disable-pip --strict --progress-spinner off

# ------------------------------------------------------------------------------------------------
$(SAM_STAMP):
	@[ -n "$(SAM_PYTHON)" ] || { echo "make: no python3 for the SAM CLI venv" >&2; exit 2; }
	[ -x "$(SAM_VENV)/bin/python" ] || "$(SAM_PYTHON)" -m venv "$(SAM_VENV)"
	"$(SAM_VENV)/bin/python" -m pip install --quiet --disable-pip-version-check "aws-sam-cli==$(SAM_CLI_VERSION)"
	rm -f "$(SAM_VENV)"/.installed-*
	touch "$@"

sam-tool: $(SAM_STAMP) ## Install the AWS SAM CLI into .tools/sam (own venv, python3.12)

validate: venv sam-tool ## sam validate (SAM transform), sam validate --lint, cfn-lint on template.yaml
	$(SAM_ENV) "$(SAM)" validate --region "$(AWS_REGION)"
	$(SAM_ENV) "$(SAM)" validate --lint --region "$(AWS_REGION)"
	"$(VENV)/bin/cfn-lint" template.yaml

sam-build: venv model sam-tool ## sam build (layer: trimmed runtime + models from MODEL_DIR; functions: app + labelwise)
	$(SAM_ENV) MODEL_SRC="$(MODEL_DIR)" PYTHON="$(abspath $(VENV_PY))" "$(SAM)" build

clean: ## Remove build outputs and caches (keeps .venv, .tools and built models)
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache build dist
	find . -path ./.venv -prune -o -path ./.tools -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean ## clean, and remove .venv and .tools too (models stay in MODEL_DIR)
	rm -rf "$(VENV)" .tools
